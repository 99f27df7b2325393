import { posix } from "node:path";
import type { Manifest } from "../manifest/manifest.js";
import type { Source, VaultStore } from "../storage/types.js";
import { errorMessage, type Logger } from "../util/log.js";
import { localDate } from "../util/time.js";

/**
 * Opt-in retention: remote clips whose date folder is more than `remoteDays` days old are
 * deleted from the destination, then from the manifest. Only clips the manifest knows are
 * touched (never other files on the destination). `dryRun` only logs what would go.
 *
 * A clip the camera still has is kept: the next sync would back it up again at once. So the
 * vault keeps old clips as long as motionEye does ("Preserve Movies"), and says so in the log.
 */

export interface RetentionOptions {
  remoteDays: number;
  dryRun: boolean;
  logger: Logger;
  /** Defaults to now; dates are motionEye's local dates. */
  now?: Date;
  signal?: AbortSignal;
}

export interface RetentionResult {
  /** Clips removed (or, in a dry run, that would be). */
  deleted: number;
  bytes: number;
  failed: number;
  /** Old enough, but kept: still on the camera (or the camera could not be asked). */
  keptOnSource: number;
  /** Clips dated before this day go. */
  cutoff: string;
  dryRun: boolean;
}

export { localDate };

/** The first date kept: today minus `days` (so `days` full days are kept, plus today). */
export function retentionCutoff(now: Date, days: number): string {
  const d = new Date(now.getFullYear(), now.getMonth(), now.getDate() - days);
  return localDate(d);
}

export interface RetentionDeps {
  manifest: Manifest;
  store: VaultStore;
  /** The source a clip came from and its path there; undefined for a source no longer configured. */
  locate(id: string): { source: Source; name: string; path: string } | undefined;
}

export async function applyRetention(
  deps: RetentionDeps,
  opts: RetentionOptions,
): Promise<RetentionResult> {
  const log = opts.logger.child({ job: "retention" });
  const cutoff = retentionCutoff(opts.now ?? new Date(), opts.remoteDays);
  const result: RetentionResult = {
    deleted: 0,
    bytes: 0,
    failed: 0,
    keptOnSource: 0,
    cutoff,
    dryRun: opts.dryRun,
  };
  // Names in each source folder; undefined when the camera could not be listed.
  const onSource = new Map<string, Set<string> | undefined>();
  const sourceHas = async (id: string): Promise<boolean> => {
    const at = deps.locate(id);
    if (!at) return false; // its source is no longer configured: nothing would back it up again
    const dir = posix.dirname(at.path);
    const key = `${at.name}:${dir}`;
    if (!onSource.has(key)) {
      try {
        onSource.set(key, new Set((await at.source.list(dir)).map((e) => e.name)));
      } catch (err) {
        log.warn(
          { source: at.name, dir, err: errorMessage(err) },
          "retention: cannot list the camera; keeping",
        );
        onSource.set(key, undefined);
      }
    }
    const names = onSource.get(key);
    return names === undefined || names.has(posix.basename(at.path));
  };

  const { manifest } = deps;
  for (const date of await manifest.dates()) {
    if (date >= cutoff) break; // ascending
    for (const clip of await manifest.listDate(date)) {
      if (opts.signal?.aborted) break;
      if (await sourceHas(clip.id)) {
        result.keptOnSource++;
        continue;
      }
      if (opts.dryRun) {
        log.info({ clip: clip.id, remote: clip.remotePath }, "retention (dry run): would delete");
        result.deleted++;
        result.bytes += clip.size;
        continue;
      }
      try {
        await deps.store.remove(clip.remotePath);
        await manifest.remove(clip.id, clip.date);
        result.deleted++;
        result.bytes += clip.size;
        log.info({ clip: clip.id }, "retention: deleted");
      } catch (err) {
        result.failed++;
        log.warn({ clip: clip.id, err: errorMessage(err) }, "retention: could not delete");
      }
    }
  }
  if (result.keptOnSource > 0) {
    log.warn(
      { kept: result.keptOnSource, cutoff },
      "retention: clips older than remoteDays are kept while the camera still has them (a new sync would back them up again): set motionEye's Preserve Movies to at most retention.remoteDays",
    );
  }
  log.info(
    { ...result, remoteDays: opts.remoteDays },
    opts.dryRun
      ? `retention (dry run): ${result.deleted} clip(s) dated before ${cutoff} would be deleted`
      : `retention: deleted ${result.deleted} clip(s) dated before ${cutoff}, ${result.failed} failed`,
  );
  return result;
}
