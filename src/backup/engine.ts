import { createHash, randomUUID } from "node:crypto";
import { posix } from "node:path";
import { type Readable, Transform, type TransformCallback } from "node:stream";
import { remotePathOf } from "../clips/clipId.js";
import { encryptStream } from "../crypto/age/age.js";
import type { ClipRecord, Manifest } from "../manifest/manifest.js";
import { PART_PATTERN, type Store } from "../storage/types.js";
import type { EventBus, RunSummary } from "../util/events.js";
import { errorMessage, type Logger } from "../util/log.js";
import { isPermanent, withRetry } from "../util/retry.js";
import { acquireLock } from "./lock.js";
import { type Plan, planSync, type SourceClip } from "./plan.js";
import { scanSource } from "./scan.js";

export interface SyncDeps {
  source: Store;
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

/** sha256 and byte count of what flows through, without buffering. */
class HashingCounter extends Transform {
  readonly hash = createHash("sha256");
  bytes = 0;
  constructor(private readonly onBytes: (n: number) => void) {
    // 256 KiB: enough to keep the pipeline busy; more only adds RSS (README, Performance).
    super({ highWaterMark: 1 << 18 });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onBytes(this.bytes);
    cb(null, chunk);
  }
}

/** Fails a clip's transfer that stalled or ran too long. */
export class ClipTimeoutError extends Error {
  override name = "ClipTimeoutError";
}

/** A byte counter that only reports progress (for the stall watchdog). */
class ProgressTap extends Transform {
  constructor(private readonly onProgress: () => void) {
    // 256 KiB: enough to keep the pipeline busy; more only adds RSS (README, Performance).
    super({ highWaterMark: 1 << 18 });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.onProgress();
    cb(null, chunk);
  }
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
      const plan = planSync({
        listing,
        backedUp,
        sightings: deps.manifest.status.sightings,
        nowMs: now(),
        stableMs: deps.stableSeconds * 1000,
        priority: opts.priority,
        settled: opts.priority,
      });
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

      const nextSettleAt = plan.pending.length
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
      let uploadedBytes = 0;
      let firstError: string | undefined;
      let fatal: unknown;

      const queue = [...plan.toUpload];
      const worker = async () => {
        for (let clip = queue.shift(); clip; clip = queue.shift()) {
          if (fatal || opts.signal?.aborted) return;
          try {
            const rec = await withRetry(() => this.backUp(clip, recipients, runId, opts.signal), {
              retries: deps.retries,
              baseDelayMs: deps.retryDelayMs ?? 1000,
              signal: opts.signal,
              onRetry: (err, attempt, delayMs) => {
                log.warn(
                  { clip: clip.id, attempt, delayMs: Math.round(delayMs), err: errorMessage(err) },
                  "clip failed; retrying",
                );
                deps.events.emit("clipFailed", {
                  runId,
                  id: clip.id,
                  error: errorMessage(err),
                  willRetry: true,
                });
              },
            });
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

      const notDone = plan.toUpload.filter((c) => !done.has(c.id));
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
        pending: plan.pending.length,
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

  /**
   * One clip with its watchdog: fails with ClipTimeoutError when no byte moves for
   * `idleTimeoutMs` or the whole clip takes longer than `clipTimeoutMs`, even when a store hangs.
   */
  private async backUp(
    clip: SourceClip,
    recipients: string[],
    runId: string,
    runSignal?: AbortSignal,
  ): Promise<ClipRecord> {
    const idleMs = this.deps.idleTimeoutMs ?? 120_000;
    const totalMs = this.deps.clipTimeoutMs ?? 4 * 3600_000;
    const abort = new AbortController();
    let reject: (err: Error) => void = () => {};
    const timedOut = new Promise<never>((_, rej) => {
      reject = rej;
    });
    const expire = (message: string) => {
      const err = new ClipTimeoutError(`${message}; giving up on this attempt`);
      abort.abort(err);
      reject(err);
    };
    let idle: NodeJS.Timeout | undefined;
    let lastTouch = 0;
    const touch = () => {
      const t = Date.now();
      if (idle && t - lastTouch < 200) return; // re-arming per chunk costs; 200 ms is plenty
      lastTouch = t;
      clearTimeout(idle);
      idle = setTimeout(() => expire(`no data moved for ${idleMs / 1000} s`), idleMs);
    };
    const overall = setTimeout(() => expire(`took longer than ${totalMs / 1000} s`), totalMs);
    // Stopping the service stops the clip at once: its `.part` is removed, nothing is recorded.
    const onRunAbort = () => {
      const err = new Error("the run was stopped");
      err.name = "AbortError";
      abort.abort(err);
      reject(err);
    };
    runSignal?.addEventListener("abort", onRunAbort, { once: true });
    if (runSignal?.aborted) onRunAbort();
    touch();
    try {
      return await Promise.race([
        this.transfer(clip, recipients, runId, touch, abort.signal),
        timedOut,
      ]);
    } finally {
      clearTimeout(idle);
      clearTimeout(overall);
      runSignal?.removeEventListener("abort", onRunAbort);
    }
  }

  /** One clip, end to end, streaming. Recorded only once its encrypted copy has its final name. */
  private async transfer(
    clip: SourceClip,
    recipients: string[],
    runId: string,
    touch: () => void,
    signal: AbortSignal,
  ): Promise<ClipRecord> {
    const { deps } = this;
    const input: Readable = await deps.source.read(clip.id);
    const counter = new HashingCounter((bytes) => {
      touch();
      deps.events.emit("clipProgress", { runId, id: clip.id, bytes });
    });
    const tap = new ProgressTap(touch);
    const onAbort = () => {
      input.destroy(signal.reason as Error);
      tap.destroy(signal.reason as Error);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    input.on("error", (err) => counter.destroy(err));
    input.pipe(counter);
    try {
      if (signal.aborted) throw signal.reason;
      const { output, sizeFor } = await encryptStream(counter, recipients);
      output.on("error", (err) => tap.destroy(err));
      output.pipe(tap);
      const remotePath = remotePathOf(clip.id);
      // The expected ciphertext size follows from the listed size: a clip that grew or was cut
      // short since the listing fails here and its `.part` is never renamed into place.
      const written = await deps.destination.writeAtomic(remotePath, tap, {
        expectedSize: sizeFor(clip.size),
      });
      // Given up on meanwhile: the file is complete, but this attempt already counts as failed.
      if (signal.aborted) throw signal.reason;
      const record: ClipRecord = {
        id: clip.id,
        camera: clip.camera,
        date: clip.date,
        name: clip.name,
        size: clip.size,
        mtimeMs: clip.mtimeMs,
        sha256: counter.hash.digest("hex"),
        remotePath,
        remoteSize: written.size,
        uploadedAt: new Date((deps.now ?? Date.now)()).toISOString(),
        format: "age",
      };
      await deps.manifest.record(record);
      return record;
    } finally {
      signal.removeEventListener("abort", onAbort);
      if (!input.readableEnded) input.destroy();
    }
  }
}
