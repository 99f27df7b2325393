import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { Keys } from "../app/keys.js";
import type { SharedLock } from "../backup/lock.js";
import { hasExtension, remotePathOf } from "../clips/clipId.js";
import { listVaultFiles, readHead, type VaultFile } from "../clips/vaultListing.js";
import type { AgeVault } from "../crypto/ageVault.js";
import { looksLikeFernet } from "../crypto/fernet/fernet.js";
import type { ClipRecord, Manifest } from "../manifest/manifest.js";
import { PART_PATTERN } from "../storage/types.js";
import { mapLimit } from "../util/async.js";
import { isoSeconds } from "../util/format.js";
import { errorMessage } from "../util/log.js";
import { ClipRestoreError, clipError, digestClip, openPlaintext, scratchDir } from "./open.js";

/**
 * `import-legacy`: backups made by the original Python tool are Fernet tokens at
 * `<destination.path>/<date>/<name>` (no `.age`). They are found by their first bytes (`gAAAAA`)
 * and recorded in the manifest as format "fernet", so `list`, the bot and `restore` see them.
 *
 * Importing reads only the first bytes of each file (no key needed, no download). The plaintext
 * size is then not known exactly: PKCS7 padding hides 1 to 16 bytes. The record holds the least it
 * can be (the ciphertext size less 16 bytes) and no sha256, so a restore of such a clip is checked
 * by the token's HMAC only. `--reencrypt` reads each one, writes it as age under the new layout
 * (`<id>.age`), reads that back and compares sha256, records it (exact size, sha256), and only then
 * removes the legacy file.
 */

/** Decoded Fernet bytes beyond the ciphertext: version, timestamp, IV, HMAC. */
const TOKEN_OVERHEAD = 1 + 8 + 16 + 32;

/**
 * The least plaintext size a token file of `fileSize` characters can hold. A token's decoded
 * length is 57 + a multiple of 16, which pins it down from the base64 length (padded, as Python
 * writes it, or not; a trailing newline allowed); the plaintext is then 1 to 16 bytes short of the
 * ciphertext.
 */
export function legacyPlainSize(fileSize: number): number {
  const padded = (n: number) => 4 * Math.ceil(n / 3);
  const unpadded = (n: number) => Math.ceil((4 * n) / 3);
  const lengths = [fileSize, fileSize - 1, fileSize - 2];
  for (
    let n = Math.ceil((3 * fileSize) / 4) + 1;
    n >= Math.floor((3 * (fileSize - 2)) / 4) - 2;
    n--
  ) {
    if (n < TOKEN_OVERHEAD + 16 || (n - TOKEN_OVERHEAD) % 16 !== 0) continue;
    if (lengths.includes(padded(n)) || lengths.includes(unpadded(n)))
      return n - TOKEN_OVERHEAD - 16;
  }
  return Math.max(0, Math.floor((3 * fileSize) / 4) - TOKEN_OVERHEAD - 16);
}

export interface ImportReport {
  /** Newly recorded legacy clips. */
  imported: string[];
  /** Legacy files recorded by an earlier import. */
  alreadyImported: string[];
  /** Legacy files whose clip is in the vault as age too (left alone unless --reencrypt). */
  duplicates: string[];
  /** Files in date folders that are not legacy clips, with why. */
  skipped: Array<{ path: string; why: string }>;
  /** `.part-` files of unfinished uploads. */
  strays: string[];
  reencrypted: string[];
  /** Legacy copies removed because the age copy in the vault holds the same bytes. */
  removedDuplicates: string[];
  failed: Array<{ id: string; error: string }>;
}

export interface ImportOptions {
  reencrypt?: boolean;
  jobs: number;
  signal?: AbortSignal;
  /** One line per thing done, as it happens. */
  onLine?(line: string): void;
}

function legacyRecord(f: VaultFile): ClipRecord {
  return {
    id: f.id,
    camera: f.camera,
    date: f.date,
    name: f.name,
    size: legacyPlainSize(f.size),
    mtimeMs: f.mtimeMs,
    remotePath: f.path,
    remoteSize: f.size,
    uploadedAt: isoSeconds(f.mtimeMs > 0 ? f.mtimeMs : Date.now()),
    format: "fernet",
  };
}

export interface ImportDeps {
  vault: AgeVault;
  keys: Keys;
  manifest: Manifest;
  lock: SharedLock;
  /** Video extensions of every source: other files in a date folder are not clips. */
  extensions: readonly string[];
  stateDir: string;
}

export async function importLegacy(deps: ImportDeps, opts: ImportOptions): Promise<ImportReport> {
  const { manifest, vault, keys } = deps;
  const destination = vault.store;
  const say = opts.onLine ?? (() => {});
  // The vault's age key is made before legacy clips count as clips: the composition root refuses
  // to make one for a vault that already holds clips (it would look like a lost key).
  if (opts.reencrypt || manifest.status.totals.clips === 0) await keys.identity();
  if (opts.reencrypt) await keys.fernetKey();

  const lock = await deps.lock.acquire();
  const report: ImportReport = {
    imported: [],
    alreadyImported: [],
    duplicates: [],
    skipped: [],
    strays: [],
    reencrypted: [],
    removedDuplicates: [],
    failed: [],
  };
  try {
    // (Taking the lock re-read the manifest.)
    const duplicates: Array<{ legacy: ClipRecord; age: ClipRecord }> = [];
    for (const f of await listVaultFiles(destination)) {
      opts.signal?.throwIfAborted();
      if (f.name.endsWith(".age")) continue;
      if (PART_PATTERN.test(f.name)) {
        report.strays.push(f.path);
        continue;
      }
      if (!hasExtension(f.name, deps.extensions)) {
        report.skipped.push({ path: f.path, why: "not a video clip (source.extensions)" });
        continue;
      }
      const existing = await manifest.get(f.id, f.date);
      if (existing?.format === "fernet" && existing.remotePath === f.path) {
        report.alreadyImported.push(f.id);
        continue;
      }
      if (!looksLikeFernet(await readHead(destination, f.path))) {
        report.skipped.push({ path: f.path, why: "not a Fernet token" });
        continue;
      }
      if (existing) {
        report.duplicates.push(f.id);
        duplicates.push({ legacy: legacyRecord(f), age: existing });
        say(`${f.path}: the clip is in the vault as ${existing.remotePath} too`);
        continue;
      }
      const rec = legacyRecord(f);
      await manifest.record(rec);
      report.imported.push(rec.id);
      say(`imported ${rec.id} (legacy Fernet)`);
    }

    if (opts.reencrypt) {
      const legacy = (await manifest.all()).filter((c) => c.format === "fernet");
      const scratch = await scratchDir(deps.stateDir);
      try {
        await mapLimit(legacy, opts.jobs, async (rec) => {
          if (opts.signal?.aborted) return;
          try {
            await reencrypt(deps, rec, scratch.dir, opts.signal);
            report.reencrypted.push(rec.id);
            say(`re-encrypted ${rec.id} -> ${remotePathOf(rec.id)} (legacy file removed)`);
          } catch (err) {
            report.failed.push({ id: rec.id, error: errorMessage(err) });
          }
        });
        await mapLimit(duplicates, opts.jobs, async ({ legacy, age }) => {
          if (opts.signal?.aborted) return;
          try {
            await dropDuplicate(vault, legacy, age, scratch.dir, opts.signal);
            report.removedDuplicates.push(legacy.remotePath);
            say(`removed ${legacy.remotePath}: ${age.remotePath} holds the same clip`);
          } catch (err) {
            report.failed.push({ id: legacy.id, error: errorMessage(err) });
          }
        });
      } finally {
        await scratch.done();
      }
    }
  } finally {
    await lock.release();
  }
  return report;
}

/** Legacy token -> age under `<id>.age`, read back and compared, recorded, then the old one goes. */
async function reencrypt(
  deps: ImportDeps,
  rec: ClipRecord,
  dir: string,
  signal?: AbortSignal,
): Promise<void> {
  const { vault, manifest } = deps;
  const target = remotePathOf(rec.id);
  const scratch = join(dir, randomBytes(6).toString("hex"));
  let wrote = false;
  try {
    const plain = await openPlaintext(vault, rec, scratch, signal);
    const sealed = await vault.put(target, plain, { signal });
    wrote = true;
    const converted: ClipRecord = {
      ...rec,
      size: sealed.size,
      sha256: sealed.sha256,
      remotePath: target,
      remoteSize: sealed.remoteSize,
      uploadedAt: isoSeconds(Date.now()),
      format: "age",
    };
    // The new copy must read back to the same bytes before the old one may go.
    await digestClip(vault, converted, { signal, scratchDir: dir });
    await manifest.record(converted);
    wrote = false; // recorded: it stays even if removing the legacy file fails
    await vault.store.remove(rec.remotePath);
  } catch (err) {
    if (wrote) await vault.store.remove(target).catch(() => {});
    throw err instanceof ClipRestoreError ? err : clipError(vault, rec, err);
  } finally {
    await rm(scratch, { force: true });
  }
}

/** A legacy file whose clip is in the vault as age too: removed when both hold the same bytes. */
async function dropDuplicate(
  vault: AgeVault,
  legacy: ClipRecord,
  age: ClipRecord,
  dir: string,
  signal?: AbortSignal,
): Promise<void> {
  if (!age.sha256) throw new ClipRestoreError(legacy.id, "no checksum recorded to compare with");
  const r = await digestClip(vault, legacy, { signal, scratchDir: dir });
  if (r.sha256 !== age.sha256) {
    throw new ClipRestoreError(
      legacy.id,
      `the legacy file ${legacy.remotePath} differs from ${age.remotePath} in the vault; left alone`,
    );
  }
  await vault.store.remove(legacy.remotePath);
}
