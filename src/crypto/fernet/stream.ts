import { type Decipher, type Hmac, timingSafeEqual } from "node:crypto";
import { pipeline, type Readable, Transform, type TransformCallback } from "node:stream";
import { FernetError, type FernetKey, HEADER_LEN, MAC_LEN } from "./key.js";
import {
  Base64UrlDecoder,
  checkPadding,
  checkTime,
  checkVersion,
  describeLength,
  type FernetTimeOptions,
  signatureError,
} from "./token.js";

/** Legacy Fernet tokens decrypted as streams: memory stays flat whatever the clip's size. */

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
