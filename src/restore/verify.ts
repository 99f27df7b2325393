import { hasExtension } from "../clips/clipId.js";
import { listVaultFiles } from "../clips/vaultListing.js";
import type { AgeVault } from "../crypto/ageVault.js";
import type { ClipRecord, Manifest } from "../manifest/manifest.js";
import { PART_PATTERN } from "../storage/types.js";
import { mapLimit } from "../util/async.js";
import { errorMessage } from "../util/log.js";
import { digestClip, isCorruption, scratchDir } from "./open.js";

/**
 * `verify`: read clips back from the destination, decrypt them, compare with the manifest's
 * sha256; and compare the destination's date folders with the manifest for files nobody knows.
 */

export interface VerifyOptions {
  /** Check only this many clips, picked at random (the listing is still complete). */
  sample?: number;
  /** Only this day. */
  date?: string;
  jobs: number;
  signal?: AbortSignal;
  onChecked?(clip: ClipRecord, problem: string | undefined): void;
}

export interface VerifyReport {
  /** Clips read back. */
  checked: number;
  ok: number;
  /** Legacy clips recorded without a checksum: their HMAC checked out, nothing to compare with. */
  unverified: string[];
  /** In the manifest, not on the destination. */
  missing: Array<{ id: string; path: string }>;
  /** On the destination but damaged, altered, or not what the manifest says. */
  corrupt: Array<{ id: string; error: string }>;
  /** Could not be checked (connection lost, wrong key file...): not known to be bad, not known good. */
  failed: Array<{ id: string; error: string }>;
  /** `.age` or video files on the destination in no manifest record (relative to destination.path). */
  orphaned: string[];
  /** `.part-` files of unfinished uploads: reported, not counted as problems. */
  strays: string[];
}

export function hasProblems(r: VerifyReport): boolean {
  return r.missing.length + r.corrupt.length + r.failed.length + r.orphaned.length > 0;
}

function sample<T>(items: readonly T[], n: number): T[] {
  const a = [...items];
  const k = Math.min(n, a.length);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(Math.random() * (a.length - i));
    [a[i], a[j]] = [a[j] as T, a[i] as T];
  }
  return a.slice(0, k);
}

export interface VerifyDeps {
  vault: AgeVault;
  manifest: Manifest;
  /** The prefixed sources' folders in the vault. */
  prefixes: readonly string[];
  /** Video extensions of every source: such files in a date folder may be orphaned clips. */
  extensions: readonly string[];
  stateDir: string;
}

export async function verifyVault(deps: VerifyDeps, opts: VerifyOptions): Promise<VerifyReport> {
  const { vault, manifest } = deps;
  // Listing first, manifest second: a clip uploaded meanwhile is recorded by the time we read the
  // manifest, so it is not taken for an orphan.
  const files = await listVaultFiles(vault.store, { date: opts.date, prefixes: deps.prefixes });
  await manifest.reload();
  const clips = opts.date ? await manifest.listDate(opts.date) : await manifest.all();

  const remote = new Map(files.map((f) => [f.path, f]));
  const known = new Set(clips.map((c) => c.remotePath));
  const report: VerifyReport = {
    checked: 0,
    ok: 0,
    unverified: [],
    missing: [],
    corrupt: [],
    failed: [],
    orphaned: [],
    strays: [],
  };
  const { extensions } = deps;
  for (const f of files) {
    if (PART_PATTERN.test(f.name)) report.strays.push(f.path);
    // Only what could be a clip counts: `.age` files and (legacy) video files; a note or a
    // thumbnail someone left in a date folder is not ours to judge.
    else if (!known.has(f.path) && (f.name.endsWith(".age") || hasExtension(f.name, extensions))) {
      report.orphaned.push(f.path);
    }
  }

  const chosen = opts.sample === undefined ? clips : sample(clips, opts.sample);
  const scratch = await scratchDir(deps.stateDir);
  try {
    await mapLimit(chosen, opts.jobs, async (clip) => {
      if (opts.signal?.aborted) return;
      let problem: string | undefined;
      const file = remote.get(clip.remotePath);
      if (!file) {
        report.missing.push({ id: clip.id, path: clip.remotePath });
        problem = "missing";
      } else if (file.size !== clip.remoteSize) {
        problem = `${clip.id}: the remote file is ${file.size} bytes, the manifest recorded ${clip.remoteSize} (truncated or replaced)`;
        report.corrupt.push({ id: clip.id, error: problem });
      } else {
        try {
          const r = await digestClip(vault, clip, { signal: opts.signal, scratchDir: scratch.dir });
          if (r.verified) report.ok++;
          else report.unverified.push(clip.id);
        } catch (err) {
          if (opts.signal?.aborted) return;
          problem = errorMessage(err);
          (isCorruption(err) ? report.corrupt : report.failed).push({
            id: clip.id,
            error: problem,
          });
        }
      }
      report.checked++;
      opts.onChecked?.(clip, problem);
    });
  } finally {
    await scratch.done();
  }
  const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  report.missing.sort(byId);
  report.corrupt.sort(byId);
  report.failed.sort(byId);
  report.unverified.sort();
  return report;
}
