import type { SourceSet } from "../clips/sources.js";
import type { Settings, TriggerQueue, TriggerRequest } from "../extensions/contract.js";
import { addUpRuns, type RunSummary } from "../util/events.js";
import { errorMessage, type Logger } from "../util/log.js";
import { PausedError, type RunQueue, type RunRequest, StoppedError } from "./queue.js";

/** Setting that keeps the pause ("Backups enabled" off) across restarts. */
export const BACKUPS_ENABLED_SETTING = "backupsEnabled";

export interface TriggersDeps {
  sources: SourceSet;
  /** Makes the queue of one source (its runs go through `run`). */
  makeQueue(source: string, isPaused: () => boolean): RunQueue;
  settings: Settings;
  logger: Logger;
}

/**
 * Every source of work goes through here: one queue per camera device (an offline device's runs
 * never hold up another's), a pause shared by all, and one view of them for extensions. A
 * trigger that names a source runs that source; one that names none runs every source. A named
 * file is backed up first in each source that has it; it skips `stableSeconds` (motionEye names
 * the file once closed) only where it cannot be another device's clip of the same name: when
 * the trigger names its source, or the vault has one source.
 */
export class Triggers implements TriggerQueue {
  readonly queues = new Map<string, RunQueue>();
  private pausedNow: boolean;
  private stopped = false;
  private readonly pauseListeners = new Set<(paused: boolean) => void>();
  private readonly runningListeners = new Set<(running: boolean) => void>();
  private wasRunning = false;
  private nextRun: () => Date | undefined = () => undefined;

  constructor(private readonly deps: TriggersDeps) {
    this.pausedNow = deps.settings.get(BACKUPS_ENABLED_SETTING) === false;
    for (const name of deps.sources.names) {
      const queue = deps.makeQueue(name, () => this.pausedNow);
      queue.onRunningChange(() => this.runningChanged());
      this.queues.set(name, queue);
    }
  }

  get running(): boolean {
    return [...this.queues.values()].some((q) => q.running);
  }

  /** The sources with a run in progress. */
  get runningSources(): string[] {
    return [...this.queues].filter(([, q]) => q.running).map(([name]) => name);
  }

  get paused(): boolean {
    return this.pausedNow;
  }

  /** Runs started since `serve` started, over every source. */
  get runsStarted(): number {
    return [...this.queues.values()].reduce((n, q) => n + q.runsStarted, 0);
  }

  request(req: TriggerRequest): Promise<RunSummary> {
    if (this.stopped) return Promise.reject(new StoppedError());
    if (this.pausedNow) {
      this.deps.logger.info({ origin: req.origin }, "trigger ignored: backups are paused");
      return Promise.reject(new PausedError());
    }
    const { sources } = this.deps;
    const named = req.source === undefined ? undefined : sources.get(req.source);
    if (req.source !== undefined && !named) {
      this.deps.logger.info(
        { origin: req.origin, source: req.source },
        "the trigger names no source of this config: every source runs",
      );
    }
    const targets = named ? [named] : sources.list;
    const settled = targets.length === 1;
    const runs = targets.map((ref) => {
      const queue = this.queues.get(ref.name) as RunQueue;
      const clipIds = (req.clipPaths ?? []).map((p) => sources.idOf(ref, p));
      return queue.request({ origin: req.origin, clipIds, settled });
    });
    if (runs.length === 1) return runs[0] as Promise<RunSummary>;
    return Promise.allSettled(runs).then((results) => {
      const done = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
      if (done.length === 0) throw (results[0] as PromiseRejectedResult).reason;
      return mergeSummaries(done);
    });
  }

  /**
   * Runs `job` alone: after the runs in progress, before the next ones, holding every queue's
   * slot (retention must not remove what a run is about to record).
   */
  async exclusive(job: (signal: AbortSignal) => Promise<void>): Promise<void> {
    const releases: Array<() => void> = [];
    const signals: AbortSignal[] = [];
    const held = [...this.queues.values()].map(
      (queue) =>
        new Promise<void>((resolve, reject) => {
          queue
            .exclusive(
              (signal) =>
                new Promise<void>((release) => {
                  signals.push(signal);
                  releases.push(release);
                  resolve();
                }),
            )
            .catch(reject);
        }),
    );
    try {
      await Promise.all(held);
      await job(AbortSignal.any(signals));
    } finally {
      for (const release of releases) release();
    }
  }

  async setPaused(paused: boolean): Promise<void> {
    if (paused === this.pausedNow) return;
    this.pausedNow = paused;
    this.deps.logger.info(paused ? "backups paused" : "backups resumed");
    if (paused) for (const q of this.queues.values()) q.pause();
    for (const listener of this.pauseListeners) {
      try {
        listener(paused);
      } catch (err) {
        this.deps.logger.warn({ err: errorMessage(err) }, "a pause listener failed");
      }
    }
    await this.deps.settings.set(BACKUPS_ENABLED_SETTING, !paused);
  }

  onPausedChange(listener: (paused: boolean) => void): () => void {
    this.pauseListeners.add(listener);
    return () => this.pauseListeners.delete(listener);
  }

  /** Called when any source's run starts, and when the last one running ends. */
  onRunningChange(listener: (running: boolean) => void): () => void {
    this.runningListeners.add(listener);
    return () => this.runningListeners.delete(listener);
  }

  nextScheduledRun(): Date | undefined {
    return this.nextRun();
  }

  /** The schedule tells when it runs next (for Home Assistant, the bot, the state). */
  setNextScheduledRun(fn: () => Date | undefined): void {
    this.nextRun = fn;
  }

  /** No new work; asks the runs in progress to stop. Resolves when every slot is free. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.queues.values()].map((q) => q.stop()));
  }

  private runningChanged(): void {
    const running = this.running;
    if (running === this.wasRunning) return;
    this.wasRunning = running;
    for (const listener of this.runningListeners) {
      try {
        listener(running);
      } catch (err) {
        this.deps.logger.warn({ err: errorMessage(err) }, "a running listener failed");
      }
    }
  }
}

/** One summary for a request that ran several sources. */
export function mergeSummaries(runs: readonly RunSummary[]): RunSummary {
  const first = runs[0] as RunSummary;
  return {
    runId: runs.map((r) => r.runId).join("+"),
    trigger: first.trigger,
    startedAt: runs.map((r) => r.startedAt).sort()[0] as string,
    finishedAt: runs
      .map((r) => r.finishedAt)
      .sort()
      .at(-1) as string,
    ...addUpRuns(runs),
    sources: Object.assign({}, ...runs.map((r) => r.sources ?? {})),
  };
}

export type { RunRequest };
