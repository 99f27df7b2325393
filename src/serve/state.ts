import { type SourceState, type StatusDocument, statusDocument } from "../app/status.js";
import type { SourceRef } from "../clips/sources.js";
import type { Manifest } from "../manifest/manifest.js";
import type { BandwidthLimit, BandwidthState } from "../util/bandwidth.js";
import type { EventBus } from "../util/events.js";
import { errorMessage, type Logger } from "../util/log.js";

/**
 * The one owner of the service's state. What the manifest holds (totals, last run, each
 * source's last error...) plus what only the running daemon knows (which source is syncing,
 * pending clips counting down during a run, whether each device and the vault answer), kept
 * current from the event bus. Home Assistant, the Telegram bot, `/metrics` and the MQTT state
 * topic all read `snapshot()`; none keeps its own copy.
 */

export interface LiveSourceState extends SourceState {
  syncing: boolean;
  /** Its staleness alarm (alerts.staleAfterHours): null while it has none or it is not judged yet. */
  stale: boolean | null;
}

export interface ServiceStateDoc extends Omit<StatusDocument, "sources"> {
  running: boolean;
  paused: boolean;
  /** Sync runs started since `serve` started. */
  runsSinceStart: number;
  nextSync: string | null;
  /** Whether the vault answered lately (null until known). */
  vaultReachable: boolean | null;
  /** The upload cap in force (sync.bandwidthLimit, or set live from Home Assistant). */
  bandwidthLimit: BandwidthState | null;
  sources: Record<string, LiveSourceState>;
  at: string;
}

/** What the state reads of the trigger queue. */
export interface StateQueue {
  readonly paused: boolean;
  readonly runsStarted: number;
  nextScheduledRun(): Date | undefined;
  onPausedChange(listener: (paused: boolean) => void): () => void;
}

export interface ServiceStateDeps {
  events: EventBus;
  manifest: Pick<Manifest, "status">;
  queue: StateQueue;
  sources: ReadonlyArray<SourceRef & { description: string }>;
  /** Lists the vault's root: does it answer? */
  checkVault(): Promise<boolean>;
  /** sync.bandwidthLimit: its changes (timetable, live) are state changes too. */
  bandwidth?: Pick<BandwidthLimit, "state" | "onChange">;
  logger: Logger;
}

export class ServiceState {
  private readonly syncing = new Map<string, readonly string[]>();
  private readonly livePending = new Map<string, number>();
  private readonly reachable = new Map<string, boolean>();
  private readonly planned = new Set<string>();
  private readonly stale = new Map<string, boolean>();
  /** A run that failed as a whole (not a source's part) is only an event. */
  private lastFailure: { message: string; at: string } | undefined;
  private vaultReachable: boolean | undefined;
  /** The last write into the vault failed: a listing that works does not make it connected. */
  private lastPutFailed = false;
  private vaultCheck: Promise<boolean> | undefined;
  private readonly listeners = new Set<() => void>();
  private readonly disposers: Array<() => unknown> = [];

  constructor(private readonly deps: ServiceStateDeps) {}

  start(): void {
    const { events, queue } = this.deps;
    this.disposers.push(
      events.on("syncStarted", (e) => {
        this.syncing.set(e.runId, e.sources);
        this.changed();
      }),
      events.on("syncPlanned", (e) => {
        this.planned.add(e.runId);
        this.reachable.set(e.source, true);
        this.livePending.set(e.source, e.toUpload + e.pending);
        this.changed();
      }),
      events.on("sourceFailed", (e) => {
        this.reachable.set(e.source, false);
        this.changed();
      }),
      events.on("destinationFailed", () => {
        this.lastPutFailed = true;
        this.vaultReachable = false;
        this.changed();
      }),
      events.on("clipBackedUp", (e) => {
        this.lastPutFailed = false;
        this.vaultReachable = true;
        const n = this.livePending.get(e.source);
        if (n !== undefined) this.livePending.set(e.source, Math.max(0, n - 1));
        this.changed();
      }),
      events.on("clipFailed", () => this.changed()),
      events.on("backupsStale", (e) => {
        this.stale.set(e.source, e.stale);
        this.changed();
      }),
      events.on("syncFinished", (run) => {
        this.runEnded(run.runId);
        if (run.failed > 0) void this.checkVault();
      }),
      events.on("syncFailed", (e) => {
        this.lastFailure = { message: e.error, at: e.at };
        if (this.planned.has(e.runId)) void this.checkVault();
        this.runEnded(e.runId);
      }),
      queue.onPausedChange(() => this.changed()),
    );
    if (this.deps.bandwidth)
      this.disposers.push(this.deps.bandwidth.onChange(() => this.changed()));
  }

  stop(): void {
    for (const d of this.disposers.splice(0)) d();
    this.listeners.clear();
  }

  /** Called on every change (callers debounce as they need). Returns an unsubscribe. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** True while a run of any source is in progress (from the run's own events). */
  get running(): boolean {
    return this.syncing.size > 0;
  }

  /**
   * Looks whether the vault answers (at most one look at a time). Connected means its listing
   * works and the last write into it, if any since the start, worked too.
   */
  checkVault(): Promise<boolean> {
    this.vaultCheck ??= this.deps
      .checkVault()
      .catch((err: unknown) => {
        this.deps.logger.debug({ err: errorMessage(err) }, "vault check failed");
        return false;
      })
      .then((ok) => {
        this.vaultReachable = ok && !this.lastPutFailed;
        this.vaultCheck = undefined;
        this.changed();
        return ok;
      });
    return this.vaultCheck;
  }

  snapshot(): ServiceStateDoc {
    const { manifest, queue } = this.deps;
    const doc = statusDocument(manifest.status, this.deps.sources);
    const syncing = new Set([...this.syncing.values()].flat());
    const sources: Record<string, LiveSourceState> = {};
    for (const [name, s] of Object.entries(doc.sources)) {
      sources[name] = {
        ...s,
        pending: this.livePending.get(name) ?? s.pending,
        reachable: this.reachable.get(name) ?? s.reachable,
        syncing: syncing.has(name),
        stale: this.stale.get(name) ?? null,
      };
    }
    const lastError = newest(doc.lastError ?? undefined, this.lastFailure) ?? null;
    return {
      ...doc,
      lastError,
      pending: Object.values(sources).reduce((n, s) => n + s.pending, 0),
      running: this.running,
      paused: queue.paused,
      runsSinceStart: queue.runsStarted,
      nextSync: queue.nextScheduledRun()?.toISOString() ?? null,
      vaultReachable: this.vaultReachable ?? null,
      bandwidthLimit: this.deps.bandwidth?.state() ?? null,
      sources,
      at: new Date().toISOString(),
    };
  }

  private runEnded(runId: string): void {
    for (const name of this.syncing.get(runId) ?? []) this.livePending.delete(name);
    this.syncing.delete(runId);
    this.planned.delete(runId);
    this.changed();
  }

  private changed(): void {
    for (const listener of this.listeners) {
      try {
        listener();
      } catch (err) {
        this.deps.logger.warn({ err: errorMessage(err) }, "a state listener failed");
      }
    }
  }
}

function newest<T extends { at: string }>(a: T | undefined, b: T | undefined): T | undefined {
  if (!a || !b) return a ?? b;
  return Date.parse(b.at) > Date.parse(a.at) ? b : a;
}
