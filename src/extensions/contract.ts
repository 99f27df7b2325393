import type { Vault } from "../app/vault.js";
import type { RunSummary } from "../util/events.js";
import type { Logger } from "../util/log.js";

/**
 * The contracts between `serve` and its extensions (Home Assistant, Telegram), as in
 * zigbee2mqtt: the controller owns the lifecycle, extensions listen to the event bus and ask
 * for work through the one trigger queue. The sync engine never imports an extension.
 */

export type TriggerSource =
  | "startup"
  | "mqtt"
  | "schedule"
  | "settle"
  | "telegram"
  | "homeassistant"
  | "cli";

export interface TriggerRequest {
  source: TriggerSource;
  /** Clip ids to back up first (a file named by motioneye.sh). */
  clipIds?: string[];
}

/** One queue for every source of work: triggers during a run coalesce into one follow-up run. */
export interface TriggerQueue {
  /** Asks for a run; resolves with the summary of the run that covered this request. */
  request(req: TriggerRequest): Promise<RunSummary>;
  /** True while a run is in progress. */
  readonly running: boolean;
  /** While paused (Home Assistant's "Backups enabled" off), requests from triggers are dropped. */
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

export interface ExtensionContext {
  vault: Vault;
  queue: TriggerQueue;
  /** Absent when MQTT is off. */
  mqtt: MqttLink | undefined;
  logger: Logger;
}

export interface Extension {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}
