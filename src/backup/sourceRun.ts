import { posix } from "node:path";
import { checkClips } from "../clips/checkClips.js";
import { remotePathOf } from "../clips/clipId.js";
import type { SourceRef, SourceSet } from "../clips/sources.js";
import type { AgeVault } from "../crypto/ageVault.js";
import type { Manifest, Sighting } from "../manifest/manifest.js";
import type { Source } from "../storage/types.js";
import { mapLimit } from "../util/async.js";
import type { EventBus, SourceRunSummary } from "../util/events.js";
import { errorMessage, type Logger } from "../util/log.js";
import { isPermanent, withRetry } from "../util/retry.js";
import { INCOMPLETE_RECHECK_MS, needsCheck, type Plan, planSync } from "./plan.js";
import { type SourceClip, scanSource } from "./scan.js";
import { checkCameraFolder, checkSourceRoot, type SourceRootInfo } from "./sourceRoot.js";
import { sweepStrayUploads } from "./sweep.js";
import { ClipChangedError, transferClip } from "./transfer.js";
import { withWatchdog } from "./watchdog.js";

/** One camera device as the engine sees it. */
export interface SourcePart {
  ref: SourceRef;
  source: Source;
  stableSeconds: number;
  /** A movie never closed is backed up as it is once unchanged this long (see planSync). */
  incompleteAfterSeconds: number;
  extensions: readonly string[];
  /** The config key and value of its root, to name them when the root is missing. */
  root?: SourceRootInfo;
}

/** What every source's part of one run shares. */
export interface RunContext {
  runId: string;
  log: Logger;
  sources: SourceSet;
  vault: AgeVault;
  manifest: Manifest;
  events: EventBus;
  /** Clips in flight at once, per source (each source has its own camera connection). */
  concurrency: number;
  retries: number;
  retryDelayMs: number;
  idleTimeoutMs: number;
  clipTimeoutMs: number;
  now: () => number;
  camera?: string;
  /** The run is one source's camera: a missing folder is a failure, not "0 clips". */
  cameraMustExist?: boolean;
  date?: string;
  dryRun?: boolean;
  priority?: readonly string[];
  settled?: readonly string[];
  signal?: AbortSignal;
}

export interface SourceOutcome {
  summary: SourceRunSummary;
  plan: Plan<SourceClip> | undefined;
  /** Sightings of the clips it saw but did not back up. */
  sightings: Record<string, Sighting>;
}

/**
 * One source's part of a run: list, plan, back up. A source that cannot be listed fails only its
 * own part (the others go on); a clip that fails is retried, then counted, and never stops the
 * other clips unless the failure is permanent (the vault refuses us).
 */
export async function runSource(part: SourcePart, ctx: RunContext): Promise<SourceOutcome> {
  const { ref } = part;
  const log = ctx.log.child({ source: ref.name });
  const named = (message: string) => (ctx.sources.qualified ? `${ref.name}: ${message}` : message);

  let listing: SourceClip[];
  try {
    const root = part.root ?? { key: `${ref.name}.path`, path: "/" };
    await checkSourceRoot(part.source, root);
    if (ctx.camera !== undefined && ctx.cameraMustExist) {
      await checkCameraFolder(part.source, root, ctx.camera);
    }
    listing = await scanSource(part.source, ref, ctx.sources, {
      extensions: part.extensions,
      camera: ctx.camera,
      date: ctx.date,
      logger: log,
    });
  } catch (err) {
    const error = named(errorMessage(err));
    log.error({ err: errorMessage(err) }, "cannot list the source");
    ctx.events.emit("sourceFailed", {
      runId: ctx.runId,
      source: ref.name,
      error,
      at: new Date(ctx.now()).toISOString(),
    });
    const pending = ctx.manifest.status.sources?.[ref.name]?.pending ?? 0;
    return {
      summary: { uploaded: 0, failed: 0, pending, bytes: 0, reachable: false, error },
      plan: undefined,
      sightings: {},
    };
  }

  const backedUp = new Map<string, number>();
  const backedUpIncomplete = new Map<string, number>();
  for (const date of new Set(listing.map((c) => c.date))) {
    for (const rec of await ctx.manifest.listDate(date)) {
      backedUp.set(rec.id, rec.size);
      if (rec.incomplete) backedUpIncomplete.set(rec.id, rec.mtimeMs);
    }
  }
  // Only clips not yet in the vault at this size are read (a few bytes each).
  const verdicts = await checkClips(
    part.source,
    listing
      .filter((c) => needsCheck(c, backedUp, backedUpIncomplete))
      .map((c) => ({ id: c.path, size: c.size })),
    log,
  );
  const plan = planSync({
    listing,
    backedUp,
    sightings: ctx.manifest.status.sightings,
    nowMs: ctx.now(),
    stableMs: part.stableSeconds * 1000,
    incompleteAfterMs: part.incompleteAfterSeconds * 1000,
    backedUpIncomplete,
    priority: ctx.priority,
    settled: ctx.settled,
    // The checks read the source's paths; the plan speaks vault ids.
    verdicts: new Map(
      listing.flatMap((c) => {
        const v = verdicts.get(c.path);
        return v ? [[c.id, v] as const] : [];
      }),
    ),
  });
  for (const p of plan.pending) {
    log.debug({ clip: p.clip.id, size: p.clip.size, reason: p.reason }, "clip not complete yet");
  }
  for (const [id, backedUpSize] of plan.changedAfterBackup) {
    const size = plan.toUpload.find((c) => c.id === id)?.size;
    log.warn({ clip: id, backedUpSize, size }, "clip changed after backup; backing it up again");
  }
  for (const id of plan.incomplete) {
    log.warn(
      { clip: id, incompleteAfterSeconds: part.incompleteAfterSeconds },
      "movie never closed (its recording was cut off) and unchanged: backing it up as it is, marked incomplete",
    );
  }
  let nextSettleAt = plan.pending.length
    ? Math.min(...plan.pending.map((p) => p.settleAt))
    : undefined;
  ctx.events.emit("syncPlanned", {
    runId: ctx.runId,
    source: ref.name,
    toUpload: plan.toUpload.length,
    bytes: plan.toUpload.reduce((n, c) => n + c.size, 0),
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
  if (ctx.dryRun) {
    return {
      summary: {
        uploaded: 0,
        failed: 0,
        pending: plan.pending.length,
        bytes: 0,
        reachable: true,
        nextSettleAt,
      },
      plan,
      sightings: plan.sightings,
    };
  }

  await sweepStrayUploads(
    ctx.vault.store,
    new Set(plan.toUpload.map((c) => posix.dirname(remotePathOf(c.id)))),
    log,
  );
  const done = await uploadAll(plan.toUpload, part, ctx, log, plan.incomplete);
  // Clips that changed while they were backed up: pending, for a later run.
  const notDone = plan.toUpload.filter((c) => !done.ids.has(c.id) && !done.changed.has(c.id));
  if (done.changed.size > 0) {
    nextSettleAt = Math.min(nextSettleAt ?? Infinity, ctx.now() + INCOMPLETE_RECHECK_MS);
  }
  let error = done.firstError && named(done.firstError);
  if (!error && notDone.length > 0) error = named("run stopped before every clip was backed up");
  return {
    summary: {
      uploaded: done.ids.size,
      failed: notDone.length,
      pending: plan.pending.length + done.changed.size,
      bytes: done.bytes,
      reachable: true,
      ...(error ? { error } : {}),
      nextSettleAt,
    },
    plan,
    sightings: Object.fromEntries(
      Object.entries(plan.sightings).filter(([id]) => !done.ids.has(id)),
    ),
  };
}

/** Backs up clips in plan order (priority first), a few at a time, each under its watchdog. */
async function uploadAll(
  clips: readonly SourceClip[],
  part: SourcePart,
  ctx: RunContext,
  log: Logger,
  incomplete: ReadonlySet<string>,
): Promise<{ ids: Set<string>; changed: Set<string>; bytes: number; firstError?: string }> {
  const ids = new Set<string>();
  const changed = new Set<string>();
  let bytes = 0;
  let firstError: string | undefined;
  let fatal: unknown;
  const deps = {
    source: part.source,
    vault: ctx.vault,
    manifest: ctx.manifest,
    events: ctx.events,
    logger: log,
    now: ctx.now,
    incomplete,
  };
  const one = async (clip: SourceClip) => {
    if (fatal || ctx.signal?.aborted) return;
    try {
      const rec = await withRetry(
        () =>
          withWatchdog((touch, signal) => transferClip(clip, ctx.runId, touch, signal, deps), {
            idleMs: ctx.idleTimeoutMs,
            totalMs: ctx.clipTimeoutMs,
            runSignal: ctx.signal,
          }),
        {
          retries: ctx.retries,
          baseDelayMs: ctx.retryDelayMs,
          signal: ctx.signal,
          retryIf: (err) => !(err instanceof ClipChangedError),
          onRetry: (err, attempt, delayMs) => {
            log.warn(
              { clip: clip.id, attempt, delayMs: Math.round(delayMs), err: errorMessage(err) },
              "clip failed; retrying",
            );
            ctx.events.emit("clipFailed", {
              runId: ctx.runId,
              id: clip.id,
              source: part.ref.name,
              error: errorMessage(err),
              willRetry: true,
            });
          },
        },
      );
      ids.add(clip.id);
      bytes += clip.size;
      ctx.events.emit("clipBackedUp", {
        runId: ctx.runId,
        id: rec.id,
        source: part.ref.name,
        camera: rec.camera,
        date: rec.date,
        size: rec.size,
        at: rec.uploadedAt,
        ...(rec.incomplete ? { incomplete: true as const } : {}),
      });
      log.info(
        { clip: clip.id, size: clip.size, ...(rec.incomplete ? { incomplete: true } : {}) },
        "clip backed up",
      );
    } catch (err) {
      if (err instanceof ClipChangedError) {
        changed.add(clip.id);
        log.info(
          { clip: clip.id, change: err.message },
          "clip changed while it was backed up; upload discarded, a later run backs it up",
        );
        return;
      }
      firstError ??= `${clip.id}: ${errorMessage(err)}`;
      log.error({ clip: clip.id, err: errorMessage(err) }, "clip failed");
      ctx.events.emit("clipFailed", {
        runId: ctx.runId,
        id: clip.id,
        source: part.ref.name,
        error: errorMessage(err),
        willRetry: false,
      });
      if (isPermanent(err)) fatal = err;
    }
  };
  await mapLimit(clips, ctx.concurrency, one);
  return { ids, changed, bytes, firstError };
}
