import type { Config } from "../config/load.js";
import type { Settings } from "../extensions/contract.js";
import type { Manifest } from "../manifest/manifest.js";
import type { EventBus } from "../util/events.js";
import { errorMessage, type Logger } from "../util/log.js";

/**
 * The staleness alarm (`alerts.staleAfterHours`, per source): a source from which no new clip was
 * backed up for that long looks exactly like a quiet day unless something says so. The alarm is
 * raised once and cleared once (events `backupsStale`), and kept in the manifest's settings so a
 * restart neither sends it again nor forgets it.
 */

const SETTING = "staleness";
const MAX_TICK_MS = 60_000;
const MIN_TICK_MS = 500;

/** Persisted per source: since when it is watched (the reference before any clip), and the alarm. */
interface Watched {
  since: string;
  alarmedAt?: string;
}

/** The threshold in ms for each source that has one (its own `alerts`, else the top-level). */
export function staleThresholds(config: Pick<Config, "alerts" | "sources">): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of config.sources) {
    const hours = s.alerts?.staleAfterHours ?? config.alerts.staleAfterHours;
    if (hours !== undefined) out.set(s.name, hours * 3600_000);
  }
  return out;
}

/** Pure: is the source stale at `nowMs`? The reference is its last clip, else when watching began. */
export function isStale(
  lastClipAt: string | undefined,
  watchedSince: string,
  thresholdMs: number,
  nowMs: number,
): boolean {
  const ref = Date.parse(lastClipAt ?? watchedSince);
  return nowMs - ref >= thresholdMs;
}

export interface StalenessDeps {
  thresholds: ReadonlyMap<string, number>;
  manifest: Pick<Manifest, "status">;
  settings: Settings;
  events: EventBus;
  logger: Logger;
  now?: () => number;
}

export class StalenessWatch {
  private watched: Record<string, Watched> = {};
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> = Promise.resolve();
  private readonly offs: Array<() => void> = [];
  private readonly now: () => number;

  constructor(private readonly deps: StalenessDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Names of the sources with an alarm now (for the service state). */
  get stale(): ReadonlySet<string> {
    return new Set(Object.entries(this.watched).flatMap(([n, w]) => (w.alarmedAt ? [n] : [])));
  }

  async start(): Promise<void> {
    const { thresholds, settings, events } = this.deps;
    if (thresholds.size === 0) return;
    const saved = (settings.get(SETTING) ?? {}) as Record<string, Watched>;
    const nowIso = new Date(this.now()).toISOString();
    let changed = false;
    for (const name of thresholds.keys()) {
      const w = saved[name];
      if (w && typeof w.since === "string") this.watched[name] = { ...w };
      else {
        this.watched[name] = { since: nowIso };
        changed = true;
      }
      // An alarm raised before a restart is shown again, and not sent again.
      const alarmedAt = this.watched[name]?.alarmedAt;
      if (alarmedAt)
        events.emit("backupsStale", { source: name, stale: true, at: alarmedAt, restored: true });
    }
    if (changed) await this.save();
    this.offs.push(
      events.on("clipBackedUp", (e) => {
        if (this.watched[e.source]?.alarmedAt) this.queueCheck();
      }),
    );
    const tick = Math.min(MAX_TICK_MS, Math.max(MIN_TICK_MS, Math.min(...thresholds.values()) / 4));
    this.timer = setInterval(() => this.queueCheck(), tick);
    this.timer.unref();
    this.queueCheck();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    for (const off of this.offs.splice(0)) off();
    await this.checking;
  }

  /** One check at a time, in order. */
  private queueCheck(): void {
    this.checking = this.checking.then(() =>
      this.check().catch((err: unknown) =>
        this.deps.logger.warn({ err: errorMessage(err) }, "staleness check failed"),
      ),
    );
  }

  private async check(): Promise<void> {
    const { thresholds, manifest, events, logger } = this.deps;
    const nowMs = this.now();
    const at = new Date(nowMs).toISOString();
    const flips: Array<{ source: string; stale: boolean; lastClipAt?: string }> = [];
    for (const [name, thresholdMs] of thresholds) {
      const w = this.watched[name];
      if (!w) continue;
      const lastClipAt = manifest.status.sources?.[name]?.lastClip?.at;
      const stale = isStale(lastClipAt, w.since, thresholdMs, nowMs);
      if (stale === Boolean(w.alarmedAt)) continue;
      if (stale) w.alarmedAt = at;
      else delete w.alarmedAt;
      flips.push({ source: name, stale, ...(lastClipAt ? { lastClipAt } : {}) });
    }
    if (flips.length === 0) return;
    // Saved before it is told, so a restart in between does not tell it twice.
    await this.save();
    for (const f of flips) {
      const hours = (thresholds.get(f.source) ?? 0) / 3600_000;
      logger.warn(
        { source: f.source, staleAfterHours: hours, lastClipAt: f.lastClipAt ?? null },
        f.stale ? "no new clip backed up for too long" : "backups resumed",
      );
      events.emit("backupsStale", { ...f, at, staleAfterHours: hours, restored: false });
    }
  }

  private save(): Promise<void> {
    return this.deps.settings.set(SETTING, structuredClone(this.watched));
  }
}
