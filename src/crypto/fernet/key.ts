import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  type Decipher,
  type Hmac,
} from "node:crypto";
import { readFile } from "node:fs/promises";
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

export const VERSION = 0x80;
export const HEADER_LEN = 1 + 8 + 16; // version | timestamp | IV
export const MAC_LEN = 32;
export const BLOCK = 16;
/** Smallest token: header, one ciphertext block (PKCS7 always adds one), HMAC. */
export const MIN_LEN = HEADER_LEN + BLOCK + MAC_LEN;
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
