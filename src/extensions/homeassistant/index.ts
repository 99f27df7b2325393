import { readFileSync } from "node:fs";
import { DEFAULT_CAMERA, isDate, unsafeSegmentReason } from "../../clips/clipId.js";
import type { Config } from "../../config/load.js";
import { type ServiceState, serviceState } from "../../serve/state.js";
import type { StoreEntry } from "../../storage/types.js";
import { errorMessage, type Logger } from "../../util/log.js";
import type { Extension, ExtensionContext, MqttLink } from "../contract.js";
import {
  buildDiscovery,
  cameraState,
  haTopics,
  type LastClip,
  vaultEvent,
  vaultState,
} from "./discovery.js";

/**
 * Home Assistant, as zigbee2mqtt's extension does it: retained discovery configs for one device
 * ("motionEye Vault") and a child device per camera, retained state documents kept current from
 * the vault's event bus, the "Sync now" button and "Backups enabled" switch wired to the trigger
 * queue, discovery sent again when Home Assistant announces itself, and configs of entities that
 * no longer exist cleared with empty retained payloads.
 */

/**
 * What the extension keeps in the manifest's settings, under this key. ("Backups enabled" is the
 * queue's pause, which the queue itself keeps across restarts.)
 */
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

export function createHomeAssistantExtension(
  ctx: ExtensionContext,
  opts: HomeAssistantOptions = {},
): Extension {
  return new HomeAssistant(ctx, opts);
}

interface CameraInfo {
  lastClip?: LastClip;
  /** Ids of clips from today's date folder: their count is "clips today". */
  today: Set<string>;
}

const STATE_DEBOUNCE_MS = 100;
const START_LISTING_WAIT_MS = 3000;

class HomeAssistant implements Extension {
  readonly name = "homeassistant";
  private readonly log: Logger;
  private readonly cfg: Config["mqtt"]["homeassistant"];
  private readonly topics: ReturnType<typeof haTopics>;
  private readonly version = readVersion();
  private readonly random: () => number;
  private readonly now: () => Date;

  private readonly cameras = new Map<string, CameraInfo>();
  private today: string;
  private syncing = false;
  private runsSinceStart = 0;
  /** The engine records a run's error only when the run ends; one that throws is only an event. */
  private lastFailure: { message: string; at: string } | undefined;
  private livePending: number | undefined;
  private cameraConnected: boolean | undefined;
  private destinationConnected: boolean | undefined;
  private readonly plannedRuns = new Set<string>();
  private published = new Set<string>();
  private persisted: Persisted;

  private readonly disposers: Array<() => unknown> = [];
  private stateTimer: NodeJS.Timeout | undefined;
  private rediscoverTimer: NodeJS.Timeout | undefined;
  private midnightTimer: NodeJS.Timeout | undefined;
  private destinationCheck: Promise<void> | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly ctx: ExtensionContext,
    opts: HomeAssistantOptions,
  ) {
    this.log = ctx.logger.child({ ext: "homeassistant" });
    const { config } = ctx.vault.loaded;
    this.cfg = config.mqtt.homeassistant;
    this.topics = haTopics(config.mqtt.baseTopic);
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? (() => new Date());
    this.today = localDate(this.now());
    this.persisted = readPersisted(ctx.vault.manifest.status.settings[SETTINGS_KEY]);
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

    for (const camera of this.persisted.cameras) this.camera(camera);
    await this.loadClips().catch((err) =>
      this.log.warn({ err: errorMessage(err) }, "could not read clips from the manifest"),
    );
    this.listen(mqtt);
    await this.subscribe(mqtt);
    this.disposers.push(mqtt.onConnect(() => void this.publishAll()));

    // In the background: serve's start (and its first run) never waits for the camera.
    this.announce(mqtt).catch((err) =>
      this.log.warn({ err: errorMessage(err) }, "Home Assistant discovery failed"),
    );
  }

  /**
   * First discovery. Cameras come from the source's top folders: a reachable camera gets a moment
   * to answer first, so Home Assistant does not see a vanished camera's device come and go.
   */
  private async announce(mqtt: MqttLink): Promise<void> {
    let listed = false;
    const listing = this.refreshCameras({ publish: false }).then((changed) => {
      listed = true;
      return changed;
    });
    await Promise.race([listing, sleep(START_LISTING_WAIT_MS)]);
    // While the broker is away, onConnect sends everything once it is back.
    if (mqtt.connected) await this.publishAll();
    if (!listed && (await listing)) await this.publishDiscovery();
    await this.checkDestination();
    if (!this.stopped) this.armMidnight();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    const wasRunning = this.ctx.mqtt !== undefined && this.cfg.enabled;
    this.stopped = true;
    for (const t of [this.stateTimer, this.rediscoverTimer, this.midnightTimer]) clearTimeout(t);
    const disposers = this.disposers.splice(0);
    await Promise.allSettled(disposers.map(async (d) => d()));
    // A last state, as serve's own state publisher leaves one (availability goes offline next).
    if (wasRunning) await this.publishState({ final: true });
  }

  // -- wiring ---------------------------------------------------------------------------------

  private listen(mqtt: MqttLink): void {
    const { events } = this.ctx.vault;
    this.disposers.push(
      events.on("syncStarted", () => {
        this.runsSinceStart++;
        this.syncing = true;
        this.scheduleState();
      }),
      events.on("syncPlanned", (e) => {
        this.plannedRuns.add(e.runId);
        this.cameraConnected = true;
        this.livePending = e.toUpload + e.pending;
        this.scheduleState();
      }),
      events.on("clipBackedUp", (e) => {
        this.destinationConnected = true;
        if (this.livePending !== undefined) this.livePending = Math.max(0, this.livePending - 1);
        const isNew = !this.cameras.has(e.camera);
        const info = this.camera(e.camera);
        info.lastClip = { id: e.id, camera: e.camera, at: e.at };
        if (e.date === this.today) info.today.add(e.id);
        if (isNew) void this.publishDiscovery();
        void this.publishEvent(
          mqtt,
          vaultEvent("clip_backed_up", {
            id: e.id,
            camera: e.camera,
            date: e.date,
            size: e.size,
            at: e.at,
          }),
        );
        this.scheduleState();
      }),
      events.on("syncFailed", (e) => {
        // A run that failed before its plan never listed the source: the camera is unreachable.
        // One that failed later may have lost the destination: look at it.
        if (this.plannedRuns.has(e.runId)) void this.checkDestination();
        else this.cameraConnected = false;
        this.lastFailure = { message: e.error, at: e.at };
        if (this.plannedRuns.size > 100) this.plannedRuns.clear(); // runs that threw after planning
        this.syncing = false;
        void this.publishEvent(
          mqtt,
          vaultEvent("sync_failed", { run_id: e.runId, error: e.error, at: e.at }),
        );
        this.scheduleState();
      }),
      events.on("syncFinished", (summary) => {
        this.syncing = false;
        this.livePending = undefined;
        const planned = this.plannedRuns.delete(summary.runId);
        if (summary.failed > 0) void this.checkDestination();
        void this.countToday().then(() => this.scheduleState());
        if (planned) void this.refreshCameras({ publish: true });
        void this.persist();
        this.scheduleState();
      }),
      this.ctx.queue.onPausedChange(() => this.scheduleState()),
    );
  }

  private async subscribe(mqtt: MqttLink): Promise<void> {
    const subs = await Promise.all([
      mqtt.subscribe(this.topics.syncNow, () => this.onSyncNow()),
      mqtt.subscribe(this.topics.backupsEnabledSet, (_t, payload) =>
        this.onBackupsEnabled(payload.toString("utf8").trim()),
      ),
      mqtt.subscribe(this.cfg.statusTopic, (_t, payload) => {
        if (payload.toString("utf8").trim().toLowerCase() === "online") this.onBirth();
      }),
    ]);
    this.disposers.push(...subs);
  }

  private onSyncNow(): void {
    this.log.info("Home Assistant asked for a sync");
    this.ctx.queue.request({ source: "homeassistant" }).then(
      (s) => this.log.debug({ run: s.runId, uploaded: s.uploaded }, "sync asked by HA done"),
      (err: unknown) => {
        // Paused ("Backups enabled" off) or stopping: the queue says so; not a failure.
        const expected = err instanceof Error && /^(Paused|Stopped)Error$/.test(err.name);
        const log = expected ? this.log.info.bind(this.log) : this.log.warn.bind(this.log);
        log({ err: errorMessage(err) }, "Home Assistant's sync was not run");
      },
    );
  }

  private onBackupsEnabled(payload: string): void {
    const command = payload.toUpperCase();
    if (command !== "ON" && command !== "OFF") {
      this.log.warn({ payload: payload.slice(0, 40) }, "backups_enabled expects ON or OFF");
      return;
    }
    const paused = command === "OFF";
    this.log.info({ paused }, "Home Assistant switched backups");
    this.ctx.queue.setPaused(paused).then(
      // The queue tells its listeners (and so us) when it changes; say it again in any case, so
      // Home Assistant's switch never waits for a state that did not change.
      () => this.scheduleState(),
      (err) => this.log.warn({ err: errorMessage(err) }, "could not change the pause"),
    );
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
    const { config } = this.ctx.vault.loaded;
    const configs = buildDiscovery({
      discoveryPrefix: this.cfg.discoveryPrefix,
      baseTopic: config.mqtt.baseTopic,
      version: this.version,
      sourceType: config.source.type,
      destinationType: config.destination.type,
      configurationUrl: this.cfg.motioneyeUrl,
      cameras: [...this.cameras.keys()],
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
    await this.persist({ topics: [...current].sort(), cameras: [...this.cameras.keys()].sort() });
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
    const st = this.ctx.vault.manifest.status;
    const { queue } = this.ctx;
    const pending = this.livePending ?? st.pending;
    const lastError = newest(st.lastError, this.lastFailure);
    // serve's own state document (src/serve/state.ts), which this one replaces on <base>/state.
    const core: ServiceState = serviceState(this.ctx.vault.manifest, queue, {
      // From the run's own events, not queue.running: the queue clears that only after the
      // engine has released its lock, after the last event, and nothing would publish again.
      running: this.syncing,
      runsSinceStart: this.runsSinceStart,
      lastError: lastError ?? null,
      pending,
    });
    const state = vaultState(
      {
        lastSuccessAt: st.lastSuccessAt,
        lastClip: st.lastClip,
        clips: st.totals.clips,
        bytes: st.totals.bytes,
        pending,
        lastError,
        nextSync: this.ctx.queue.nextScheduledRun(),
        syncing: this.syncing,
        cameraConnected: this.cameraConnected,
        destinationConnected: this.destinationConnected,
        backupsEnabled: !this.ctx.queue.paused,
      },
      core as unknown as Record<string, unknown>,
    );
    await this.send(mqtt, this.topics.state, JSON.stringify(state), true);
    for (const [camera, info] of this.cameras) {
      const doc = cameraState({ lastClip: info.lastClip, clipsToday: info.today.size });
      await this.send(mqtt, this.topics.camera(camera), JSON.stringify(doc), true);
    }
  }

  private async publishEvent(mqtt: MqttLink, event: Record<string, unknown>): Promise<void> {
    // Not retained: Home Assistant drops replayed retained messages on event entities anyway.
    await this.send(mqtt, this.topics.event, JSON.stringify(event), false);
  }

  /** Publishes; false (logged) when the broker is out of reach. */
  private async send(mqtt: MqttLink, topic: string, payload: string, retain: boolean) {
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

  /**
   * Saves what was published, compared with what the manifest holds now: a run reloads the
   * manifest from disk, which can drop a setting written at the same moment; after each run
   * this is called again and puts it back.
   */
  private async persist(change: Partial<Persisted> = {}): Promise<void> {
    const next = { ...this.persisted, ...change };
    this.persisted = next;
    const { manifest } = this.ctx.vault;
    if (JSON.stringify(manifest.status.settings[SETTINGS_KEY]) === JSON.stringify(next)) return;
    try {
      await manifest.setSetting(SETTINGS_KEY, next);
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, "could not save Home Assistant settings");
    }
  }

  // -- what the entities show ----------------------------------------------------------------

  private camera(name: string): CameraInfo {
    let info = this.cameras.get(name);
    if (!info) {
      info = { today: new Set() };
      this.cameras.set(name, info);
    }
    return info;
  }

  /**
   * Cameras are the top folders of the source (`default` when it holds date folders directly).
   * A successful listing also says the camera is reachable. Returns whether the set changed.
   */
  private async refreshCameras(opts: { publish: boolean }): Promise<boolean> {
    let entries: StoreEntry[];
    try {
      entries = await this.ctx.vault.source.list("");
    } catch (err) {
      this.cameraConnected = false;
      this.log.debug({ err: errorMessage(err) }, "camera listing failed");
      this.scheduleState();
      return false;
    }
    this.cameraConnected = true;
    const found = new Set<string>();
    for (const e of entries) {
      if (e.kind !== "dir" || e.name.startsWith(".") || unsafeSegmentReason(e.name)) continue;
      found.add(isDate(e.name) ? DEFAULT_CAMERA : e.name);
    }
    const changed = await this.serial(async () => {
      const before = [...this.cameras.keys()].sort().join("\n");
      const mqtt = this.ctx.mqtt;
      for (const name of [...this.cameras.keys()]) {
        if (found.has(name)) continue;
        this.cameras.delete(name);
        if (mqtt) await this.send(mqtt, this.topics.camera(name), "", true);
      }
      for (const name of found) this.camera(name);
      return before !== [...this.cameras.keys()].sort().join("\n");
    });
    if (changed) {
      await this.loadClips().catch(() => {});
      if (opts.publish) await this.publishDiscovery();
    }
    this.scheduleState();
    return changed;
  }

  /** A cheap look at the destination: can its root be listed? */
  private checkDestination(): Promise<void> {
    this.destinationCheck ??= this.ctx.vault.destination
      .list("")
      .then(
        () => {
          this.destinationConnected = true;
        },
        (err) => {
          this.destinationConnected = false;
          this.log.debug({ err: errorMessage(err) }, "destination check failed");
        },
      )
      .finally(() => {
        this.destinationCheck = undefined;
        this.scheduleState();
      });
    return this.destinationCheck;
  }

  /** Each camera's last clip (newest date folders first, a month at most) and today's count. */
  private async loadClips(): Promise<void> {
    const { manifest } = this.ctx.vault;
    const missing = new Set([...this.cameras].filter(([, i]) => !i.lastClip).map(([c]) => c));
    const dates = (await manifest.dates()).reverse().slice(0, 31);
    for (const date of dates) {
      if (missing.size === 0) break;
      const newest = new Map<string, LastClip>();
      for (const clip of await manifest.listDate(date)) {
        if (!missing.has(clip.camera)) continue;
        const seen = newest.get(clip.camera);
        if (!seen || clip.uploadedAt > seen.at) {
          newest.set(clip.camera, { id: clip.id, camera: clip.camera, at: clip.uploadedAt });
        }
      }
      for (const [camera, clip] of newest) {
        this.camera(camera).lastClip = clip;
        missing.delete(camera);
      }
    }
    await this.countToday();
  }

  private async countToday(): Promise<void> {
    const today = localDate(this.now());
    this.today = today;
    const byCamera = new Map<string, Set<string>>();
    for (const clip of await this.ctx.vault.manifest.listDate(today)) {
      const ids = byCamera.get(clip.camera) ?? new Set<string>();
      ids.add(clip.id);
      byCamera.set(clip.camera, ids);
    }
    for (const [camera, info] of this.cameras) info.today = byCamera.get(camera) ?? new Set();
  }

  /** "Clips today" falls to 0 at local midnight even when nothing happens. */
  private armMidnight(): void {
    const now = this.now();
    const next = new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1, 0, 0, 1);
    this.midnightTimer = setTimeout(
      () => {
        void this.countToday().then(() => this.scheduleState());
        this.armMidnight();
      },
      Math.max(1000, next.getTime() - now.getTime()),
    );
    this.midnightTimer.unref();
  }
}

function newest<T extends { at: string }>(a: T | undefined, b: T | undefined): T | undefined {
  if (!a || !b) return a ?? b;
  return Date.parse(b.at) > Date.parse(a.at) ? b : a;
}

function readPersisted(raw: unknown): Persisted {
  const r = (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, unknown>;
  const strings = (v: unknown) =>
    Array.isArray(v) ? v.filter((s): s is string => typeof s === "string") : [];
  return {
    topics: strings(r.topics),
    cameras: strings(r.cameras).filter((c) => !unsafeSegmentReason(c)),
  };
}

/** `YYYY-MM-DD` in local time: motionEye names its date folders after the local date. */
function localDate(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function readVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8"));
    return typeof pkg.version === "string" ? pkg.version : "unknown";
  } catch {
    return "unknown";
  }
}
