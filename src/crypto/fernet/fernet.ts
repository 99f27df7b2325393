import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  type Decipher,
  type Hmac,
  randomBytes,
  timingSafeEqual,
} from "node:crypto";
import { readFile } from "node:fs/promises";
import { pipeline, type Readable, Transform, type TransformCallback } from "node:stream";
import { inspect } from "node:util";

/**
 * Fernet (https://github.com/fernet/spec), version 0x80, on node:crypto only: what the original
 * Python tool wrote with `cryptography.fernet`. Only needed to restore legacy backups; new
 * backups are age files.
 *
 * Token (base64url):  0x80 | timestamp (u64 BE, seconds) | IV (16) | AES-128-CBC ciphertext | HMAC
 * HMAC-SHA256 under the signing key over everything before it. Key file: base64url of
 * signing key (16) | encryption key (16).
 *
 * Decoding is strict (the spec's invalid.json vectors): only the base64url alphabet, `=` padding
 * only at the end and only as much as the length needs, then at most trailing whitespace (a file
 * may end with a newline). Python's own decoder is more lenient (it skips stray characters), but
 * every token it writes is canonical, so nothing it made is refused here.
 */

const VERSION = 0x80;
const HEADER_LEN = 1 + 8 + 16; // version | timestamp | IV
const MAC_LEN = 32;
const BLOCK = 16;
/** Smallest token: header, one ciphertext block (PKCS7 always adds one), HMAC. */
const MIN_LEN = HEADER_LEN + BLOCK + MAC_LEN;
/** The spec's (and Python's) allowance for a token stamped in the future, when a TTL is given. */
export const FERNET_MAX_CLOCK_SKEW_SECONDS = 60;

export type FernetErrorReason =
  /** not base64url, or a length no token can have */
  | "format"
  /** first byte is not 0x80 */
  | "version"
  /** HMAC mismatch: wrong key, or the data was altered */
  | "signature"
  /** authentic token whose plaintext padding is wrong */
  | "padding"
  /** older than the TTL */
  | "expired"
  /** stamped too far in the future (clock skew) */
  | "future"
  /** the streaming API read different bytes the second time */
  | "changed";

/** Every failure to read a token. Messages never include key material. */
export class FernetError extends Error {
  override name = "FernetError";
  constructor(
    readonly reason: FernetErrorReason,
    message: string,
  ) {
    super(message);
  }
}

/** A Fernet key. Its bytes stay inside: it prints and serialises as `[FernetKey]`. */
export class FernetKey {
  readonly #signing: Buffer;
  readonly #encryption: Buffer;

  constructor(raw: Uint8Array) {
    if (raw.length !== 32) {
      throw new Error(`a Fernet key is 32 bytes (signing key | encryption key), got ${raw.length}`);
    }
    this.#signing = Buffer.from(raw.subarray(0, 16));
    this.#encryption = Buffer.from(raw.subarray(16, 32));
  }

  /** @internal */
  hmac(): Hmac {
    return createHmac("sha256", this.#signing);
  }

  /** @internal */
  decipher(iv: Uint8Array): Decipher {
    return createDecipheriv("aes-128-cbc", this.#encryption, iv);
  }

  /** @internal */
  encrypt(iv: Uint8Array, plaintext: Uint8Array): Buffer {
    const cipher = createCipheriv("aes-128-cbc", this.#encryption, iv);
    return Buffer.concat([cipher.update(plaintext), cipher.final()]);
  }

  toJSON(): string {
    return "[FernetKey]";
  }

  toString(): string {
    return "[FernetKey]";
  }

  [inspect.custom](): string {
    return "[FernetKey]";
  }
}

/**
 * Parses the text of a `filekey.key`: base64url of 32 bytes (what `Fernet.generate_key()` gives).
 * Standard base64 (`+`, `/`) is accepted too; surrounding whitespace is ignored.
 */
export function parseFernetKey(text: string): FernetKey {
  const s = text.trim();
  if (s === "") throw new Error("the Fernet key is empty (expected 44 base64url characters)");
  const bad = s.search(/[^A-Za-z0-9_\-+/=]/);
  if (bad >= 0) {
    throw new Error(
      `the Fernet key is not base64url: invalid character at position ${bad + 1} (expected 44 characters of A-Z a-z 0-9 - _ and a final =)`,
    );
  }
  if (!/^[^=]+={0,2}$/.test(s)) {
    throw new Error("the Fernet key is not base64url: `=` may only end it");
  }
  const body = s.replace(/=+$/, "");
  const pad = s.length - body.length;
  if (body.length % 4 === 1 || (pad > 0 && (body.length + pad) % 4 !== 0)) {
    throw new Error(`the Fernet key is not base64url: bad length (${s.length} characters)`);
  }
  const raw = Buffer.from(body.replace(/\+/g, "-").replace(/\//g, "_"), "base64url");
  if (raw.length !== 32) {
    throw new Error(
      `the Fernet key must decode to 32 bytes (signing key | encryption key), got ${raw.length} (from ${s.length} characters; a key is 44)`,
    );
  }
  return new FernetKey(raw);
}

/** Reads and parses a `filekey.key` file. Errors name the file, never its content. */
export async function loadFernetKeyFile(path: string): Promise<FernetKey> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new Error(
      `cannot read Fernet key file ${path} (${(err as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
  try {
    return parseFernetKey(text);
  } catch (err) {
    throw new Error(`${path}: ${(err as Error).message}`);
  }
}

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
class Base64UrlDecoder {
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

function describeLength(total: number): string | undefined {
  if (total < MIN_LEN) {
    return `the token is too short (${total} bytes decoded; a token has at least ${MIN_LEN})`;
  }
  if ((total - HEADER_LEN - MAC_LEN) % BLOCK !== 0) {
    return `the token's ciphertext (${total - HEADER_LEN - MAC_LEN} bytes) is not a multiple of the AES block size`;
  }
  return undefined;
}

function checkVersion(first: number): void {
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

function checkTime(timestamp: bigint, opts: FernetTimeOptions): void {
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

function signatureError(): FernetError {
  return new FernetError(
    "signature",
    "the token's HMAC does not match: wrong key, or the data was altered or truncated",
  );
}

function paddingError(): FernetError {
  return new FernetError(
    "padding",
    "the token's HMAC is valid but its decrypted padding is not (malformed token)",
  );
}

/** Decrypts the last ciphertext block on its own (CBC: `prev` is its IV) to check its padding. */
function checkPadding(key: FernetKey, prev: Uint8Array, last: Uint8Array): void {
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

/**
 * Streams through decoded token bytes, keeping the HMAC (over all but the last 32 bytes), the
 * header and the last 64 bytes (last two blocks before the HMAC, then the HMAC). Memory is flat.
 */
class TokenScanner {
  readonly #decoder = new Base64UrlDecoder();
  readonly #hmac: Hmac;
  #total = 0;
  #header = Buffer.alloc(0);
  /** last (up to) 32 decoded bytes, not yet fed to the HMAC */
  #lag = Buffer.alloc(0);
  /** last (up to) 64 decoded bytes */
  #tail = Buffer.alloc(0);

  constructor(
    key: FernetKey,
    private readonly onBytes?: (bytes: Buffer, offset: number) => void,
  ) {
    this.#hmac = key.hmac();
  }

  push(chunk: Uint8Array | string): void {
    this.#bytes(this.#decoder.push(chunk));
  }

  /** Ends the input; returns the totals once the length is known to be a token's. */
  end(): { total: number; header: Buffer; mac: Buffer; tail: Buffer } {
    this.#bytes(this.#decoder.end());
    const problem = describeLength(this.#total);
    if (problem) throw new FernetError("format", problem);
    return {
      total: this.#total,
      header: this.#header,
      mac: this.#hmac.digest(),
      tail: this.#tail,
    };
  }

  #bytes(d: Buffer): void {
    if (d.length === 0) return;
    if (this.#total === 0) checkVersion(d[0] as number);
    this.onBytes?.(d, this.#total);
    this.#total += d.length;
    if (this.#header.length < HEADER_LEN) {
      this.#header = Buffer.concat([this.#header, d.subarray(0, HEADER_LEN - this.#header.length)]);
    }
    if (d.length >= MAC_LEN) {
      if (this.#lag.length > 0) this.#hmac.update(this.#lag);
      this.#hmac.update(d.subarray(0, d.length - MAC_LEN));
      this.#lag = Buffer.from(d.subarray(d.length - MAC_LEN));
    } else {
      const c = Buffer.concat([this.#lag, d]);
      if (c.length > MAC_LEN) this.#hmac.update(c.subarray(0, c.length - MAC_LEN));
      this.#lag = c.subarray(Math.max(0, c.length - MAC_LEN));
    }
    const t =
      d.length >= 64 ? d.subarray(d.length - 64) : Buffer.concat([this.#tail, d]).subarray(-64);
    this.#tail = Buffer.from(t);
  }
}

/**
 * Streaming decryption of a (possibly huge) token file, memory flat in its size.
 *
 * Pass 1 reads the whole token through `open()`, checks its format, version, length and HMAC
 * (constant time), the TTL if one is given, and the padding of the last block; the promise
 * rejects with a FernetError if anything is wrong, so a tampered file never yields a byte.
 * Pass 2 calls `open()` again and the returned Readable emits the plaintext (AES-128-CBC). Pass 2
 * recomputes the HMAC too: if the file changed between the passes, the stream fails with reason
 * "changed" (by then it may have emitted bytes: write to a temporary name and rename on success).
 * Errors from `open()` or the source stream itself are passed through unchanged.
 */
export async function decryptFernetStream(
  open: () => Promise<Readable>,
  key: FernetKey,
  opts: FernetTimeOptions = {},
): Promise<Readable> {
  const scanner = new TokenScanner(key);
  const source1 = await open();
  try {
    for await (const chunk of source1) scanner.push(chunk as Buffer | string);
  } finally {
    source1.destroy();
  }
  const first = scanner.end();
  if (!timingSafeEqual(first.mac, first.tail.subarray(32))) throw signatureError();
  checkTime(first.header.readBigUInt64BE(1), opts);
  checkPadding(key, first.tail.subarray(0, 16), first.tail.subarray(16, 32));

  const source2 = await open();
  const transform = new FernetDecryptTransform(key, first);
  // pipeline destroys both streams on error either side (including the consumer destroying the
  // output); errors reach the reader through the transform.
  return pipeline(source2, transform, () => {});
}

class FernetDecryptTransform extends Transform {
  readonly #decipher: Decipher;
  readonly #scanner: TokenScanner;
  readonly #expected: { total: number; header: Buffer; mac: Buffer };
  readonly #ctEnd: number;

  constructor(key: FernetKey, expected: { total: number; header: Buffer; mac: Buffer }) {
    super();
    this.#expected = expected;
    this.#ctEnd = expected.total - MAC_LEN;
    this.#decipher = key.decipher(expected.header.subarray(9, HEADER_LEN));
    this.#scanner = new TokenScanner(key, (bytes, offset) => this.#onBytes(bytes, offset));
  }

  #onBytes(bytes: Buffer, offset: number): void {
    const end = offset + bytes.length;
    if (offset < HEADER_LEN) {
      const h = bytes.subarray(0, HEADER_LEN - offset);
      if (!h.equals(this.#expected.header.subarray(offset, offset + h.length))) {
        throw changedError();
      }
    }
    const from = Math.max(offset, HEADER_LEN);
    const to = Math.min(end, this.#ctEnd);
    if (to > from) {
      const out = this.#decipher.update(bytes.subarray(from - offset, to - offset));
      if (out.length > 0) this.push(out);
    }
  }

  override _transform(chunk: Buffer | string, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.#scanner.push(chunk);
      cb();
    } catch (err) {
      cb(asChanged(err));
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      const again = this.#scanner.end();
      if (again.total !== this.#expected.total || !timingSafeEqual(again.mac, this.#expected.mac)) {
        throw changedError();
      }
      const last = this.#decipher.final();
      if (last.length > 0) this.push(last);
      cb();
    } catch (err) {
      cb(asChanged(err));
    }
  }
}

function changedError(): FernetError {
  return new FernetError(
    "changed",
    "the token file changed between the verification pass and the decryption pass",
  );
}

/** In pass 2 any format problem means the bytes differ from the ones verified in pass 1. */
function asChanged(err: unknown): Error {
  if (err instanceof FernetError) return err.reason === "changed" ? err : changedError();
  // decipher.final() after a verified pass 1 can only fail if the data changed
  return changedError();
}
