import { chmod, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { type Readable, Transform, type TransformCallback } from "node:stream";
import {
  AgeError,
  generateIdentity,
  newHeader,
  type ParsedHeader,
  parseHeader,
  parseIdentity,
  parseRecipient,
  recipientOf,
  unwrapFileKey,
  type X25519Identity,
} from "./format.js";
import { payloadSize, StreamOpener, StreamSealer } from "./payload.js";

/**
 * age v1 (https://age-encryption.org/v1) as streams, X25519 recipients, on node:crypto
 * (ageFormat.ts: keys and header; agePayload.ts: the chunked payload). Encryption wraps any
 * Readable and knows nothing of storage. Files written here are what `age -d -i identity.txt`
 * reads, and `age`'s files (or any age v1 implementation's, to X25519 recipients) read back.
 */

export { AgeError } from "./format.js";

export interface AgeIdentity {
  /** `AGE-SECRET-KEY-1...` */
  secret: string;
  /** `age1...` */
  recipient: string;
}

export class IdentityError extends Error {
  override name = "IdentityError";
}

/** Reads an identity file in the format `age-keygen` writes (`#` comments allowed). */
export async function loadIdentity(path: string): Promise<AgeIdentity & { looseMode: boolean }> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new IdentityError(
      `cannot read age identity ${path} (${(err as NodeJS.ErrnoException).code ?? "error"}); make one with \`motioneye-vault keygen\``,
    );
  }
  const line = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .find((l) => l.startsWith("AGE-SECRET-KEY-1"));
  if (!line) throw new IdentityError(`${path} holds no AGE-SECRET-KEY-1... line`);
  const recipient = recipientOf(line);
  if (!recipient) {
    throw new IdentityError(`${path}: the AGE-SECRET-KEY line is not a valid X25519 identity`);
  }
  const mode = (await stat(path)).mode & 0o777;
  return { secret: line, recipient, looseMode: (mode & 0o077) !== 0 };
}

/** Creates a new X25519 identity file (mode 0600). Never overwrites unless `force`. */
export async function writeNewIdentity(path: string, force = false): Promise<AgeIdentity> {
  // X25519 on purpose: post-quantum identities are not readable by Debian's age 1.1.
  const { secret, recipient } = generateIdentity();
  const text = `# created: ${new Date().toISOString().replace(/\.\d{3}Z$/, "Z")}\n# public key: ${recipient}\n${secret}\n`;
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  try {
    await writeFile(path, text, { mode: 0o600, flag: force ? "w" : "wx" });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") {
      throw new IdentityError(`${path} already exists; refusing to overwrite it (use --force)`);
    }
    throw err;
  }
  await chmod(path, 0o600); // `w` on an existing file keeps its old mode
  return { secret, recipient };
}

/** Output is pushed in pieces of up to about this size: fewer, larger writes downstream. */
const STREAM_HWM = 256 * 1024;

function recipientKeys(recipients: string[]): Buffer[] {
  if (recipients.length === 0) throw new IdentityError("no age recipients to encrypt to");
  return recipients.map((r) => {
    const key = parseRecipient(r);
    if (!key) throw new IdentityError(`not an X25519 age recipient (age1...): ${r}`);
    return key;
  });
}

/** Size of the age file for a plaintext of `size` bytes with these recipients' header. */
export async function encryptedSize(plainSize: number, recipients: string[]): Promise<number> {
  return newHeader(recipientKeys(recipients)).header.length + payloadSize(plainSize);
}

class AgeEncryptor extends Transform {
  private readonly sealer: StreamSealer;
  /** Sealed chunks not pushed yet: pushed in batches of about STREAM_HWM. */
  private sealed: Buffer[] = [];
  private sealedBytes = 0;

  constructor(fileKey: Buffer, header: Buffer) {
    super({ highWaterMark: STREAM_HWM });
    this.sealer = new StreamSealer(fileKey);
    this.push(Buffer.concat([header, this.sealer.nonce]));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const before = this.sealed.length;
    this.sealer.update(chunk, this.sealed);
    for (let i = before; i < this.sealed.length; i++)
      this.sealedBytes += (this.sealed[i] as Buffer).length;
    if (this.sealedBytes >= STREAM_HWM) this.pushSealed();
    cb();
  }

  private pushSealed(): void {
    this.push(Buffer.concat(this.sealed, this.sealedBytes));
    this.sealed = [];
    this.sealedBytes = 0;
  }

  override _flush(cb: TransformCallback): void {
    this.sealer.final(this.sealed);
    this.sealedBytes = this.sealed.reduce((n, b) => n + b.length, 0);
    this.pushSealed();
    cb();
  }
}

/** Connects `input` to `output`: input errors fail the output; closing the output stops the input. */
function feed(input: Readable, output: Transform): void {
  input.on("error", (err) => output.destroy(err));
  output.on("close", () => {
    if (!input.destroyed) input.destroy();
  });
  input.pipe(output);
}

/** Encrypts a byte stream to the given recipients. */
export async function encryptStream(
  input: Readable,
  recipients: string[],
): Promise<{ output: Readable; sizeFor(plainSize: number): number }> {
  const { fileKey, header } = newHeader(recipientKeys(recipients));
  const output = new AgeEncryptor(fileKey, header);
  feed(input, output);
  return { output, sizeFor: (n) => header.length + payloadSize(n) };
}

/** Reads the header, unwraps the file key, then opens the payload. */
class AgeDecryptor extends Transform {
  private head: Buffer | undefined = Buffer.alloc(0);
  private opener: StreamOpener | undefined;
  private settle!: (err?: Error) => void;
  /** Settles once the header was checked (file key found, MAC verified) or failed. */
  readonly ready: Promise<void>;
  /** A payload error that came before the caller had the stream (see `handOver`). */
  private held: (() => void) | undefined;
  private handedOver = false;

  constructor(private readonly identities: X25519Identity[]) {
    super({ highWaterMark: STREAM_HWM });
    this.ready = new Promise<void>((resolve, reject) => {
      this.settle = (err) => (err ? reject(err) : resolve());
    });
    this.once("close", () =>
      this.settle(this.errored ?? new Error("age stream closed before its header was read")),
    );
  }

  /**
   * The caller has the stream now. A payload error raised while `decryptStream` was still
   * resolving (a small file is often read whole at once) is emitted now, once the caller has
   * had a chance to listen for it, instead of being lost or crashing the process.
   */
  handOver(): void {
    this.handedOver = true;
    const held = this.held;
    this.held = undefined;
    if (held) setImmediate(held);
  }

  private fail(cb: TransformCallback, err: Error): void {
    if (this.handedOver || !this.opener) cb(err);
    else this.held = () => cb(err);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    let data = chunk;
    const out: Buffer[] = [];
    try {
      if (!this.opener) {
        const head = Buffer.concat([this.head as Buffer, chunk]);
        const parsed: ParsedHeader | undefined = parseHeader(head);
        if (!parsed) {
          this.head = head;
          cb();
          return;
        }
        this.opener = new StreamOpener(unwrapFileKey(parsed, this.identities));
        this.head = undefined;
        data = head.subarray(parsed.length);
        this.settle();
      }
      this.opener.update(data, out);
    } catch (err) {
      // Whatever authenticated before a bad chunk still goes out, as age does.
      if (out.length) this.push(Buffer.concat(out));
      this.fail(cb, err as Error);
      return;
    }
    if (out.length) this.push(out.length === 1 ? out[0] : Buffer.concat(out));
    cb();
  }

  override _flush(cb: TransformCallback): void {
    if (!this.opener) {
      const what = this.head?.length ? "the file ends inside its header" : "the file is empty";
      cb(new AgeError("header", `invalid age header: ${what}`));
      return;
    }
    const out: Buffer[] = [];
    try {
      this.opener.final(out);
    } catch (err) {
      this.fail(cb, err as Error);
      return;
    }
    this.push(Buffer.concat(out));
    cb();
  }
}

/**
 * Decrypts an age byte stream. The header is checked before this resolves (rejects with
 * AgeError: "header", "no match" or "hmac"); the returned stream fails with AgeError
 * ("payload") at a damaged or truncated chunk, never emitting that chunk's bytes.
 */
export async function decryptStream(input: Readable, identities: string[]): Promise<Readable> {
  const keys = identities.map((i) => {
    const key = parseIdentity(i);
    if (!key) throw new IdentityError("not a valid X25519 age identity (AGE-SECRET-KEY-1...)");
    return key;
  });
  if (keys.length === 0) throw new IdentityError("no age identity to decrypt with");
  const output = new AgeDecryptor(keys);
  // Until the caller has the stream, its errors are reported through `ready` only.
  const quiet = () => {};
  output.on("error", quiet);
  feed(input, output);
  try {
    await output.ready;
  } catch (err) {
    output.destroy();
    throw err;
  } finally {
    output.off("error", quiet);
  }
  output.handOver();
  return output;
}

/** age files begin with this line; used to tell them from legacy Fernet tokens. */
export const AGE_MAGIC = "age-encryption.org/v1\n";
