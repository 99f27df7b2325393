import type { SourceSet } from "../clips/sources.js";
import type { Config } from "../config/load.js";
import type { AgeVault } from "../crypto/ageVault.js";
import type { Manifest } from "../manifest/manifest.js";
import type { ServiceState } from "../serve/state.js";
import type { BandwidthLimit } from "../util/bandwidth.js";
import type { EventBus, RunSummary } from "../util/events.js";
import type { Logger } from "../util/log.js";

/**
 * The contracts between `serve` and its extensions (Home Assistant, Telegram), as in
 * zigbee2mqtt: the controller owns the lifecycle, extensions listen to the event bus, read the
 * one state document (ServiceState) and ask for work through the trigger queue. The backup
 * engine never imports an extension.
 */

export type TriggerOrigin =
  | "startup"
  | "mqtt"
  | "http"
  | "schedule"
  | "settle"
  | "telegram"
  | "homeassistant"
  | "cli";

export interface TriggerRequest {
  origin: TriggerOrigin;
  /** The source (camera device) it is for; absent or unknown: every source. */
  source?: string;
  /**
   * Clips to back up first, as paths on a source (`Camera1/2024-05-01/12-00-00.mp4`, or
   * `2024-05-01/...`; candidates, most likely first): a file named by motioneye.sh.
   */
  clipPaths?: string[];
}

/** Work for `serve`: one queue per source; triggers during a run coalesce into one follow-up. */
export interface TriggerQueue {
  /** Asks for a run; resolves with the summary of the run(s) that covered this request. */
  request(req: TriggerRequest): Promise<RunSummary>;
  /** True while a run of any source is in progress. */
  readonly running: boolean;
  /** While paused (Home Assistant's "Backups enabled" off), requests from triggers are refused. */
  readonly paused: boolean;
  setPaused(paused: boolean): Promise<void>;
  /** Subscribe to pause changes; returns an unsubscribe function. */
  onPausedChange(listener: (paused: boolean) => void): () => void;
  /** When the schedule will next run, if one is set. */
  nextScheduledRun(): Date | undefined;
}

export type MqttMessageHandler = (topic: string, payload: Buffer) => void;

/** The daemon's MQTT connection, shared by every extension. */
export interface MqttLink {
  readonly baseTopic: string;
  readonly connected: boolean;
  publish(
    topic: string,
    payload: string | Buffer,
    opts?: { retain?: boolean; qos?: 0 | 1 },
  ): Promise<void>;
  /** Subscribes (and re-subscribes after reconnects); returns an unsubscribe function. */
  subscribe(topicFilter: string, handler: MqttMessageHandler): Promise<() => Promise<void>>;
  /** Called on every (re)connect, after subscriptions are restored. */
  onConnect(listener: () => void): () => void;
}

/** Settings `serve` keeps in the manifest's state, written under the run lock. */
export interface Settings {
  get(key: string): unknown;
  set(key: string, value: unknown): Promise<void>;
}

/** What a source offers extensions: its camera folders, and a file next to a clip. */
export interface SourceView {
  readonly name: string;
  readonly type: string;
  /** Camera folders at its top (`default` for date folders at the root). */
  cameras(): Promise<string[]>;
  /** A small file on the source (a clip's `.thumb`), or undefined when it is not there. */
  readSmall(path: string, maxBytes: number): Promise<Buffer | undefined>;
}

/** Everything `serve` offers its extensions; each factory takes the part it uses. */
export interface ExtensionContext {
  config: Config;
  logger: Logger;
  events: EventBus;
  /** The service's state: the one owner; extensions read it, never keep their own copy. */
  state: ServiceState;
  queue: TriggerQueue;
  /** Absent when MQTT is off. */
  mqtt: MqttLink | undefined;
  sources: SourceSet;
  sourceViews: readonly SourceView[];
  manifest: Pick<Manifest, "listDate" | "dates" | "get">;
  settings: Settings;
  /** Restores (the bot). */
  vault: AgeVault;
  /** Can the vault be reached? (Home Assistant's connection sensor.) */
  checkVault(): Promise<boolean>;
  /** The age recipient every clip is encrypted to (the identity is made if there is none yet). */
  recipient(): Promise<string>;
  /** sync.bandwidthLimit, shared by every upload (Home Assistant's number entity sets it live). */
  bandwidth?: BandwidthLimit;
}

export interface Extension {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}
