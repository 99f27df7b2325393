import type { Keys } from "../app/keys.js";
import type { SyncEngine } from "../backup/engine.js";
import { type SharedLock, whenUnlocked } from "../backup/lock.js";
import type { SourcePart } from "../backup/sourceRun.js";
import type { SourceSet } from "../clips/sources.js";
import type { Config } from "../config/load.js";
import type { AgeVault } from "../crypto/ageVault.js";
import type { Extension, ExtensionContext, Settings } from "../extensions/contract.js";
import { buildExtensions } from "../extensions/index.js";
import type { Manifest } from "../manifest/manifest.js";
import type { BandwidthLimit } from "../util/bandwidth.js";
import type { EventBus } from "../util/events.js";
import { errorMessage, type Logger } from "../util/log.js";
import { type EmbeddedBroker, startEmbeddedBroker } from "./broker.js";
import { assessHealth, type HealthReport } from "./health.js";
import { HttpListener } from "./http.js";
import { TriggerIntake } from "./intake.js";
import { createMetrics } from "./metrics.js";
import { defaultClientId, MqttConnection, safeUrl } from "./mqtt.js";
import { RunQueue } from "./queue.js";
import { applyRetention } from "./retention.js";
import { Scheduler } from "./schedule.js";
import { lockedSettings } from "./settings.js";
import { sourceView } from "./sourceView.js";
import { StalenessWatch, staleThresholds } from "./staleness.js";
import { ServiceState } from "./state.js";
import { StatePublisher } from "./statePublisher.js";
import { Triggers } from "./triggers.js";

/**
 * `serve`'s lifecycle, as zigbee2mqtt's controller: it owns the broker (when embedded), the MQTT
 * link, the trigger queues, the schedule, the HTTP listener and the extensions; starts them in
 * order and stops them in reverse, within a fixed budget so that SIGTERM ends the process well
 * inside 10 s.
 */

/** How long a transfer in flight may take to finish on stop before it is abandoned. */
const STOP_GRACE_MS = 2500;
/** Each further step of abandoning it (source, then destination connections closed). */
const ABANDON_STEP_MS = 1500;
const EXTENSION_STOP_MS = 3000;

/** What `serve` runs on, built by the composition root. */
export interface ServeDeps {
  config: Config;
  logger: Logger;
  events: EventBus;
  sourceSet: SourceSet;
  sources: readonly SourcePart[];
  vault: AgeVault;
  manifest: Manifest;
  engine: SyncEngine;
  lock: SharedLock;
  keys: Keys;
  /** sync.bandwidthLimit, shared with every upload; Home Assistant may change it live. */
  bandwidth?: BandwidthLimit;
}

export class ServeController {
  private readonly log: Logger;
  private readonly queue: Triggers;
  private readonly state: ServiceState;
  private readonly stopSignal = new AbortController();
  private readonly settings: Settings;
  private broker: EmbeddedBroker | undefined;
  private mqtt: MqttConnection | undefined;
  private scheduler: Scheduler | undefined;
  private publisher: StatePublisher | undefined;
  private extensions: Extension[] = [];
  private staleness: StalenessWatch | undefined;
  private http: HttpListener | undefined;
  private readonly intake: TriggerIntake;
  private stopping: Promise<void> | undefined;

  constructor(private readonly deps: ServeDeps) {
    this.log = deps.logger;
    const { engine, logger } = deps;
    this.settings = lockedSettings(deps.manifest, deps.lock, logger, this.stopSignal.signal);
    this.queue = new Triggers({
      sources: deps.sourceSet,
      settings: this.settings,
      logger,
      makeQueue: (source, isPaused) =>
        new RunQueue({
          isPaused,
          logger: logger.child({ source }),
          run: async ({ trigger, priority, settled, signal }) => {
            const { plans: _plans, ...summary } = await whenUnlocked(
              () => engine.run({ trigger, sources: [source], priority, settled, signal }),
              {
                signal,
                onWait: (pid) =>
                  logger.info({ pid }, "a sync run of another process is in progress: waiting"),
              },
            );
            return summary;
          },
        }),
    });
    this.intake = new TriggerIntake({
      queue: this.queue,
      sources: deps.sources,
      logger,
      stopping: () => this.stopping !== undefined,
    });
    this.state = new ServiceState({
      events: deps.events,
      manifest: deps.manifest,
      queue: this.queue,
      sources: deps.sources.map((p) => ({ ...p.ref, description: p.source.description })),
      checkVault: async () => {
        // A root under a regular file lists as [] (like an absent one): look at the root itself.
        const root = await deps.vault.store.stat("");
        if (root && root.kind !== "dir") return false;
        await deps.vault.store.list("");
        return true;
      },
      bandwidth: deps.bandwidth,
      logger,
    });
  }

  /** The trigger queue (for tests and extensions). */
  get triggers(): Triggers {
    return this.queue;
  }

  async start(): Promise<void> {
    const { config } = this.deps;
    this.state.start();
    // First: a camera's web hook is heard while the rest starts (it only queues a run).
    await this.startHttp();
    let url = config.mqtt.url;
    if (!url && config.mqtt.embeddedBroker.enabled) {
      this.broker = await startEmbeddedBroker({
        ...config.mqtt.embeddedBroker,
        username: config.mqtt.username,
        password: config.mqtt.password,
        logger: this.log,
      });
      url = this.broker.url;
    }
    if (url) {
      const mqtt = new MqttConnection({
        url,
        username: config.mqtt.username,
        password: config.mqtt.password,
        caFile: config.mqtt.caFile,
        baseTopic: config.mqtt.baseTopic,
        clientId: defaultClientId(config.mqtt.baseTopic, config.state.dir),
        logger: this.log,
      });
      this.mqtt = mqtt;
      mqtt.start();
      await mqtt.subscribe(
        config.mqtt.triggerTopic,
        (topic, payload) => this.intake.fromMqtt(topic, payload),
        { skipRetained: true },
      );
      // Extensions start with a live link when the broker answers; if not, it keeps trying.
      if (!(await mqtt.waitConnected(3000))) {
        this.log.warn("the MQTT broker does not answer yet: starting anyway, still trying");
      }
    } else {
      this.log.info("MQTT is off (no mqtt.url, embedded broker disabled): schedule only");
    }

    const ctx: ExtensionContext = {
      config,
      logger: this.log,
      events: this.deps.events,
      state: this.state,
      queue: this.queue,
      mqtt: this.mqtt,
      sources: this.deps.sourceSet,
      sourceViews: this.deps.sources.map((p) =>
        sourceView(p, sourceTypeOf(config, p.ref.name), this.deps.sourceSet),
      ),
      manifest: this.deps.manifest,
      settings: this.settings,
      vault: this.deps.vault,
      checkVault: () => this.state.checkVault(),
      recipient: async () => (await this.deps.keys.identity()).recipient,
      bandwidth: this.deps.bandwidth,
    };
    this.extensions = buildExtensions(ctx);
    // Home Assistant's extension publishes its own document on <baseTopic>/state; one owner.
    const haOwnsState =
      config.mqtt.homeassistant.enabled && this.extensions.some((e) => e.name === "homeassistant");
    if (this.mqtt && !haOwnsState) {
      this.publisher = new StatePublisher({ state: this.state, mqtt: this.mqtt, logger: this.log });
      this.publisher.start();
    }

    this.scheduler = new Scheduler({
      config,
      queue: this.queue,
      logger: this.log,
      retention: () => this.retention(),
    });
    this.scheduler.start();

    for (const ext of this.extensions) {
      try {
        await ext.start();
        this.log.debug({ extension: ext.name }, "extension started");
      } catch (err) {
        // A broken extension (bot, Home Assistant) never takes the backups down.
        this.log.error(
          { extension: ext.name, err: errorMessage(err) },
          "extension failed to start",
        );
      }
    }

    this.log.info(
      {
        mqtt: url ? safeUrl(url) : null,
        triggerTopic: url ? config.mqtt.triggerTopic : null,
        extensions: this.extensions.map((e) => e.name),
        http: this.http?.address ?? null,
      },
      "serve running",
    );
    this.staleness = new StalenessWatch({
      thresholds: staleThresholds(config),
      manifest: this.deps.manifest,
      settings: this.settings,
      events: this.deps.events,
      logger: this.log,
    });
    this.queue
      .request({ origin: "startup" })
      .then(
        (s) => this.log.debug({ run: s.runId }, "startup run done"),
        () => {}, // logged by the queue
      )
      // Judged after the startup run: a restart after a long stop is not an alarm by itself.
      .then(() => (this.stopping ? undefined : this.staleness?.start()))
      .catch((err: unknown) =>
        this.log.warn({ err: errorMessage(err) }, "the staleness alarm did not start"),
      );
  }

  /** Idempotent. No new work, abandon the run in flight if it does not end soon, go offline. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  /** The HTTP listener (hook, health, metrics), unless http.port is 0. */
  private async startHttp(): Promise<void> {
    const { config } = this.deps;
    if (config.http.port === 0) {
      this.log.info("http.port is 0: no web hook, /healthz or /metrics");
      return;
    }
    const metrics = await createMetrics({
      events: this.deps.events,
      state: this.state,
      sources: this.deps.sourceSet.names,
    });
    const http = new HttpListener({
      config: config.http,
      logger: this.log,
      hook: (fields) => this.intake.fromHook(fields),
      health: () => this.health(),
      metrics,
    });
    if (await http.start()) this.http = http;
    else metrics.dispose();
  }

  private health(): HealthReport {
    const status = this.deps.manifest.status;
    return assessHealth({
      runs: status.runs,
      lastSuccessAt: status.lastSuccessAt,
      mqtt: this.mqtt && {
        connected: this.mqtt.connected,
        disconnectedSinceMs: this.mqtt.disconnectedSinceMs,
      },
      paused: this.queue.paused,
      running: this.queue.running,
      stopping: this.stopping !== undefined,
      nowMs: Date.now(),
      destinationConnected: this.state.snapshot().vaultReachable,
    });
  }

  private async retention(): Promise<void> {
    const { config, lock, manifest, vault, sourceSet } = this.deps;
    const remoteDays = config.retention.remoteDays;
    if (remoteDays === undefined) return;
    const byName = new Map(this.deps.sources.map((p) => [p.ref.name, p.source]));
    await this.queue.exclusive(async (signal) => {
      // The queues keep our own runs out; the lock keeps out a `sync` run in another process.
      const held = await lock.acquire();
      try {
        await applyRetention(
          {
            manifest,
            store: vault.store,
            locate: (id) => {
              const at = sourceSet.locate(id);
              const source = at && byName.get(at.source.name);
              return at && source ? { source, name: at.source.name, path: at.path } : undefined;
            },
          },
          { remoteDays, dryRun: config.retention.dryRun, logger: this.log, signal },
        );
      } finally {
        await held.release();
      }
    });
  }

  private async shutdown(): Promise<void> {
    this.log.info("stopping: no new work");
    const httpStopped = this.http ? within(this.http.stop(), 1500) : Promise.resolve(true);
    this.stopSignal.abort();
    this.scheduler?.stop();
    const stalenessStopped = this.staleness?.stop();
    const slotFree = this.queue.stop();
    const extensionsStopped = Promise.allSettled(
      [...this.extensions].reverse().map((ext) =>
        within(ext.stop(), EXTENSION_STOP_MS).then((ok) => {
          if (!ok) this.log.warn({ extension: ext.name }, "extension did not stop in time");
        }),
      ),
    );

    let free = await within(slotFree, STOP_GRACE_MS);
    if (!free) {
      // The engine checks the abort signal between clips; a clip in flight is cut by closing its
      // connections: the stores then remove the temporary upload, so no final name appears.
      this.log.warn("abandoning the transfer in progress");
      await Promise.allSettled(this.deps.sources.map((p) => p.source.close()));
      free = await within(slotFree, ABANDON_STEP_MS);
    }
    if (!free) {
      await this.deps.vault.store.close().catch(() => undefined);
      free = await within(slotFree, ABANDON_STEP_MS);
    }
    if (!free) this.log.error("the run in progress did not stop; leaving it");

    await extensionsStopped;
    if (stalenessStopped) await within(stalenessStopped, 500);
    await httpStopped;
    if (this.publisher) await within(this.publisher.stop(), 500);
    this.state.stop();
    await this.mqtt?.stop(1500);
    if (this.broker) await within(this.broker.close(), 500);
    this.log.info("stopped");
  }
}

/** True when `p` settled within `ms` (its outcome is not our concern here). */
function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    p.then(
      () => {
        clearTimeout(timer);
        resolve(true);
      },
      () => {
        clearTimeout(timer);
        resolve(true);
      },
    );
  });
}

function sourceTypeOf(config: Config, name: string): string {
  return config.sources.find((s) => s.name === name)?.type ?? "local";
}
