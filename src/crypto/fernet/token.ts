import { randomBytes, timingSafeEqual } from "node:crypto";
import {
  BLOCK,
  FERNET_MAX_CLOCK_SKEW_SECONDS,
  FernetError,
  type FernetKey,
  HEADER_LEN,
  MAC_LEN,
  MIN_LEN,
  VERSION,
} from "./key.js";

/** Whole Fernet tokens: strict base64url decoding, checks, encrypt and decrypt in memory. */

/** Pads to a multiple of 4 with `=`, as Python's `urlsafe_b64encode` writes tokens. */
function base64urlPadded(data: Uint8Array): string {
  const s = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64url");
  return s + "=".repeat((4 - (s.length % 4)) % 4);
}

/**
 * Makes a Fernet token, byte for byte what Python's `Fernet(key).encrypt(data)` makes (given the
 * same time and IV). Whole-buffer: for tests and small data.
 */
export function fernetEncrypt(
  key: FernetKey,
  plaintext: Uint8Array,
  opts: { iv?: Uint8Array; timeSeconds?: number } = {},
): string {
  const iv = opts.iv ?? randomBytes(16);
  if (iv.length !== 16) throw new RangeError(`Fernet IV must be 16 bytes, got ${iv.length}`);
  const time = Math.floor(opts.timeSeconds ?? Date.now() / 1000);
  if (!Number.isSafeInteger(time) || time < 0) {
    throw new RangeError(`Fernet timestamp must be a non-negative integer, got ${time}`);
  }
  const header = Buffer.alloc(HEADER_LEN);
  header[0] = VERSION;
  header.writeBigUInt64BE(BigInt(time), 1);
  header.set(iv, 9);
  const ciphertext = key.encrypt(iv, plaintext);
  const mac = key.hmac().update(header).update(ciphertext).digest();
  return base64urlPadded(Buffer.concat([header, ciphertext, mac]));
}

/**
 * Incremental, strict base64url decoder. Feed it chunks split anywhere; it yields the bytes decoded
 * so far and throws a FernetError ("format") at the first character a token cannot hold.
 */
export class Base64UrlDecoder {
  #carry = "";
  /** characters consumed so far (for error positions) */
  #offset = 0;
  /** set at the first character outside the alphabet: only `=` then whitespace may follow */
  #inTail = false;
  #pad = 0;
  #sawSpace = false;

  push(chunk: Uint8Array | string): Buffer {
    const s =
      typeof chunk === "string"
        ? chunk
        : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString("latin1");
    const start = this.#offset;
    this.#offset += s.length;
    if (!this.#inTail) {
      const stop = s.search(/[^A-Za-z0-9_-]/);
      if (stop < 0) return this.#decode(s);
      this.#inTail = true;
      const out = this.#decode(s.slice(0, stop));
      this.#checkTail(s.slice(stop), start + stop);
      return out;
    }
    this.#checkTail(s, start);
    return Buffer.alloc(0);
  }

  /** Decodes what is left and checks the padding. */
  end(): Buffer {
    const r = this.#carry.length;
    if (r === 1 || (this.#pad > 0 && r + this.#pad !== 4)) {
      throw new FernetError(
        "format",
        `the token is not valid base64url: its length (${this.#offset} characters) is wrong${this.#pad > 0 ? " for its padding" : ""}`,
      );
    }
    const out = r > 0 ? Buffer.from(this.#carry, "base64url") : Buffer.alloc(0);
    this.#carry = "";
    return out;
  }

  #decode(data: string): Buffer {
    if (data.length === 0) return Buffer.alloc(0);
    const all = this.#carry + data;
    const n = all.length - (all.length % 4);
    this.#carry = all.slice(n);
    return n > 0 ? Buffer.from(all.slice(0, n), "base64url") : Buffer.alloc(0);
  }

  #checkTail(s: string, at: number): void {
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c === 0x3d /* = */ && !this.#sawSpace && this.#pad < 2) {
        this.#pad++;
      } else if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) {
        this.#sawSpace = true;
      } else {
        const what =
          c === 0x3d
            ? "`=` where none may be"
            : this.#pad > 0 || this.#sawSpace
              ? "data after the end of the token"
              : c === 0x2b || c === 0x2f
                ? "a standard-base64 character (`+` or `/`), not base64url"
                : "a character outside base64url";
        throw new FernetError(
          "format",
          `the token is not valid base64url: ${what} at offset ${at + i}`,
        );
      }
    }
  }
}

export function describeLength(total: number): string | undefined {
  if (total < MIN_LEN) {
    return `the token is too short (${total} bytes decoded; a token has at least ${MIN_LEN})`;
  }
  if ((total - HEADER_LEN - MAC_LEN) % BLOCK !== 0) {
    return `the token's ciphertext (${total - HEADER_LEN - MAC_LEN} bytes) is not a multiple of the AES block size`;
  }
  return undefined;
}

export function checkVersion(first: number): void {
  if (first !== VERSION) {
    throw new FernetError(
      "version",
      `not a Fernet token: version byte is 0x${first.toString(16).padStart(2, "0")}, expected 0x80`,
    );
  }
}

export interface FernetTimeOptions {
  /** Maximum age in seconds. Without it, timestamps are not checked (as in the spec and Python). */
  ttlSeconds?: number;
  /** The current time, seconds since the epoch (default: now). */
  nowSeconds?: number;
}

export function checkTime(timestamp: bigint, opts: FernetTimeOptions): void {
  if (opts.ttlSeconds === undefined) return;
  const now = opts.nowSeconds ?? Date.now() / 1000;
  const ts = Number(timestamp);
  if (ts + opts.ttlSeconds < now) {
    throw new FernetError(
      "expired",
      `the token has expired: made at ${new Date(ts * 1000).toISOString()}, older than the ${opts.ttlSeconds} s TTL`,
    );
  }
  if (now + FERNET_MAX_CLOCK_SKEW_SECONDS < ts) {
    throw new FernetError(
      "future",
      `the token's timestamp is more than ${FERNET_MAX_CLOCK_SKEW_SECONDS} s in the future (clock skew)`,
    );
  }
}

export function signatureError(): FernetError {
  return new FernetError(
    "signature",
    "the token's HMAC does not match: wrong key, or the data was altered or truncated",
  );
}

export function paddingError(): FernetError {
  return new FernetError(
    "padding",
    "the token's HMAC is valid but its decrypted padding is not (malformed token)",
  );
}

/** Decrypts the last ciphertext block on its own (CBC: `prev` is its IV) to check its padding. */
export function checkPadding(key: FernetKey, prev: Uint8Array, last: Uint8Array): void {
  try {
    const d = key.decipher(prev);
    d.update(last);
    d.final();
  } catch {
    throw paddingError();
  }
}

/**
 * Verifies and decrypts a whole token (string or its ASCII bytes; a trailing newline is allowed).
 * The HMAC is checked (constant time) before anything is decrypted. Throws FernetError.
 */
export function fernetDecrypt(
  key: FernetKey,
  token: string | Uint8Array,
  opts: FernetTimeOptions = {},
): Buffer {
  const decoder = new Base64UrlDecoder();
  const head = decoder.push(token);
  const data = Buffer.concat([head, decoder.end()]);
  if (data.length > 0) checkVersion(data[0] as number);
  const lengthProblem = describeLength(data.length);
  if (lengthProblem) throw new FernetError("format", lengthProblem);
  const signed = data.subarray(0, data.length - MAC_LEN);
  const mac = key.hmac().update(signed).digest();
  if (!timingSafeEqual(mac, data.subarray(data.length - MAC_LEN))) throw signatureError();
  checkTime(data.readBigUInt64BE(1), opts);
  const d = key.decipher(data.subarray(9, HEADER_LEN));
  try {
    return Buffer.concat([d.update(signed.subarray(HEADER_LEN)), d.final()]);
  } catch {
    throw paddingError();
  }
}

/** True when these first bytes of a file look like a Fernet token (`gAAAAA` + base64url). */
export function looksLikeFernet(firstBytes: Uint8Array): boolean {
  if (firstBytes.length < 6) return false;
  const s = Buffer.from(
    firstBytes.buffer,
    firstBytes.byteOffset,
    Math.min(firstBytes.byteLength, 256),
  ).toString("latin1");
  return /^gAAAAA[A-Za-z0-9_-]*(?:={0,2}\s*)?$/.test(s);
}
