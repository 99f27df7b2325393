import { randomUUID } from "node:crypto";
import { posix } from "node:path";
import { remotePathOf } from "./clipId.js";
import { checkClips } from "./clips/checkClips.js";
import type { EventBus, RunSummary } from "./events.js";
import { acquireLock } from "./lock.js";
import { errorMessage, type Logger } from "./log.js";
import type { Manifest } from "./manifest.js";
import { INCOMPLETE_RECHECK_MS, needsCheck, type Plan, planSync } from "./plan.js";
import { isPermanent, withRetry } from "./retry.js";
import { scanSource } from "./scan.js";
import { PART_PATTERN, type SourceStore, type Store } from "./storage/store.js";
import { backUpClip, ClipChangedError } from "./transfer.js";

export interface SyncDeps {
  source: SourceStore;
  destination: Store;
  manifest: Manifest;
  events: EventBus;
  logger: Logger;
  stateDir: string;
  /** age recipients: the identity's own plus encryption.recipients. */
  recipients: () => Promise<string[]>;
  extensions: readonly string[];
  stableSeconds: number;
  concurrency: number;
  retries: number;
  /** Base of the backoff between attempts; small in tests. */
  retryDelayMs?: number;
  /** A clip whose transfer moves no byte for this long fails (and is retried); default 120 s. */
  idleTimeoutMs?: number;
  /** A clip that takes longer than this in all fails (and is retried); default 4 h. */
  clipTimeoutMs?: number;
  now?: () => number;
}

export interface SyncOptions {
  trigger: string;
  camera?: string;
  date?: string;
  dryRun?: boolean;
  /** Clip ids to back up first, without waiting for them to settle (named by a trigger). */
  priority?: string[];
  signal?: AbortSignal;
}

export interface SyncResult extends RunSummary {
  plan: Plan;
}

/** `<id>.age.part-<token>`: an upload of ours that never got its final name. */
function isStrayUpload(name: string): boolean {
  return PART_PATTERN.test(name) && name.replace(PART_PATTERN, "").endsWith(".age");
}

/** Lists, plans, and backs up clips: download -> encrypt -> `.part` upload -> rename -> record. */
export class SyncEngine {
  constructor(private readonly deps: SyncDeps) {}

  async run(opts: SyncOptions): Promise<SyncResult> {
    const { deps } = this;
    const now = deps.now ?? Date.now;
    const runId = randomUUID().slice(0, 8);
    const startedAt = new Date(now()).toISOString();
    const log = deps.logger.child({ run: runId });

    let crashedPid: number | undefined;
    const release = opts.dryRun
      ? async () => {}
      : await acquireLock(deps.stateDir, { onStale: (pid) => (crashedPid = pid) });
    try {
      await deps.manifest.reload();
      if (crashedPid !== undefined) {
        // A killed run may have written a clip's shard but not the totals after it.
        log.warn({ pid: crashedPid }, "the previous run did not finish; checking the manifest");
        await deps.manifest.reconcileTotals();
      }
      deps.events.emit("syncStarted", { runId, trigger: opts.trigger, startedAt });
      log.info({ trigger: opts.trigger }, "sync started");

      const listing = await scanSource(deps.source, {
        extensions: deps.extensions,
        camera: opts.camera,
        date: opts.date,
        logger: log,
      });
      const backedUp = new Map<string, number>();
      for (const date of new Set(listing.map((c) => c.date))) {
        for (const rec of await deps.manifest.listDate(date)) backedUp.set(rec.id, rec.size);
      }
      // Only clips not yet in the vault at this size are read (a few bytes each).
      const verdicts = await checkClips(
        deps.source,
        listing.filter((c) => needsCheck(c, backedUp)),
        log,
      );
      const plan = planSync({
        listing,
        backedUp,
        sightings: deps.manifest.status.sightings,
        nowMs: now(),
        stableMs: deps.stableSeconds * 1000,
        priority: opts.priority,
        settled: opts.priority,
        verdicts,
      });
      for (const p of plan.pending) {
        log.debug(
          { clip: p.clip.id, size: p.clip.size, reason: p.reason },
          "clip not complete yet",
        );
      }
      for (const [id, backedUpSize] of plan.changedAfterBackup) {
        const size = plan.toUpload.find((c) => c.id === id)?.size;
        log.warn(
          { clip: id, backedUpSize, size },
          "clip changed after backup; backing it up again",
        );
      }
      const bytes = plan.toUpload.reduce((n, c) => n + c.size, 0);
      deps.events.emit("syncPlanned", {
        runId,
        toUpload: plan.toUpload.length,
        bytes,
        pending: plan.pending.length,
      });
      log.info(
        {
          found: listing.length,
          alreadyBackedUp: plan.alreadyBackedUp,
          toUpload: plan.toUpload.length,
          pending: plan.pending.length,
        },
        "sync planned",
      );

      let nextSettleAt = plan.pending.length
        ? Math.min(...plan.pending.map((p) => p.settleAt))
        : undefined;
      if (opts.dryRun) {
        return {
          runId,
          trigger: opts.trigger,
          startedAt,
          finishedAt: new Date(now()).toISOString(),
          uploaded: 0,
          failed: 0,
          pending: plan.pending.length,
          bytes: 0,
          nextSettleAt,
          plan,
        };
      }

      const recipients = await deps.recipients();
      await this.sweepStrayUploads(
        new Set(plan.toUpload.map((c) => posix.dirname(remotePathOf(c.id)))),
        log,
      );
      const done = new Set<string>();
      /** Clips that changed while they were backed up: pending, for a later run. */
      const changed = new Set<string>();
      let uploadedBytes = 0;
      let firstError: string | undefined;
      let fatal: unknown;

      const queue = [...plan.toUpload];
      const worker = async () => {
        for (let clip = queue.shift(); clip; clip = queue.shift()) {
          if (fatal || opts.signal?.aborted) return;
          try {
            const rec = await withRetry(
              () => backUpClip(deps, clip, recipients, runId, opts.signal),
              {
                retries: deps.retries,
                baseDelayMs: deps.retryDelayMs ?? 1000,
                signal: opts.signal,
                retryIf: (err) => !(err instanceof ClipChangedError),
                onRetry: (err, attempt, delayMs) => {
                  log.warn(
                    {
                      clip: clip.id,
                      attempt,
                      delayMs: Math.round(delayMs),
                      err: errorMessage(err),
                    },
                    "clip failed; retrying",
                  );
                  deps.events.emit("clipFailed", {
                    runId,
                    id: clip.id,
                    error: errorMessage(err),
                    willRetry: true,
                  });
                },
              },
            );
            done.add(clip.id);
            uploadedBytes += clip.size;
            deps.events.emit("clipBackedUp", {
              runId,
              id: rec.id,
              camera: rec.camera,
              date: rec.date,
              size: rec.size,
              at: rec.uploadedAt,
            });
            log.info({ clip: clip.id, size: clip.size }, "clip backed up");
          } catch (err) {
            if (err instanceof ClipChangedError) {
              changed.add(clip.id);
              log.info(
                { clip: clip.id, change: err.message },
                "clip changed while it was backed up; upload discarded, a later run backs it up",
              );
              continue;
            }
            const message = `${clip.id}: ${errorMessage(err)}`;
            firstError ??= message;
            log.error({ clip: clip.id, err: errorMessage(err) }, "clip failed");
            deps.events.emit("clipFailed", {
              runId,
              id: clip.id,
              error: errorMessage(err),
              willRetry: false,
            });
            if (isPermanent(err)) fatal = err;
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(deps.concurrency, queue.length) }, worker));

      const notDone = plan.toUpload.filter((c) => !done.has(c.id) && !changed.has(c.id));
      if (changed.size > 0) {
        nextSettleAt = Math.min(nextSettleAt ?? Infinity, now() + INCOMPLETE_RECHECK_MS);
      }
      if (!firstError && notDone.length > 0)
        firstError = "run stopped before every clip was backed up";
      const sightings = Object.fromEntries(
        Object.entries(plan.sightings).filter(([id]) => !done.has(id)),
      );
      const summary: RunSummary = {
        runId,
        trigger: opts.trigger,
        startedAt,
        finishedAt: new Date(now()).toISOString(),
        uploaded: done.size,
        failed: notDone.length,
        pending: plan.pending.length + changed.size,
        bytes: uploadedBytes,
        ...(firstError ? { error: firstError } : {}),
        nextSettleAt,
      };
      await deps.manifest.recordRun(summary, sightings, {
        complete: opts.camera === undefined && opts.date === undefined,
      });
      if (summary.error)
        deps.events.emit("syncFailed", { runId, error: summary.error, at: summary.finishedAt });
      deps.events.emit("syncFinished", summary);
      log.info(
        {
          uploaded: summary.uploaded,
          failed: summary.failed,
          pending: summary.pending,
          bytes: summary.bytes,
        },
        "sync finished",
      );
      return { ...summary, plan };
    } catch (err) {
      const at = new Date(now()).toISOString();
      // A run that could not even list the camera is the most common failure: record it too,
      // so `status`, the bot and Home Assistant show it after a restart.
      const failedRun: RunSummary = {
        runId,
        trigger: opts.trigger,
        startedAt,
        finishedAt: at,
        uploaded: 0,
        failed: 0,
        pending: deps.manifest.status.pending,
        bytes: 0,
        error: errorMessage(err),
      };
      if (!opts.dryRun) {
        await deps.manifest.recordRun(failedRun, {}, { complete: false }).catch(() => {});
      }
      deps.events.emit("syncFailed", { runId, error: errorMessage(err), at });
      throw err;
    } finally {
      await release();
    }
  }

  /**
   * Removes `.part` uploads that a killed run (or a cleanup that lost its connection) left in
   * the folders this run writes to. Runs under the lock, before any upload of this run starts.
   */
  private async sweepStrayUploads(dirs: Iterable<string>, log: Logger): Promise<void> {
    const { destination } = this.deps;
    for (const dir of dirs) {
      try {
        for (const entry of await destination.list(dir)) {
          if (entry.kind !== "file" || !isStrayUpload(entry.name)) continue;
          await destination.remove(`${dir}/${entry.name}`);
          log.info(
            { path: `${dir}/${entry.name}` },
            "removed an unfinished upload of an earlier run",
          );
        }
      } catch (err) {
        // Not fatal: the uploads that follow will say whether the destination works.
        log.warn({ dir, err: errorMessage(err) }, "could not clean up unfinished uploads");
      }
    }
  }
}
