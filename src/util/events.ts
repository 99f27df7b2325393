import { errorMessage, type Logger, silentLogger } from "./log.js";

/** What a sync run reports. Extensions (Home Assistant, Telegram, progress bars) listen here. */
export interface VaultEvents {
  syncStarted: [{ runId: string; trigger: string; startedAt: string; sources: string[] }];
  /** One source listed and planned. */
  syncPlanned: [
    { runId: string; source: string; toUpload: number; bytes: number; pending: number },
  ];
  /** One source could not be listed: its part of the run failed; the others go on. */
  sourceFailed: [{ runId: string; source: string; error: string; at: string }];
  clipProgress: [{ runId: string; id: string; bytes: number }];
  clipBackedUp: [
    {
      runId: string;
      id: string;
      source: string;
      camera: string;
      date: string;
      size: number;
      at: string;
      /** A movie whose recording was cut off, backed up as it was (see ClipRecord). */
      incomplete?: true;
    },
  ];
  clipFailed: [{ runId: string; id: string; source: string; error: string; willRetry: boolean }];
  /** Writing a clip into the vault failed on the vault's side (not the camera's). */
  destinationFailed: [{ runId: string; id: string; error: string; at: string }];
  syncFinished: [RunSummary];
  /**
   * The staleness alarm of a source (alerts.staleAfterHours) was raised or cleared; `restored`
   * when it is only shown again after a restart (already told).
   */
  backupsStale: [
    {
      source: string;
      stale: boolean;
      at: string;
      restored: boolean;
      lastClipAt?: string;
      staleAfterHours?: number;
    },
  ];
  /**
   * A run did not back up everything it should (before its syncFinished), or failed as a whole
   * (no syncFinished then: the manifest could not be read...). `sources`: whose part failed.
   */
  syncFailed: [{ runId: string; error: string; at: string; sources: string[] }];
}

/** One source's part of a run. */
export interface SourceRunSummary {
  uploaded: number;
  failed: number;
  pending: number;
  bytes: number;
  /** Whether its listing worked. */
  reachable: boolean;
  /** Why its part is not complete (it could not be listed, or a clip failed): the first error. */
  error?: string;
  nextSettleAt?: number;
}

/** What several runs or parts add up to. */
type RunTotals = Pick<
  SourceRunSummary,
  "uploaded" | "failed" | "pending" | "bytes" | "error" | "nextSettleAt"
>;

/** Sums counts, keeps the first error and the soonest settle time: one rule for a run's parts and for runs. */
export function addUpRuns(parts: readonly RunTotals[]): RunTotals {
  const sum = (key: "uploaded" | "failed" | "pending" | "bytes") =>
    parts.reduce((n, p) => n + p[key], 0);
  const error = parts.find((p) => p.error !== undefined)?.error;
  const settles = parts.flatMap((p) => (p.nextSettleAt === undefined ? [] : [p.nextSettleAt]));
  return {
    uploaded: sum("uploaded"),
    failed: sum("failed"),
    pending: sum("pending"),
    bytes: sum("bytes"),
    ...(error ? { error } : {}),
    ...(settles.length ? { nextSettleAt: Math.min(...settles) } : {}),
  };
}

export interface RunSummary {
  runId: string;
  trigger: string;
  startedAt: string;
  finishedAt: string;
  uploaded: number;
  failed: number;
  pending: number;
  bytes: number;
  /** When not every eligible clip was backed up: the first error seen. */
  error?: string;
  /** Soonest time (ms epoch) at which a pending clip should have settled. */
  nextSettleAt?: number;
  /** Each source's part, by name (absent in runs recorded before `sources:` existed). */
  sources?: Record<string, SourceRunSummary>;
}

type Listener = (...args: never[]) => void;

/**
 * A typed event bus, as zigbee2mqtt's: producers never import their listeners, and each listener
 * runs wrapped, so one that throws is logged and never reaches the producer (a broken Home
 * Assistant publisher cannot change a run's result).
 */
export class EventBus {
  private readonly listeners = new Map<keyof VaultEvents, Set<Listener>>();

  constructor(private readonly logger: Logger = silentLogger) {}

  emit<K extends keyof VaultEvents>(event: K, ...args: VaultEvents[K]): void {
    for (const listener of [...(this.listeners.get(event) ?? [])]) {
      const failed = (err: unknown) =>
        this.logger.error({ event, err: errorMessage(err) }, "an event listener failed");
      try {
        const result: unknown = (listener as unknown as (...a: VaultEvents[K]) => unknown)(...args);
        if (result instanceof Promise) result.catch(failed);
      } catch (err) {
        failed(err);
      }
    }
  }

  on<K extends keyof VaultEvents>(
    event: K,
    listener: (...args: VaultEvents[K]) => void,
  ): () => void {
    const set = this.listeners.get(event) ?? new Set<Listener>();
    this.listeners.set(event, set);
    const l = listener as unknown as Listener;
    set.add(l);
    return () => set.delete(l);
  }
}
