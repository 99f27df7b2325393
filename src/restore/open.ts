import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { unsafeSegmentReason } from "../clips/clipId.js";
import { AgeError } from "../crypto/age/age.js";
import type { AgeVault } from "../crypto/ageVault.js";
import { FernetError } from "../crypto/fernet/fernet.js";
import type { ClipRecord } from "../manifest/manifest.js";
import { errorMessage } from "../util/log.js";

/**
 * Reading a clip back: its plaintext through the age layer (age, or Fernet for legacy backups),
 * checked against the manifest's sha256, with errors that name the clip and say what to do.
 * Shared by restore, verify, the legacy import and the Telegram bot.
 *
 * Memory stays flat in the clip size: age decrypts as a stream; a Fernet token is first copied to
 * a local scratch file (ciphertext only, one download) and decrypted from there in two passes
 * (HMAC first, then AES), so a tampered token never yields a byte.
 */

/** Decrypted fine, but not the bytes the manifest recorded. */
export class DigestMismatchError extends Error {
  override name = "DigestMismatchError";
}

/** A clip could not be restored or checked; the message names the clip. */
export class ClipRestoreError extends Error {
  override name = "ClipRestoreError";
  constructor(
    readonly clipId: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${clipId}: ${reason}`, options);
  }
}

function _shorten(s: string): string {
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

/** Checks a manifest record's remote path before it goes near the store. */
function checkedRemotePath(clip: ClipRecord): string {
  const p = clip.remotePath;
  const bad =
    p.startsWith("/") || p.length > 1024
      ? "not relative"
      : p
          .split("/")
          .map(unsafeSegmentReason)
          .find((r) => r !== undefined);
  if (bad) throw new Error(`its remote path in the manifest is unsafe (${bad})`);
  return p;
}

/**
 * Opens a clip's plaintext. For a legacy Fernet clip the token is first copied to `scratchFile`
 * (the caller deletes it afterwards); errors are the raw ones (see clipError).
 */
export async function openPlaintext(
  vault: AgeVault,
  clip: ClipRecord,
  scratchFile: string,
  signal?: AbortSignal,
): Promise<Readable> {
  return vault.open(
    { remotePath: checkedRemotePath(clip), format: clip.format },
    { scratchFile, signal },
  );
}

/** sha256 and byte count of what flows through, without buffering. */
export class DigestCounter extends Transform {
  readonly hash = createHash("sha256");
  bytes = 0;
  constructor(private readonly onBytes?: (n: number) => void) {
    super({ highWaterMark: 1 << 20 });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onBytes?.(this.bytes);
    cb(null, chunk);
  }
}

/** What a decrypted clip's bytes say against its manifest record; throws on a mismatch. */
export function checkDigest(
  clip: ClipRecord,
  size: number,
  sha256: string,
): { size: number; sha256: string; verified: boolean } {
  if (!clip.sha256) return { size, sha256, verified: false };
  if (size !== clip.size) {
    throw new DigestMismatchError(
      `decrypted to ${size} bytes but the manifest says ${clip.size}: the backup does not match its record`,
    );
  }
  if (sha256 !== clip.sha256) {
    throw new DigestMismatchError(
      `decrypted data does not match the manifest's sha256 (expected ${clip.sha256.slice(0, 16)}…, got ${sha256.slice(0, 16)}…): the backup was altered`,
    );
  }
  return { size, sha256, verified: true };
}

/** True when a clip's failure means its backup is damaged or altered (not a connection or key problem). */
export function isCorruption(err: unknown): boolean {
  const cause = err instanceof ClipRestoreError ? err.cause : err;
  if (cause instanceof AgeError) return cause.kind !== "no match";
  return cause instanceof FernetError || cause instanceof DigestMismatchError;
}

/** Turns a failure into one line that names the clip and says what to do. */
export function clipError(vault: AgeVault, clip: ClipRecord, err: unknown): Error {
  if (err instanceof ClipRestoreError) return err;
  if (err instanceof Error && err.name === "AbortError") return err;
  let reason: string;
  if (err instanceof AgeError) {
    reason =
      err.kind === "no match"
        ? `cannot decrypt it with the age identity ${vault.keys.identityFile}: the clip was encrypted to another key (is encryption.identityFile the key this vault was made with?)`
        : `the backup is damaged or was altered (${err.message})`;
  } else if (err instanceof FernetError) {
    reason =
      err.reason === "signature"
        ? "the legacy Fernet token's HMAC does not match: encryption.fernetKeyFile is not the key it was made with, or the file is damaged or altered"
        : `the legacy Fernet token cannot be read (${err.message})`;
  } else {
    reason = errorMessage(err);
  }
  return new ClipRestoreError(clip.id, reason, { cause: err });
}

/**
 * Reads a clip back and checks it without writing it anywhere (verify). Legacy clips recorded
 * without a checksum come back `verified: false` once their HMAC checked out.
 */
export async function digestClip(
  vault: AgeVault,
  clip: ClipRecord,
  opts: { signal?: AbortSignal; scratchDir: string },
): Promise<{ size: number; sha256: string; verified: boolean }> {
  const scratch = join(opts.scratchDir, randomBytes(6).toString("hex"));
  try {
    const plain = await openPlaintext(vault, clip, scratch, opts.signal);
    const counter = new DigestCounter();
    counter.resume(); // nothing downstream: let the bytes flow
    await pipeline(plain, counter, { signal: opts.signal });
    return checkDigest(clip, counter.bytes, counter.hash.digest("hex"));
  } catch (err) {
    throw clipError(vault, clip, err);
  } finally {
    await rm(scratch, { force: true });
  }
}

/** A private scratch folder in state.dir (ciphertext of legacy tokens), removed by `done()`. */
export async function scratchDir(
  stateDir: string,
): Promise<{ dir: string; done(): Promise<void> }> {
  const base = join(stateDir, "tmp");
  await mkdir(base, { recursive: true, mode: 0o700 });
  const dir = await mkdtemp(join(base, "restore-"));
  return { dir, done: () => rm(dir, { recursive: true, force: true }) };
}
