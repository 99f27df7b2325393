/**
 * The age v1 payload: STREAM (ChaCha20-Poly1305 over 64 KiB chunks, nonce = 11-byte big-endian
 * chunk counter + a last-chunk flag) with a key derived from the file key and a 16-byte nonce.
 *
 * On node:crypto (OpenSSL), ~15x faster than a pure-JS cipher: encryption is not what limits a
 * sync any more (see the README, Performance).
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { ByteQueue } from "../../util/byteQueue.js";
import { AgeError, hkdf, PAYLOAD_NONCE_SIZE } from "./format.js";

export const CHUNK_SIZE = 64 * 1024;
const TAG_SIZE = 16;
const CHUNK_CT_SIZE = CHUNK_SIZE + TAG_SIZE;

/** Size of the payload (nonce + chunks) for `plainSize` bytes of plaintext. */
export function payloadSize(plainSize: number): number {
  const chunks = Math.max(1, Math.ceil(plainSize / CHUNK_SIZE));
  return PAYLOAD_NONCE_SIZE + plainSize + chunks * TAG_SIZE;
}

function chunkNonce(counter: number, last: boolean): Buffer {
  const nonce = Buffer.alloc(12);
  // 11-byte big-endian counter; 2^48 chunks (16 EiB) is more than any clip.
  nonce.writeUIntBE(counter, 5, 6);
  nonce[11] = last ? 1 : 0;
  return nonce;
}

/** Seals plaintext into STREAM chunks; `nonce` must be written before the first chunk. */
export class StreamSealer {
  readonly nonce = randomBytes(PAYLOAD_NONCE_SIZE);
  private readonly key: Buffer;
  private readonly pending = new ByteQueue();
  private counter = 0;

  constructor(fileKey: Uint8Array) {
    this.key = hkdf(fileKey, this.nonce, "payload");
  }

  private seal(plain: Buffer, last: boolean, out: Buffer[]): void {
    const c = createCipheriv("chacha20-poly1305", this.key, chunkNonce(this.counter++, last), {
      authTagLength: TAG_SIZE,
    });
    out.push(c.update(plain));
    c.final();
    out.push(c.getAuthTag());
  }

  /** Seals every chunk known not to be the last; appends the ciphertext to `out`. */
  update(data: Buffer, out: Buffer[]): void {
    this.pending.push(data);
    // A full chunk is sealed as non-final only once a byte after it is known to exist.
    while (this.pending.length > CHUNK_SIZE) this.seal(this.pending.take(CHUNK_SIZE), false, out);
  }

  /** Seals the last chunk: 1..64 KiB, or empty only when the whole plaintext is. */
  final(out: Buffer[]): void {
    this.seal(this.pending.take(this.pending.length), true, out);
  }
}

/**
 * Opens STREAM chunks (after the payload nonce), as the reference implementation does: a
 * full-size chunk is tried as a middle chunk, then as the last one; a short chunk at the end is
 * the last one. A chunk's plaintext is released only once its tag checked out, so a tampered
 * chunk throws without giving out any of its bytes; a file cut at a chunk boundary throws at
 * its end; bytes after the last chunk throw too.
 */
export class StreamOpener {
  private key: Buffer | undefined;
  private readonly pending = new ByteQueue();
  private counter = 0;
  private sawLast = false;

  constructor(private readonly fileKey: Uint8Array) {}

  private tryOpen(sealed: Buffer, last: boolean): Buffer | undefined {
    const d = createDecipheriv(
      "chacha20-poly1305",
      this.key as Buffer,
      chunkNonce(this.counter, last),
      { authTagLength: TAG_SIZE },
    );
    d.setAuthTag(sealed.subarray(sealed.length - TAG_SIZE));
    const plain = d.update(sealed.subarray(0, sealed.length - TAG_SIZE));
    try {
      d.final();
      return plain;
    } catch {
      return undefined;
    }
  }

  private open(sealed: Buffer, mayBeMiddle: boolean): Buffer {
    let plain = mayBeMiddle ? this.tryOpen(sealed, false) : undefined;
    if (!plain) {
      plain = this.tryOpen(sealed, true);
      if (plain) this.sawLast = true;
    }
    if (!plain) {
      throw new AgeError(
        "payload",
        `age payload: chunk ${this.counter} failed authentication (the file is damaged, altered or truncated)`,
      );
    }
    this.counter++;
    return plain;
  }

  private checkNoTrailingData(): void {
    if (this.sawLast && this.pending.length > 0) {
      throw new AgeError("payload", "age payload: data after the end of the encrypted file");
    }
  }

  /** Derives the payload key once the nonce has arrived. */
  private keyed(): boolean {
    if (this.key) return true;
    if (this.pending.length < PAYLOAD_NONCE_SIZE) return false;
    this.key = hkdf(this.fileKey, this.pending.take(PAYLOAD_NONCE_SIZE), "payload");
    return true;
  }

  /** Opens every complete chunk, appending plaintext to `out`; throws AgeError. */
  update(data: Buffer, out: Buffer[]): void {
    this.pending.push(data);
    if (!this.keyed()) return;
    for (;;) {
      this.checkNoTrailingData();
      if (this.pending.length < CHUNK_CT_SIZE) return;
      out.push(this.open(this.pending.take(CHUNK_CT_SIZE), true));
    }
  }

  /** Opens a short last chunk at the end of the file; throws AgeError. */
  final(out: Buffer[]): void {
    if (!this.keyed()) throw new AgeError("header", "age file ends before its payload nonce");
    this.checkNoTrailingData();
    if (this.sawLast) return;
    const left = this.pending.length;
    if (left === 0) {
      throw new AgeError("payload", "age payload: the last chunk is missing (truncated file)");
    }
    // Only an empty file has an empty last chunk.
    if (left < TAG_SIZE || (left === TAG_SIZE && this.counter > 0)) {
      throw new AgeError("payload", "age payload: truncated last chunk");
    }
    out.push(this.open(this.pending.take(left), false));
  }
}
