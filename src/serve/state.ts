import type { MqttLink } from "../extensions/contract.js";
import type { Manifest } from "../manifest/manifest.js";
import type { EventBus, RunSummary } from "../util/events.js";
import { errorMessage, type Logger } from "../util/log.js";

/**
 * The service's state as one retained JSON document on `<baseTopic>/state`, sent again on every
 * sync event (debounced a little), on pause changes and after every (re)connect. Its keys follow
 * `status --json`, plus what only the daemon knows (running, paused, runs since start).
 */

export interface StateQueue {
  readonly running: boolean;
  readonly paused: boolean;
  readonly runsStarted: number;
  nextScheduledRun(): Date | undefined;
  onPausedChange(listener: (paused: boolean) => void): () => void;
  onRunningChange(listener: (running: boolean) => void): () => void;
}

export interface ServiceState {
  running: boolean;
  paused: boolean;
  /** Sync runs started since `serve` started. */
  runsSinceStart: number;
  nextSync: string | null;
  lastRun: RunSummary | null;
  lastSuccessAt: string | null;
  lastError: { message: string; at: string } | null;
  lastClip: { id: string; camera: string; at: string } | null;
  totals: { clips: number; bytes: number };
  /** Clips seen but not backed up yet (counts down during a run). */
  pending: number;
  at: string;
}

/**
 * The state document from the manifest and the queue. Callers pass what they track live
 * themselves (runs since start, pending during a run, ...), which wins over the stored values.
 */
export function serviceState(
  manifest: Manifest,
  queue: Pick<StateQueue, "running" | "paused" | "nextScheduledRun">,
  live: Pick<ServiceState, "runsSinceStart"> & Partial<ServiceState>,
): ServiceState {
  const st = manifest.status;
  return {
    running: queue.running,
    paused: queue.paused,
    nextSync: queue.nextScheduledRun()?.toISOString() ?? null,
    lastRun: st.lastRun ?? null,
    lastSuccessAt: st.lastSuccessAt ?? null,
    lastError: st.lastError ?? null,
    lastClip: st.lastClip ?? null,
    totals: { ...st.totals },
    pending: st.pending,
    at: new Date().toISOString(),
    ...live,
  };
}

export interface StatePublisherDeps {
  events: EventBus;
  manifest: Manifest;
  queue: StateQueue;
  mqtt: MqttLink;
  logger: Logger;
  debounceMs?: number;
}

export class StatePublisher {
  private readonly topic: string;
  private readonly disposers: Array<() => unknown> = [];
  private timer: NodeJS.Timeout | undefined;
  private livePending: number | undefined;
  private stopped = false;

  constructor(private readonly deps: StatePublisherDeps) {
    this.topic = `${deps.mqtt.baseTopic}/state`;
  }

  start(): void {
    const { events, queue, mqtt } = this.deps;
    const later = () => this.schedule();
    this.disposers.push(
      events.on("syncStarted", later),
      events.on("syncPlanned", (e) => {
        this.livePending = e.toUpload + e.pending;
        this.schedule();
      }),
      events.on("clipBackedUp", () => {
        if (this.livePending !== undefined) this.livePending = Math.max(0, this.livePending - 1);
        this.schedule();
      }),
      events.on("clipFailed", later),
      events.on("syncFinished", () => {
        this.livePending = undefined;
        this.schedule();
      }),
      events.on("syncFailed", () => {
        this.livePending = undefined;
        this.schedule();
      }),
      queue.onPausedChange(later),
      // `running` ends after the run's last event: say so once it has.
      queue.onRunningChange(later),
      mqtt.onConnect(() => void this.publish()),
    );
    if (mqtt.connected) void this.publish();
  }

  snapshot(): ServiceState {
    const { manifest, queue } = this.deps;
    return serviceState(manifest, queue, {
      runsSinceStart: queue.runsStarted,
      pending: this.livePending ?? manifest.status.pending,
    });
  }

  /** Stops listening and publishes a last state (not running). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const d of this.disposers.splice(0)) d();
    await this.send();
  }

  private schedule(): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.publish();
    }, this.deps.debounceMs ?? 50);
  }

  private async publish(): Promise<void> {
    if (!this.stopped) await this.send();
  }

  private async send(): Promise<void> {
    const { mqtt, logger } = this.deps;
    if (!mqtt.connected) return; // sent again on connect
    try {
      await mqtt.publish(this.topic, JSON.stringify(this.snapshot()), { retain: true, qos: 1 });
    } catch (err) {
      logger.debug({ err: errorMessage(err) }, "could not publish the state");
    }
  }
}
