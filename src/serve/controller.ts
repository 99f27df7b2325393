import type { Vault } from "../app/vault.js";
import { acquireLock, whenUnlocked } from "../backup/lock.js";
import type { Extension, ExtensionContext } from "../extensions/contract.js";
import { buildExtensions } from "../extensions/index.js";
import { errorMessage, type Logger } from "../util/log.js";
import { type EmbeddedBroker, startEmbeddedBroker } from "./broker.js";
import { defaultClientId, MqttConnection, safeUrl } from "./mqtt.js";
import { PausedError, RunQueue, StoppedError } from "./queue.js";
import { applyRetention } from "./retention.js";
import { Scheduler } from "./schedule.js";
import { StatePublisher } from "./state.js";
import { parseTriggerPayload, printable } from "./triggerPayload.js";

/**
 * `serve`'s lifecycle, as zigbee2mqtt's controller: it owns the broker (when embedded), the MQTT
 * link, the trigger queue, the schedule and the extensions; starts them in order and stops them
 * in reverse, within a fixed budget so that SIGTERM ends the process well inside 10 s.
 */

/** How long a transfer in flight may take to finish on stop before it is abandoned. */
const STOP_GRACE_MS = 2500;
/** Each further step of abandoning it (source, then destination connections closed). */
const ABANDON_STEP_MS = 1500;
const EXTENSION_STOP_MS = 3000;

export class ServeController {
  private readonly log: Logger;
  private readonly queue: RunQueue;
  private broker: EmbeddedBroker | undefined;
  private mqtt: MqttConnection | undefined;
  private scheduler: Scheduler | undefined;
  private state: StatePublisher | undefined;
  private extensions: Extension[] = [];
  private stopping: Promise<void> | undefined;

  constructor(private readonly vault: Vault) {
    this.log = vault.logger;
    this.queue = new RunQueue({
      run: async ({ trigger, priority, signal }) => {
        const { plan: _plan, ...summary } = await whenUnlocked(
          () => vault.sync.run({ trigger, priority, signal }),
          {
            signal,
            onWait: (pid) =>
              vault.logger.info({ pid }, "a sync run of another process is in progress: waiting"),
          },
        );
        return summary;
      },
      settings: vault.manifest,
      logger: vault.logger,
    });
  }

  /** The trigger queue (for tests and extensions). */
  get triggers(): RunQueue {
    return this.queue;
  }

  async start(): Promise<void> {
    const { config } = this.vault.loaded;
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
        (topic, payload) => this.onTrigger(topic, payload),
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
      vault: this.vault,
      queue: this.queue,
      mqtt: this.mqtt,
      logger: this.log,
    };
    this.extensions = buildExtensions(ctx);
    // Home Assistant's extension publishes its own document on <baseTopic>/state; one owner.
    const haOwnsState =
      config.mqtt.homeassistant.enabled && this.extensions.some((e) => e.name === "homeassistant");
    if (this.mqtt && !haOwnsState) {
      this.state = new StatePublisher({
        events: this.vault.events,
        manifest: this.vault.manifest,
        queue: this.queue,
        mqtt: this.mqtt,
        logger: this.log,
      });
      this.state.start();
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
      },
      "serve running",
    );
    this.queue.request({ source: "startup" }).then(
      (s) => this.log.debug({ run: s.runId }, "startup run done"),
      () => {}, // logged by the queue
    );
  }

  /** Idempotent. No new work, abandon the run in flight if it does not end soon, go offline. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private onTrigger(topic: string, payload: Buffer): void {
    if (this.stopping) return;
    const { config } = this.vault.loaded;
    const parsed = parseTriggerPayload(payload, {
      extensions: config.source.extensions,
      mediaRoot: config.source.type === "local" ? config.source.path : undefined,
    });
    const fields = {
      topic: printable(topic),
      camera: parsed.camera,
      file: parsed.file,
      clips: parsed.request.clipIds,
    };
    if (parsed.problems.length > 0) {
      this.log.warn(
        { ...fields, problems: parsed.problems },
        "odd trigger payload: ignored the odd part",
      );
    } else {
      this.log.info(fields, "MQTT trigger");
    }
    this.queue.request(parsed.request).catch((err: unknown) => {
      if (!(err instanceof PausedError || err instanceof StoppedError)) {
        this.log.debug({ err: errorMessage(err) }, "triggered run failed");
      }
    });
  }

  private async retention(): Promise<void> {
    const { config } = this.vault.loaded;
    const remoteDays = config.retention.remoteDays;
    if (remoteDays === undefined) return;
    await this.queue.exclusive(async (signal) => {
      // The queue keeps our own runs out; the lock keeps out a `sync` run in another process.
      const release = await acquireLock(config.state.dir);
      try {
        await applyRetention(this.vault, {
          remoteDays,
          dryRun: config.retention.dryRun,
          logger: this.log,
          signal,
        });
      } finally {
        await release();
      }
    });
  }

  private async shutdown(): Promise<void> {
    this.log.info("stopping: no new work");
    this.scheduler?.stop();
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
      await this.vault.source.close().catch(() => undefined);
      free = await within(slotFree, ABANDON_STEP_MS);
    }
    if (!free) {
      await this.vault.destination.close().catch(() => undefined);
      free = await within(slotFree, ABANDON_STEP_MS);
    }
    if (!free) this.log.error("the run in progress did not stop; leaving it");

    await extensionsStopped;
    if (this.state) await within(this.state.stop(), 500);
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
