import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rename, rm, stat, utimes } from "node:fs/promises";
import { dirname } from "node:path";
import { pipeline } from "node:stream/promises";
import type { AgeVault } from "../crypto/ageVault.js";
import type { ClipRecord } from "../manifest/manifest.js";
import { partName } from "../storage/types.js";
import { mapLimit } from "../util/async.js";
import { errorMessage } from "../util/log.js";
import { ClipRestoreError, checkDigest, clipError, DigestCounter, openPlaintext } from "./open.js";

/**
 * Restoring clips to files: decrypted to a temporary name next to the target, checked, and
 * only then given the name; many at a time with one failure never stopping the others.
 */

export interface RestoreResult {
  id: string;
  path: string;
  size: number;
  sha256: string;
  verified: boolean;
}

/**
 * Streams the clip from the destination, decrypts (age, or Fernet for legacy), checks sha256
 * against the manifest when it has one, writes to a temp name next to outFile and renames into
 * place only when it checks out. On any failure no file is left and the error names the clip.
 * `onBytes` gets the plaintext bytes written so far. The file is created 0600 and given the
 * clip's original modification time.
 */
export async function restoreClip(
  vault: AgeVault,
  clip: ClipRecord,
  outFile: string,
  opts: { signal?: AbortSignal; onBytes?: (n: number) => void } = {},
): Promise<RestoreResult> {
  const token = randomBytes(6).toString("hex");
  const temp = partName(outFile, token);
  const scratch = partName(outFile, `${token}f`);
  try {
    await mkdir(dirname(outFile), { recursive: true });
    const plain = await openPlaintext(vault, clip, scratch, opts.signal);
    const counter = new DigestCounter(opts.onBytes);
    await pipeline(plain, counter, createWriteStream(temp, { mode: 0o600, flags: "wx" }), {
      signal: opts.signal,
    });
    const checked = checkDigest(clip, counter.bytes, counter.hash.digest("hex"));
    if (clip.mtimeMs > 0) await utimes(temp, new Date(), new Date(clip.mtimeMs));
    await rename(temp, outFile);
    return { id: clip.id, path: outFile, ...checked };
  } catch (err) {
    await rm(temp, { force: true });
    throw clipError(vault, clip, err);
  } finally {
    await rm(scratch, { force: true });
  }
}

export type ExistingState = "absent" | "identical" | "differs" | "unknown";

/** Compares a file already at the output path with the clip (size, then sha256). */
export async function existingState(path: string, clip: ClipRecord): Promise<ExistingState> {
  let size: number;
  try {
    const st = await stat(path);
    if (!st.isFile()) return "differs";
    size = st.size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return "absent";
    throw err;
  }
  if (!clip.sha256) return "unknown";
  if (size !== clip.size) return "differs";
  const hash = createHash("sha256");
  await pipeline(createReadStream(path), hash);
  return hash.digest("hex") === clip.sha256 ? "identical" : "differs";
}

export interface RestoreItem {
  clip: ClipRecord;
  outFile: string;
}

export type ItemOutcome =
  | { status: "restored"; result: RestoreResult }
  | { status: "skipped"; why: "identical" | "unknown" }
  | { status: "failed"; error: string };

export interface RestoreManyHooks {
  onStart?(item: RestoreItem): void;
  onBytes?(item: RestoreItem, bytes: number): void;
  onDone?(item: RestoreItem, outcome: ItemOutcome): void;
}

export interface RestoreManySummary {
  restored: number;
  skipped: number;
  failed: number;
  bytes: number;
  outcomes: Array<{ id: string; path: string } & ItemOutcome>;
}

/**
 * Restores many clips, a few at a time; one failure never stops the others. A file already at
 * the output path is left alone when it is identical (or, for a legacy clip recorded without a
 * checksum, cannot be compared); a different file there is a failure unless `force`.
 */
export async function restoreMany(
  vault: AgeVault,
  items: readonly RestoreItem[],
  opts: { jobs: number; force?: boolean; signal?: AbortSignal; hooks?: RestoreManyHooks },
): Promise<RestoreManySummary> {
  const outcomes: RestoreManySummary["outcomes"] = new Array(items.length);
  const hooks = opts.hooks ?? {};
  await mapLimit(items, opts.jobs, async (item, i) => {
    let outcome: ItemOutcome;
    if (opts.signal?.aborted) {
      outcome = { status: "failed", error: `${item.clip.id}: interrupted` };
    } else {
      hooks.onStart?.(item);
      outcome = await restoreOne(vault, item, opts, hooks);
    }
    outcomes[i] = { id: item.clip.id, path: item.outFile, ...outcome };
    hooks.onDone?.(item, outcome);
  });
  const count = (s: ItemOutcome["status"]) => outcomes.filter((o) => o.status === s).length;
  return {
    restored: count("restored"),
    skipped: count("skipped"),
    failed: count("failed"),
    bytes: outcomes.reduce((n, o) => n + (o.status === "restored" ? o.result.size : 0), 0),
    outcomes,
  };
}

async function restoreOne(
  vault: AgeVault,
  item: RestoreItem,
  opts: { force?: boolean; signal?: AbortSignal },
  hooks: RestoreManyHooks,
): Promise<ItemOutcome> {
  try {
    const existing = await existingState(item.outFile, item.clip);
    if (existing === "identical" || (existing === "unknown" && !opts.force)) {
      return { status: "skipped", why: existing };
    }
    if (existing === "differs" && !opts.force) {
      return {
        status: "failed",
        error: `${item.clip.id}: ${item.outFile} already exists and differs from the backup (--force replaces it)`,
      };
    }
    const result = await restoreClip(vault, item.clip, item.outFile, {
      signal: opts.signal,
      onBytes: (n) => hooks.onBytes?.(item, n),
    });
    return { status: "restored", result };
  } catch (err) {
    const message = errorMessage(err);
    const named = err instanceof ClipRestoreError ? message : `${item.clip.id}: ${message}`;
    return {
      status: "failed",
      error: opts.signal?.aborted ? `${item.clip.id}: interrupted` : named,
    };
  }
}
