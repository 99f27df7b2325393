import type { EventBus } from "../events.js";
import type { Manifest } from "../manifest.js";
import { trackLivePending } from "./state.js";

/**
 * `/metrics` in the Prometheus text format, after Prometheus' naming rules (`_total` counters,
 * `_seconds`, `_bytes`, one `source` label). Counters count from the start of `serve`, fed by
 * the event bus; gauges read the service state when scraped. prom-client is loaded here, on
 * demand, so one-shot commands never pay for it.
 */

export interface MetricsDeps {
  events: EventBus;
  manifest: Pick<Manifest, "status">;
  queue: { readonly running: boolean; readonly paused: boolean };
  /** The `source` label value: "default" while the config has one unnamed source. */
  source: string;
}

export interface Metrics {
  readonly contentType: string;
  render(): Promise<string>;
  dispose(): void;
}

const PREFIX = "motioneye_vault_";

export async function createMetrics(deps: MetricsDeps): Promise<Metrics> {
  const prom = await import("prom-client");
  const registry = new prom.Registry();
  // process_cpu_seconds_total, process_resident_memory_bytes, nodejs_eventloop_lag_seconds, ...
  prom.collectDefaultMetrics({ register: registry });

  const { events, manifest, queue } = deps;
  const labels = { source: deps.source };
  const labelNames = ["source"] as const;
  const registers = [registry];
  const counter = (name: string, help: string) => {
    const c = new prom.Counter({ name: PREFIX + name, help, labelNames, registers });
    c.inc(labels, 0); // a series from the start, so rate() and alerts see 0, not nothing
    return c;
  };
  const gauge = (name: string, help: string, read: () => number) =>
    new prom.Gauge({
      name: PREFIX + name,
      help,
      labelNames,
      registers,
      collect() {
        this.set(labels, read());
      },
    });

  const clips = counter("clips_backed_up_total", "Clips backed up since serve started.");
  const bytes = counter(
    "bytes_backed_up_total",
    "Plaintext bytes of the clips backed up since serve started.",
  );
  const runs = counter("sync_runs_total", "Sync runs started since serve started.");
  const failures = counter(
    "sync_failures_total",
    "Sync runs that failed (some clip not backed up, or the run could not start).",
  );
  const clipFailures = counter(
    "clip_failures_total",
    "Clips that failed in a run after their retries.",
  );

  const pending = trackLivePending(events);
  gauge(
    "pending_clips",
    "Clips seen on the camera and not backed up yet.",
    () => pending.value ?? manifest.status.pending,
  );
  gauge(
    "last_success_timestamp_seconds",
    "When the last sync run that backed up everything it should ended (0: never).",
    () => {
      const at = manifest.status.lastSuccessAt;
      return at ? Date.parse(at) / 1000 : 0;
    },
  );
  gauge(
    "stored_clips",
    "Clips recorded in the vault's manifest.",
    () => manifest.status.totals.clips,
  );
  gauge(
    "stored_bytes",
    "Plaintext bytes of the clips recorded in the vault's manifest.",
    () => manifest.status.totals.bytes,
  );
  gauge("syncing", "1 while a sync run is in progress.", () => (queue.running ? 1 : 0));
  gauge("paused", "1 while backups are paused (Home Assistant's switch).", () =>
    queue.paused ? 1 : 0,
  );

  const disposers = [
    () => pending.dispose(),
    events.on("syncStarted", () => runs.inc(labels)),
    events.on("clipBackedUp", (e) => {
      clips.inc(labels);
      bytes.inc(labels, e.size);
    }),
    events.on("clipFailed", (e) => {
      if (!e.willRetry) clipFailures.inc(labels);
    }),
    events.on("syncFailed", () => failures.inc(labels)),
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
