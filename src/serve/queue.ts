import type { TriggerOrigin } from "../extensions/contract.js";
import type { RunSummary } from "../util/events.js";
import { errorMessage, type Logger } from "../util/log.js";

/**
 * The queue of one camera device's runs, for every origin of work (MQTT, schedule, settle, the
 * bot, Home Assistant); `serve` has one per source (triggers.ts), so an offline device's runs
 * never hold up another's.
 *
 * One run at a time. A request while idle starts a run at once; requests during a run coalesce
 * into ONE follow-up run whose priority holds every clip id asked for, and each request resolves
 * with the summary of the run that covered it. The follow-up starts once the triggers have been
 * quiet for a moment (a burst of motionEye events is one burst, however it is spread), never
 * more than a second after the run before it ended. When a run leaves clips still settling (the
 * motionEye end command fires before the movie is closed) the queue comes back by itself once
 * they should have settled, so the clip of that event is backed up without another event.
 * Exclusive jobs (retention) take the same single slot, so they never overlap a run.
 */

export class PausedError extends Error {
  override name = "PausedError";
  constructor() {
    super("backups are paused; the trigger was ignored");
  }
}

export class StoppedError extends Error {
  override name = "StoppedError";
  constructor() {
    super("the service is stopping; no new runs");
  }
}

export interface RunRequest {
  trigger: string;
  /** Clip ids to back up first. */
  priority: string[];
  /** Of those, the ones known to be finished (named by motionEye after closing them). */
  settled: string[];
  signal: AbortSignal;
}

/** What one queue's request asks for. */
export interface QueueRequest {
  origin: TriggerOrigin;
  /** Clip ids (in the vault) to back up first. */
  clipIds?: readonly string[];
  /** Whether those clips are known to be finished. */
  settled?: boolean;
}

export interface RunQueueDeps {
  /** One sync run of this queue's source. */
  run(req: RunRequest): Promise<RunSummary>;
  /** While paused, no settle run is armed (requests are refused before they get here). */
  isPaused(): boolean;
  logger: Logger;
  now?: () => number;
  /** Added to a run's nextSettleAt (mtimes may be rounded down to the second). */
  settleMarginMs?: number;
  /** Shortest wait before a settle run, so a clip that keeps growing is polled, not spun on. */
  minSettleDelayMs?: number;
  /** A follow-up run waits until no trigger came for this long... */
  followUpQuietMs?: number;
  /** ...but no longer than this after the run before it ended. */
  followUpMaxWaitMs?: number;
}

interface Waiter {
  resolve(summary: RunSummary): void;
  reject(err: unknown): void;
}

interface Batch {
  origins: Set<TriggerOrigin>;
  clipIds: Set<string>;
  settled: Set<string>;
  waiters: Waiter[];
}

type Job = (signal: AbortSignal) => Promise<void>;

export class RunQueue {
  private readonly log: Logger;
  private readonly now: () => number;
  /** The run or job in the single slot. */
  private busy: Promise<void> | undefined;
  private syncing = false;
  private abort: AbortController | undefined;
  private next: Batch | undefined;
  private readonly jobs: Job[] = [];
  private settle: { at: number; timer: NodeJS.Timeout } | undefined;
  /** Set while a follow-up gathers the rest of a burst before it starts. */
  private gather: { since: number; timer: NodeJS.Timeout | undefined } | undefined;
  private stopped = false;
  private readonly runningListeners = new Set<(running: boolean) => void>();
  private started = 0;

  constructor(private readonly deps: RunQueueDeps) {
    this.log = deps.logger;
    this.now = deps.now ?? Date.now;
  }

  get running(): boolean {
    return this.syncing;
  }

  /** Runs started since the queue was made. */
  get runsStarted(): number {
    return this.started;
  }

  /** When the queue will come back for settling clips, if it will. */
  get settleAt(): number | undefined {
    return this.settle?.at;
  }

  request(req: QueueRequest): Promise<RunSummary> {
    if (this.stopped) return Promise.reject(new StoppedError());
    if (this.deps.isPaused()) return Promise.reject(new PausedError());
    const batch = this.next ?? {
      origins: new Set(),
      clipIds: new Set(),
      settled: new Set(),
      waiters: [],
    };
    this.next = batch;
    batch.origins.add(req.origin);
    for (const id of req.clipIds ?? []) {
      batch.clipIds.add(id);
      if (req.settled) batch.settled.add(id);
    }
    const done = new Promise<RunSummary>((resolve, reject) =>
      batch.waiters.push({ resolve, reject }),
    );
    if (this.gather) this.armGather();
    else if (this.busy)
      this.log.debug({ origin: req.origin }, "a run is in progress: joins the next");
    else this.pump();
    return done;
  }

  /** Runs `job` alone: after the run in progress, before the next one. */
  exclusive(job: Job): Promise<void> {
    if (this.stopped) return Promise.reject(new StoppedError());
    const done = new Promise<void>((resolve, reject) =>
      this.jobs.push((signal) => job(signal).then(resolve, reject)),
    );
    this.pump();
    return done;
  }

  /** Backups were paused: requests waiting for the next run are refused, timers cancelled. */
  pause(): void {
    this.cancelTimers();
    this.drop(new PausedError());
  }

  /**
   * Subscribe to `running` changes: it turns false only after the run's own events (syncFinished
   * comes first), so a state published on those may still say running. Returns an unsubscribe.
   */
  onRunningChange(listener: (running: boolean) => void): () => void {
    this.runningListeners.add(listener);
    return () => this.runningListeners.delete(listener);
  }

  /**
   * No new work: pending requests are refused, the run in progress is asked to stop (it ends
   * after the clip steps in flight). Resolves when the slot is free.
   */
  stop(): Promise<void> {
    this.stopped = true;
    this.cancelTimers();
    this.drop(new StoppedError());
    this.jobs.length = 0;
    this.abort?.abort(new StoppedError());
    return this.busy ?? Promise.resolve();
  }

  /** Starts the next job or run, if any, in the free slot. */
  private pump(): void {
    if (this.busy || this.stopped || this.gather) return;
    const job = this.jobs.shift();
    if (job) {
      this.occupy(job);
      return;
    }
    const batch = this.next;
    if (!batch) return;
    this.next = undefined;
    const trigger = [...batch.origins].join("+");
    const priority = [...batch.clipIds];
    const settled = [...batch.settled];
    this.started++;
    this.occupy(async (signal) => {
      this.setSyncing(true);
      try {
        const summary = await this.deps.run({ trigger, priority, settled, signal });
        for (const w of batch.waiters) w.resolve(summary);
        this.afterRun(summary);
      } catch (err) {
        this.log.error({ trigger, err: errorMessage(err) }, "sync run failed");
        for (const w of batch.waiters) w.reject(err);
      } finally {
        this.setSyncing(false);
      }
    });
  }

  private setSyncing(running: boolean): void {
    this.syncing = running;
    for (const listener of this.runningListeners) {
      try {
        listener(running);
      } catch (err) {
        this.log.warn({ err: errorMessage(err) }, "a running listener failed");
      }
    }
  }

  private occupy(work: Job): void {
    const abort = new AbortController();
    this.abort = abort;
    this.busy = work(abort.signal)
      .catch((err: unknown) => this.log.error({ err: errorMessage(err) }, "queued job failed"))
      .finally(() => {
        this.busy = undefined;
        this.abort = undefined;
        if (this.next && this.jobs.length === 0 && !this.stopped) {
          // Triggers came during the run: let the rest of their burst arrive first.
          this.gather = { since: this.now(), timer: undefined };
          this.armGather();
        } else {
          this.pump();
        }
      });
  }

  /** (Re)arms the follow-up's start: after a quiet spell, within the longest wait. */
  private armGather(): void {
    const g = this.gather;
    if (!g) return;
    clearTimeout(g.timer);
    const due = Math.min(
      this.now() + (this.deps.followUpQuietMs ?? 100),
      g.since + (this.deps.followUpMaxWaitMs ?? 1000),
    );
    g.timer = setTimeout(
      () => {
        this.gather = undefined;
        this.pump();
      },
      Math.max(0, due - this.now()),
    );
  }

  /** Comes back for clips still settling; the latest run knows best when that is. */
  private afterRun(summary: RunSummary): void {
    if (this.stopped || this.deps.isPaused()) return;
    if (this.settle) clearTimeout(this.settle.timer);
    this.settle = undefined;
    if (summary.nextSettleAt === undefined || !Number.isFinite(summary.nextSettleAt)) return;
    const at = Math.max(
      summary.nextSettleAt + (this.deps.settleMarginMs ?? 500),
      this.now() + (this.deps.minSettleDelayMs ?? 1000),
    );
    const timer = setTimeout(() => {
      this.settle = undefined;
      this.request({ origin: "settle" }).catch((err: unknown) =>
        this.log.debug({ err: errorMessage(err) }, "settle run not done"),
      );
    }, at - this.now());
    this.settle = { at, timer };
    this.log.info(
      { pending: summary.pending, inMs: Math.round(at - this.now()) },
      "clips still settling: coming back for them",
    );
  }

  /** Rejects the requests waiting for the next run. */
  private drop(reason: Error): void {
    const dropped = this.next;
    this.next = undefined;
    for (const w of dropped?.waiters ?? []) w.reject(reason);
  }

  private cancelTimers(): void {
    if (this.settle) clearTimeout(this.settle.timer);
    this.settle = undefined;
    if (this.gather) clearTimeout(this.gather.timer);
    this.gather = undefined;
  }
}
