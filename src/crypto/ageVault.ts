import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { addAbortSignal, type Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { PutOptions, VaultStore } from "../storage/types.js";
import { decryptStream, encryptStream } from "./age/age.js";
import { decryptFernetStream, type FernetKey } from "./fernet/fernet.js";

/**
 * Encryption as a layer over any `VaultStore`, as rclone's crypt wraps any remote: `put` takes
 * plaintext and stores an age file, `open` gives back the plaintext of a stored clip (age, or a
 * legacy Fernet token). Sync, restore and the legacy import go through here and never call age
 * directly.
 */

export interface VaultKeys {
  /** age recipients: the identity's own plus encryption.recipients. */
  recipients(): Promise<string[]>;
  /** age identities (AGE-SECRET-KEY-1...) to decrypt with. */
  identities(): Promise<string[]>;
  /** The legacy Fernet key (encryption.fernetKeyFile); rejects when there is none. */
  fernetKey(): Promise<FernetKey>;
  /** For messages: where the age identity is. */
  readonly identityFile: string;
}

/** What a stored clip is, as far as opening it goes. */
export interface StoredClip {
  remotePath: string;
  format: "age" | "fernet";
}

export interface SealedPut extends PutOptions {
  /** The plaintext's size: the store then checks that exactly the matching ciphertext arrived. */
  plainSize?: number;
  /** Plaintext bytes read so far. */
  onPlainBytes?(bytes: number): void;
  /** Ciphertext is moving (for a stall watchdog). */
  onCipherChunk?(): void;
  /** Stops the upload: the temporary file is removed, nothing gets the final name. */
  signal?: AbortSignal;
}

export interface SealedResult {
  /** Plaintext bytes and their sha256, hex. */
  size: number;
  sha256: string;
  /** Bytes stored. */
  remoteSize: number;
}

export class AgeVault {
  constructor(
    readonly store: VaultStore,
    readonly keys: VaultKeys,
  ) {}

  /** Encrypts `plaintext` (streaming) into the store at `path`, never partially. */
  async put(path: string, plaintext: Readable, opts: SealedPut = {}): Promise<SealedResult> {
    const { signal } = opts;
    const counter = new PlainCounter(opts.onPlainBytes);
    const tap = new Tap(opts.onCipherChunk);
    const onAbort = () => {
      plaintext.destroy(signal?.reason as Error);
      tap.destroy(signal?.reason as Error);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    plaintext.on("error", (err) => counter.destroy(err));
    plaintext.pipe(counter);
    try {
      signal?.throwIfAborted();
      const { output, sizeFor } = await encryptStream(counter, await this.keys.recipients());
      output.on("error", (err) => tap.destroy(err));
      output.pipe(tap);
      const written = await this.store.put(path, tap, {
        // The ciphertext size follows from the plaintext's: a clip that grew or was cut short
        // since it was listed fails here, and its upload never gets the final name.
        expectedSize: opts.plainSize === undefined ? undefined : sizeFor(opts.plainSize),
        beforeCommit: opts.beforeCommit,
      });
      return { size: counter.bytes, sha256: counter.hash.digest("hex"), remoteSize: written.size };
    } finally {
      signal?.removeEventListener("abort", onAbort);
      if (!plaintext.readableEnded) plaintext.destroy();
    }
  }

  /**
   * The plaintext of a stored clip. A legacy Fernet token is first copied to `scratchFile`
   * (ciphertext only; the caller deletes it) and checked whole before a byte comes out.
   */
  async open(
    clip: StoredClip,
    opts: { scratchFile: string; signal?: AbortSignal },
  ): Promise<Readable> {
    const { signal } = opts;
    if (clip.format === "fernet") {
      const key = await this.keys.fernetKey();
      await pipeline(
        await this.read(clip.remotePath, signal),
        createWriteStream(opts.scratchFile, { mode: 0o600, flags: "wx" }),
        { signal },
      );
      return decryptFernetStream(async () => createReadStream(opts.scratchFile), key);
    }
    const identities = await this.keys.identities();
    const input = await this.read(clip.remotePath, signal);
    try {
      return await decryptStream(input, identities);
    } catch (err) {
      input.destroy();
      throw err;
    }
  }

  private async read(path: string, signal?: AbortSignal): Promise<Readable> {
    signal?.throwIfAborted();
    const stream = await this.store.read(path);
    return signal ? addAbortSignal(signal, stream) : stream;
  }
}

/** sha256 and byte count of the plaintext, without buffering. */
class PlainCounter extends Transform {
  readonly hash = createHash("sha256");
  bytes = 0;
  constructor(private readonly onBytes?: (n: number) => void) {
    // 256 KiB: enough to keep the pipeline busy; more only adds RSS (README, Performance).
    super({ highWaterMark: 1 << 18 });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onBytes?.(this.bytes);
    cb(null, chunk);
  }
}

/** Passes the ciphertext through, telling a watchdog that bytes move. */
class Tap extends Transform {
  constructor(private readonly onChunk?: () => void) {
    super({ highWaterMark: 1 << 18 });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.onChunk?.();
    cb(null, chunk);
  }
}
