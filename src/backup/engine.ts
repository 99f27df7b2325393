import { randomUUID } from "node:crypto";
import type { SourceSet } from "../clips/sources.js";
import type { AgeVault } from "../crypto/ageVault.js";
import type { Manifest, Sighting } from "../manifest/manifest.js";
import {
  addUpRuns,
  type EventBus,
  type RunSummary,
  type SourceRunSummary,
} from "../util/events.js";
import { errorMessage, type Logger } from "../util/log.js";
import type { SharedLock } from "./lock.js";
import type { Plan } from "./plan.js";
import type { SourceClip } from "./scan.js";
import { type RunContext, runSource, type SourcePart } from "./sourceRun.js";

export interface EngineDeps {
  sources: readonly SourcePart[];
  sourceSet: SourceSet;
  vault: AgeVault;
  manifest: Manifest;
  events: EventBus;
  logger: Logger;
  lock: SharedLock;
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
  /** Names of the sources to run (default: every one). */
  sources?: readonly string[];
  /** Only this camera folder (on the sources run). */
  camera?: string;
  date?: string;
  dryRun?: boolean;
  /** Clip ids (vault ids) to back up first (named by a trigger). */
  priority?: readonly string[];
  /** Clip ids known to be finished whatever their mtime (named by motionEye after closing them). */
  settled?: readonly string[];
  signal?: AbortSignal;
}

export interface SyncResult extends RunSummary {
  /** Each source's plan; absent for a source that could not be listed. */
  plans: Record<string, Plan<SourceClip> | undefined>;
}

/**
 * Runs backups: takes the state dir's lock, then lists, plans and backs up each source at once
 * (sourceRun.ts), and records the run. One source that is offline fails only its part.
 */
export class SyncEngine {
  constructor(private readonly deps: EngineDeps) {}

  /** The sources this engine backs up, by name. */
  get sourceNames(): string[] {
    return this.deps.sources.map((s) => s.ref.name);
  }

  async run(opts: SyncOptions): Promise<SyncResult> {
    const { deps } = this;
    const now = deps.now ?? Date.now;
    const runId = randomUUID().slice(0, 8);
    const startedAt = new Date(now()).toISOString();
    const log = deps.logger.child({ run: runId });
    const parts = opts.sources
      ? deps.sources.filter((p) => opts.sources?.includes(p.ref.name))
      : deps.sources;
    const names = parts.map((p) => p.ref.name);

    // Taking the lock re-reads the manifest when another process may have written it.
    const lock = opts.dryRun ? { release: async () => {} } : await deps.lock.acquire();
    try {
      deps.events.emit("syncStarted", { runId, trigger: opts.trigger, startedAt, sources: names });
      log.info({ trigger: opts.trigger, sources: names }, "sync started");
      // The keys first: a missing or unreadable identity fails the run before any camera is asked.
      if (!opts.dryRun) await deps.vault.keys.recipients();

      const ctx: RunContext = {
        runId,
        log,
        sources: deps.sourceSet,
        vault: deps.vault,
        manifest: deps.manifest,
        events: deps.events,
        concurrency: deps.concurrency,
        retries: deps.retries,
        retryDelayMs: deps.retryDelayMs ?? 1000,
        idleTimeoutMs: deps.idleTimeoutMs ?? 120_000,
        clipTimeoutMs: deps.clipTimeoutMs ?? 4 * 3600_000,
        now,
        camera: opts.camera,
        // A bare camera name over several sources need not be on each of them.
        cameraMustExist: opts.camera !== undefined && parts.length === 1,
        date: opts.date,
        dryRun: opts.dryRun,
        priority: opts.priority,
        settled: opts.settled,
        signal: opts.signal,
      };
      const outcomes = await Promise.all(parts.map((p) => runSource(p, ctx)));

      const bySource: Record<string, SourceRunSummary> = {};
      const plans: SyncResult["plans"] = {};
      const sightings: Record<string, Sighting> = {};
      outcomes.forEach((o, i) => {
        const name = names[i] as string;
        bySource[name] = o.summary;
        plans[name] = o.plan;
        Object.assign(sightings, o.sightings);
      });
      const summary = summarize(runId, opts.trigger, startedAt, now, bySource);
      if (opts.dryRun) return { ...summary, plans };

      const complete = opts.camera === undefined && opts.date === undefined;
      await deps.manifest.recordRun(summary, sightings, {
        // Sightings of a source that could not be listed stay as they were.
        scope: complete
          ? (id) => {
              const name = deps.sourceSet.sourceOf(id);
              return name !== undefined && bySource[name]?.reachable === true;
            }
          : undefined,
      });
      if (summary.error) {
        const failed = names.filter((n) => bySource[n]?.error !== undefined);
        deps.events.emit("syncFailed", {
          runId,
          error: summary.error,
          at: summary.finishedAt,
          sources: failed,
        });
      }
      deps.events.emit("syncFinished", summary);
      log.info(
        {
          uploaded: summary.uploaded,
          failed: summary.failed,
          pending: summary.pending,
          bytes: summary.bytes,
          ...(summary.error ? { error: summary.error } : {}),
        },
        "sync finished",
      );
      return { ...summary, plans };
    } catch (err) {
      const at = new Date(now()).toISOString();
      // Not a source's failure (those are in the summary): the manifest or the lock failed.
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
      if (!opts.dryRun) await deps.manifest.recordRun(failedRun, {}, {}).catch(() => {});
      deps.events.emit("syncFailed", { runId, error: errorMessage(err), at, sources: names });
      throw err;
    } finally {
      await lock.release();
    }
  }
}

/** The run's totals from its sources' parts. */
function summarize(
  runId: string,
  trigger: string,
  startedAt: string,
  now: () => number,
  bySource: Record<string, SourceRunSummary>,
): RunSummary {
  return {
    runId,
    trigger,
    startedAt,
    finishedAt: new Date(now()).toISOString(),
    ...addUpRuns(Object.values(bySource)),
    sources: bySource,
  };
}
