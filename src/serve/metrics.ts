import type { EventBus } from "../util/events.js";
import type { ServiceState } from "./state.js";

/**
 * `/metrics` in the Prometheus text format, after Prometheus' naming rules (`_total` counters,
 * `_seconds`, `_bytes`, a `source` label: the camera device, `default` for a single `source:`;
 * `all` on the figures of the whole vault when there are several).
 * Counters count from the start of `serve`, fed by the event bus; gauges read the service state
 * (its one owner) when scraped. prom-client is loaded here, on demand, so one-shot commands
 * never pay for it.
 */

export interface MetricsDeps {
  events: EventBus;
  state: Pick<ServiceState, "snapshot">;
  /** Every source's name: each gets its series from the start. */
  sources: readonly string[];
}

export interface Metrics {
  readonly contentType: string;
  render(): Promise<string>;
  dispose(): void;
}

export async function createMetrics(deps: MetricsDeps): Promise<Metrics> {
  const prom = await import("prom-client");
  const registry = new prom.Registry();
  // process_cpu_seconds_total, process_resident_memory_bytes, nodejs_eventloop_lag_seconds, ...
  prom.collectDefaultMetrics({ register: registry });

  const { events, state } = deps;
  const registers = [registry];
  const bySource = ["source"] as const;
  const counter = (name: string, help: string) => {
    const c = new prom.Counter({ name, help, labelNames: bySource, registers });
    // A series per source from the start, so rate() and alerts see 0, not nothing.
    for (const source of deps.sources) c.inc({ source }, 0);
    return c;
  };
  /** A gauge per source, read from the state when scraped. */
  const perSource = (
    name: string,
    help: string,
    read: (s: ReturnType<ServiceState["snapshot"]>["sources"][string]) => number,
  ) =>
    new prom.Gauge({
      name,
      help,
      labelNames: bySource,
      registers,
      collect() {
        for (const [source, s] of Object.entries(state.snapshot().sources)) {
          this.set({ source }, read(s));
        }
      },
    });
  /** A gauge of the whole vault: `source` is the one source's name, or `all` with several. */
  const wholeLabel = { source: deps.sources.length === 1 ? (deps.sources[0] as string) : "all" };
  const whole = (name: string, help: string, read: () => number) =>
    new prom.Gauge({
      name,
      help,
      labelNames: bySource,
      registers,
      collect() {
        this.set(wholeLabel, read());
      },
    });
  const seconds = (iso: string | null) => (iso ? Date.parse(iso) / 1000 : 0);

  const clips = counter(
    "motioneye_vault_clips_backed_up_total",
    "Clips backed up since serve started.",
  );
  const bytes = counter(
    "motioneye_vault_bytes_backed_up_total",
    "Plaintext bytes of the clips backed up since serve started.",
  );
  const runs = counter(
    "motioneye_vault_sync_runs_total",
    "Sync runs of the source started since serve started.",
  );
  const failures = counter(
    "motioneye_vault_sync_failures_total",
    "Sync runs whose part for the source failed (the camera could not be listed, a clip not backed up, or the run could not start).",
  );
  const clipFailures = counter(
    "motioneye_vault_clip_failures_total",
    "Clips that failed in a run after their retries.",
  );

  perSource(
    "motioneye_vault_pending_clips",
    "Clips seen on the camera and not backed up yet.",
    (s) => s.pending,
  );
  perSource(
    "motioneye_vault_last_success_timestamp_seconds",
    "When the source's last sync run that backed up everything it should ended (0: never).",
    (s) => seconds(s.lastSuccessAt),
  );
  perSource("motioneye_vault_source_up", "1 while the source's last run could list it.", (s) =>
    s.reachable === false ? 0 : 1,
  );
  perSource("motioneye_vault_syncing", "1 while a sync run of the source is in progress.", (s) =>
    s.syncing ? 1 : 0,
  );
  whole(
    "motioneye_vault_stored_clips",
    "Clips recorded in the vault's manifest.",
    () => state.snapshot().totals.clips,
  );
  whole(
    "motioneye_vault_stored_bytes",
    "Plaintext bytes of the clips recorded in the vault's manifest.",
    () => state.snapshot().totals.bytes,
  );
  whole("motioneye_vault_paused", "1 while backups are paused (Home Assistant's switch).", () =>
    state.snapshot().paused ? 1 : 0,
  );

  const disposers = [
    events.on("syncStarted", (e) => {
      for (const source of e.sources) runs.inc({ source });
    }),
    events.on("clipBackedUp", (e) => {
      clips.inc({ source: e.source });
      bytes.inc({ source: e.source }, e.size);
    }),
    events.on("clipFailed", (e) => {
      if (!e.willRetry) clipFailures.inc({ source: e.source });
    }),
    events.on("syncFailed", (e) => {
      for (const source of e.sources) failures.inc({ source });
    }),
  ];

  return {
    contentType: registry.contentType,
    render: () => registry.metrics(),
    dispose() {
      for (const d of disposers.splice(0)) d();
      registry.clear();
    },
  };
}
