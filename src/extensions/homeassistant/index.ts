import type { Config } from "../../config/load.js";
import { staleThresholds } from "../../serve/staleness.js";
import { errorMessage, type Logger } from "../../util/log.js";
import { packageInfo } from "../../util/package.js";
import { localDate, sleep } from "../../util/time.js";
import type { Extension, ExtensionContext, MqttLink } from "../contract.js";
import { readThumb } from "../thumbnail.js";
import { CameraBook } from "./cameras.js";
import { subscribeControls } from "./controls.js";
import { buildDiscovery, haTopics } from "./discovery.js";
import { stateDocuments, vaultEvent } from "./states.js";
import { ThumbnailPublisher } from "./thumbnail.js";

/**
 * Home Assistant, as zigbee2mqtt's extension does it: retained discovery configs for one device
 * ("motionEye Vault"), a device per camera device when there are several, and a child device per
 * camera; retained state documents, read from the service's state (its one owner) whenever it
 * changes; the "Sync now" button and "Backups enabled" switch wired to the trigger queue;
 * discovery sent again when Home Assistant announces itself, and configs of entities that no
 * longer exist cleared with empty retained payloads.
 */

/** What the extension keeps in the settings, under this key. */
const SETTINGS_KEY = "homeassistant";
interface Persisted {
  /** Discovery config topics last published: whatever is no longer built gets cleared. */
  topics: string[];
  cameras: string[];
}

export interface HomeAssistantOptions {
  /** [0, 1); the re-discovery delay is this times `rediscoverDelaySeconds`. */
  random?: () => number;
  now?: () => Date;
}

type HaContext = Pick<
  ExtensionContext,
  | "config"
  | "logger"
  | "events"
  | "state"
  | "queue"
  | "mqtt"
  | "sources"
  | "sourceViews"
  | "manifest"
  | "settings"
  | "recipient"
  | "bandwidth"
>;

export function createHomeAssistantExtension(
  ctx: HaContext,
  opts: HomeAssistantOptions = {},
): Extension {
  return new HomeAssistant(ctx, opts);
}

const STATE_DEBOUNCE_MS = 100;
const START_LISTING_WAIT_MS = 3000;

class HomeAssistant implements Extension {
  readonly name = "homeassistant";
  private readonly log: Logger;
  private readonly cfg: Config["mqtt"]["homeassistant"];
  private readonly topics: ReturnType<typeof haTopics>;
  private readonly pkg = packageInfo();
  private readonly random: () => number;
  private readonly now: () => Date;
  private readonly cameras: CameraBook;
  private today: string;
  private published = new Set<string>();
  private thumbnails: ThumbnailPublisher | undefined;
  /** The vault identity's age recipient, shown on the device once known. */
  private ageRecipient: string | undefined;
  private persisted: Persisted;

  private readonly disposers: Array<() => unknown> = [];
  private stateTimer: NodeJS.Timeout | undefined;
  private rediscoverTimer: NodeJS.Timeout | undefined;
  private midnightTimer: NodeJS.Timeout | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly ctx: HaContext,
    opts: HomeAssistantOptions,
  ) {
    this.log = ctx.logger.child({ ext: "homeassistant" });
    this.cfg = ctx.config.mqtt.homeassistant;
    this.topics = haTopics(ctx.config.mqtt.baseTopic);
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? (() => new Date());
    this.today = localDate(this.now());
    this.persisted = readPersisted(ctx.settings.get(SETTINGS_KEY));
    this.cameras = new CameraBook({
      sources: ctx.sources,
      views: ctx.sourceViews,
      manifest: ctx.manifest,
      logger: this.log,
    });
  }

  async start(): Promise<void> {
    const { mqtt } = this.ctx;
    if (!mqtt) {
      if (this.cfg.enabled) this.log.info("Home Assistant discovery needs MQTT (mqtt.url): off");
      return;
    }
    if (!this.cfg.enabled) {
      await this.clearAll(mqtt);
      return;
    }
    this.cameras.restore(this.persisted.cameras);
    await this.cameras
      .loadClips(this.today)
      .catch((err) =>
        this.log.warn({ err: errorMessage(err) }, "could not read clips from the manifest"),
      );
    this.thumbnails = new ThumbnailPublisher({
      read: (clipId) => readThumb(this.ctx, clipId),
      topic: this.topics.thumbnail,
      logger: this.log,
      publish: (topic, payload) => this.send(mqtt, topic, payload, true),
    });
    this.listen(mqtt);
    await this.subscribe(mqtt);
    this.disposers.push(mqtt.onConnect(() => void this.publishAll()));
    // In the background: serve's start (and its first run) never waits for the cameras.
    this.announce(mqtt).catch((err) =>
      this.log.warn({ err: errorMessage(err) }, "Home Assistant discovery failed"),
    );
  }

  /**
   * First discovery. Cameras come from the sources' top folders: a reachable device gets a
   * moment to answer first, so Home Assistant does not see a vanished camera come and go.
   */
  private async announce(mqtt: MqttLink): Promise<void> {
    let listed = false;
    const listing = this.refreshCameras({ publish: false }).then((changed) => {
      listed = true;
      return changed;
    });
    this.showRecipient();
    const last = this.ctx.state.snapshot().lastClip;
    if (last) this.thumbnails?.showExisting(last.id);
    await Promise.race([listing, sleep(START_LISTING_WAIT_MS)]);
    // While the broker is away, onConnect sends everything once it is back.
    if (mqtt.connected) await this.publishAll();
    if (!listed && (await listing)) await this.publishDiscovery();
    await this.ctx.state.checkVault();
    if (!this.stopped) this.armMidnight();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    const wasRunning = this.ctx.mqtt !== undefined && this.cfg.enabled;
    this.stopped = true;
    for (const t of [this.stateTimer, this.rediscoverTimer, this.midnightTimer]) clearTimeout(t);
    this.thumbnails?.stop();
    const disposers = this.disposers.splice(0);
    await Promise.allSettled(disposers.map(async (d) => d()));
    // A last state, as serve's own state publisher leaves one (availability goes offline next).
    if (wasRunning) await this.publishState({ final: true });
  }

  // -- wiring ---------------------------------------------------------------------------------

  private listen(mqtt: MqttLink): void {
    const { events, state } = this.ctx;
    const failed = (e: { runId: string; error: string; at: string; sources: string[] }) =>
      void this.publishEvent(
        mqtt,
        vaultEvent("sync_failed", {
          run_id: e.runId,
          error: e.error,
          at: e.at,
          ...(this.ctx.sources.qualified ? { sources: e.sources } : {}),
        }),
      );
    this.disposers.push(
      state.onChange(() => this.scheduleState()),
      events.on("clipBackedUp", (e) => {
        const isNew = !this.cameras.has(e.camera);
        const info = this.cameras.add(e.camera, e.source);
        info.lastClip = { id: e.id, camera: e.camera, at: e.at };
        if (e.date === this.today) info.today.add(e.id);
        if (isNew) void this.publishDiscovery();
        this.thumbnails?.clipBackedUp(e.id);
        void this.publishEvent(
          mqtt,
          // a cut-off recording has its own event type, for automations that alert on it
          vaultEvent(e.incomplete ? "clip_incomplete" : "clip_backed_up", {
            id: e.id,
            source: e.source,
            camera: e.camera,
            date: e.date,
            size: e.size,
            at: e.at,
            incomplete: e.incomplete === true,
          }),
        );
      }),
      events.on("syncFailed", failed),
      events.on("syncFinished", (summary) => {
        void this.cameras.countToday(this.today).then(() => this.scheduleState());
        const listed = Object.values(summary.sources ?? {}).some((s) => s.reachable);
        if (listed) void this.refreshCameras({ publish: true });
        void this.persist();
      }),
    );
  }

  private async subscribe(mqtt: MqttLink): Promise<void> {
    const subs = await subscribeControls({
      mqtt,
      topics: this.topics,
      statusTopic: this.cfg.statusTopic,
      queue: this.ctx.queue,
      log: this.log,
      onBirth: () => this.onBirth(),
      onPauseSet: () => this.scheduleState(),
      bandwidth: this.ctx.bandwidth,
    });
    this.disposers.push(...subs);
  }

  /** Home Assistant (re)started: send discovery and states again after a short random delay. */
  private onBirth(): void {
    if (this.rediscoverTimer || this.stopped) return;
    const delay = Math.floor(this.random() * this.cfg.rediscoverDelaySeconds * 1000);
    this.log.debug({ delay }, "Home Assistant is online: discovery follows");
    this.rediscoverTimer = setTimeout(() => {
      this.rediscoverTimer = undefined;
      void this.publishAll();
    }, delay);
  }

  // -- publishing -----------------------------------------------------------------------------

  private async publishAll(): Promise<void> {
    await this.publishDiscovery();
    await this.publishState();
  }

  /**
   * Runs publishing work one piece at a time: a re-discovery (reconnect, birth) that interleaved
   * with another could send a config or state again after it was cleared.
   */
  private serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.chain.then(work, work);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Publishes every config, clears those published before that are no longer built. */
  private publishDiscovery(): Promise<void> {
    return this.serial(() => this.sendDiscovery());
  }

  private async sendDiscovery(): Promise<void> {
    const mqtt = this.ctx.mqtt;
    if (!mqtt || this.stopped) return;
    const { config, sources, sourceViews } = this.ctx;
    const configs = buildDiscovery({
      discoveryPrefix: this.cfg.discoveryPrefix,
      baseTopic: config.mqtt.baseTopic,
      version: this.pkg.version,
      supportUrl: this.pkg.homepage,
      sourceType: sourceViews[0]?.type ?? "local",
      destinationType: config.destination.type,
      configurationUrl: this.cfg.motioneyeUrl,
      vaultConfigurationUrl: this.cfg.configurationUrl,
      cameras: this.cameras.labels,
      sources: sources.qualified
        ? sourceViews.map((v) => ({
            name: v.name,
            type: v.type,
            cameras: this.cameras.folders(v.name),
          }))
        : undefined,
      staleAlarms: [...staleThresholds(config).keys()],
    });
    const current = new Set(configs.map((c) => c.topic));
    const stale = [...new Set([...this.persisted.topics, ...this.published])].filter(
      (t) => !current.has(t),
    );
    let ok = true;
    for (const c of configs) {
      ok = (await this.send(mqtt, c.topic, JSON.stringify(c.payload), true)) && ok;
    }
    for (const topic of stale) {
      this.log.info({ topic }, "clearing a Home Assistant config that no longer exists");
      ok = (await this.send(mqtt, topic, "", true)) && ok;
    }
    if (!ok) return; // not connected: onConnect sends everything again
    this.published = current;
    await this.persist({ topics: [...current].sort(), cameras: this.cameras.labels });
  }

  private scheduleState(): void {
    if (this.stateTimer || this.stopped) return;
    this.stateTimer = setTimeout(() => {
      this.stateTimer = undefined;
      void this.publishState();
    }, STATE_DEBOUNCE_MS);
  }

  private publishState(opts: { final?: boolean } = {}): Promise<void> {
    return this.serial(() => this.sendState(opts));
  }

  private async sendState(opts: { final?: boolean }): Promise<void> {
    const mqtt = this.ctx.mqtt;
    if (!mqtt || (this.stopped && !opts.final)) return;
    const docs = stateDocuments(this.ctx.state.snapshot(), {
      topics: this.topics,
      cameras: this.cameras.entries(),
      perSource: this.ctx.sources.qualified,
      ageRecipient: this.ageRecipient,
    });
    for (const { topic, doc } of docs) await this.send(mqtt, topic, JSON.stringify(doc), true);
  }

  private async publishEvent(mqtt: MqttLink, event: Record<string, unknown>): Promise<void> {
    // Not retained: Home Assistant drops replayed retained messages on event entities anyway.
    await this.send(mqtt, this.topics.event, JSON.stringify(event), false);
  }

  /** Publishes; false (logged) when the broker is out of reach. */
  private async send(mqtt: MqttLink, topic: string, payload: string | Buffer, retain: boolean) {
    try {
      await mqtt.publish(topic, payload, { retain, qos: 1 });
      return true;
    } catch (err) {
      this.log.debug({ topic, err: errorMessage(err) }, "publish failed");
      return false;
    }
  }

  /** Home Assistant was switched off in the config: remove what an earlier run published. */
  private async clearAll(mqtt: MqttLink): Promise<void> {
    if (this.persisted.topics.length === 0) return;
    for (const topic of this.persisted.topics) await this.send(mqtt, topic, "", true);
    this.log.info({ count: this.persisted.topics.length }, "cleared Home Assistant discovery");
    await this.persist({ topics: [] });
  }

  /** Saves what was published (through the run lock, so no `sync` run writes over it). */
  private async persist(change: Partial<Persisted> = {}): Promise<void> {
    const next = { ...this.persisted, ...change };
    this.persisted = next;
    const { settings } = this.ctx;
    if (JSON.stringify(settings.get(SETTINGS_KEY)) === JSON.stringify(next)) return;
    try {
      await settings.set(SETTINGS_KEY, next);
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, "could not save Home Assistant settings");
    }
  }

  // -- what the entities show ----------------------------------------------------------------

  /** Lists the sources' cameras; publishes discovery when the set changed. */
  private async refreshCameras(opts: { publish: boolean }): Promise<boolean> {
    const { changed, gone } = await this.cameras.refresh();
    const mqtt = this.ctx.mqtt;
    if (mqtt) {
      for (const camera of gone) {
        await this.serial(() => this.send(mqtt, this.topics.camera(camera), "", true));
      }
    }
    if (changed) {
      await this.cameras.loadClips(this.today).catch(() => {});
      if (opts.publish) await this.publishDiscovery();
    }
    this.scheduleState();
    return changed;
  }

  /** The identity's recipient (made now if the vault has none yet, as its first run would). */
  private showRecipient(): void {
    this.ctx.recipient().then(
      (recipient) => {
        this.ageRecipient = recipient;
        this.scheduleState();
      },
      (err: unknown) =>
        this.log.warn({ err: errorMessage(err) }, "the age identity could not be read"),
    );
  }

  /** "Clips today" falls to 0 at local midnight even when nothing happens. */
  private armMidnight(): void {
    const now = this.now();
    const next = new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1, 0, 0, 1);
    this.midnightTimer = setTimeout(
      () => {
        this.today = localDate(this.now());
        void this.cameras.countToday(this.today).then(() => this.scheduleState());
        this.armMidnight();
      },
      Math.max(1000, next.getTime() - now.getTime()),
    );
    this.midnightTimer.unref();
  }
}

function readPersisted(raw: unknown): Persisted {
  const r = (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, unknown>;
  const strings = (v: unknown) =>
    Array.isArray(v) ? v.filter((s): s is string => typeof s === "string") : [];
  return { topics: strings(r.topics), cameras: strings(r.cameras) };
}
