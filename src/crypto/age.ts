import { chmod, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { Readable } from "node:stream";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { Decrypter, Encrypter, generateX25519Identity, identityToRecipient } from "age-encryption";

/**
 * age v1 (https://age-encryption.org/v1) as streams. Encryption wraps any Readable and knows
 * nothing of storage. Files written here are what `age -d -i identity.txt` reads.
 */

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
  let recipient: string;
  try {
    recipient = await identityToRecipient(line);
  } catch {
    throw new IdentityError(`${path}: the AGE-SECRET-KEY line is not a valid X25519 identity`);
  }
  const mode = (await stat(path)).mode & 0o777;
  return { secret: line, recipient, looseMode: (mode & 0o077) !== 0 };
}

/** Creates a new X25519 identity file (mode 0600). Never overwrites unless `force`. */
export async function writeNewIdentity(path: string, force = false): Promise<AgeIdentity> {
  // X25519 on purpose: post-quantum identities are not readable by Debian's age 1.1.
  const secret = await generateX25519Identity();
  const recipient = await identityToRecipient(secret);
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

/** Size of the age file for a plaintext of `size` bytes with these recipients' header. */
export async function encryptedSize(plainSize: number, recipients: string[]): Promise<number> {
  const e = new Encrypter();
  for (const r of recipients) e.addRecipient(r);
  const stream = await e.encrypt(new ReadableStream<Uint8Array>({ start: (c) => c.close() }));
  await stream.cancel();
  return stream.size(plainSize);
}

/** Encrypts a byte stream to the given recipients. */
export async function encryptStream(
  input: Readable,
  recipients: string[],
): Promise<{ output: Readable; sizeFor(plainSize: number): number }> {
  if (recipients.length === 0) throw new IdentityError("no age recipients to encrypt to");
  const e = new Encrypter();
  for (const r of recipients) e.addRecipient(r);
  const web = Readable.toWeb(input) as unknown as ReadableStream<Uint8Array>;
  const out = await e.encrypt(web);
  return {
    output: Readable.fromWeb(out as unknown as WebReadableStream<Uint8Array>, {
      highWaterMark: 4,
    }),
    sizeFor: (n) => out.size(n),
  };
}

/** Decrypts an age byte stream. The header is checked before this resolves. */
export async function decryptStream(input: Readable, identities: string[]): Promise<Readable> {
  const d = new Decrypter();
  for (const i of identities) d.addIdentity(i);
  const web = Readable.toWeb(input) as unknown as ReadableStream<Uint8Array>;
  const out = await d.decrypt(web);
  return Readable.fromWeb(out as unknown as WebReadableStream<Uint8Array>, { highWaterMark: 4 });
}

/** age files begin with this line; used to tell them from legacy Fernet tokens. */
export const AGE_MAGIC = "age-encryption.org/v1\n";
