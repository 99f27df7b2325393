import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import {
  connect,
  type IClientOptions,
  type IConnackPacket,
  type IPublishPacket,
  type MqttClient,
} from "mqtt";
import type { MqttLink, MqttMessageHandler } from "../extensions/contract.js";
import { errorMessage, type Logger } from "../util/log.js";
import { backoffDelay } from "../util/retry.js";

/**
 * The daemon's one MQTT connection (mqtt.js), shared by the trigger and every extension.
 *
 * - MQTT 5 first; a broker that refuses the protocol version (aedes, old mosquitto) gets 3.1.1.
 * - A persistent session under a stable client id, so QoS 1 triggers published while the
 *   service restarts are delivered when it is back.
 * - Its own reconnect loop with exponential backoff (mqtt.js only knows a fixed period), and its
 *   own subscription book: every filter is subscribed again after a reconnect the broker does not
 *   remember (no session), then the `onConnect` listeners run.
 * - `<baseTopic>/availability`: `online` (retained) on every connect once the subscriptions are
 *   in place; `offline` as the last will, and published by `stop()` itself, since a clean
 *   disconnect does not fire the will.
 * - Retained messages published while the broker is away are held (latest per topic) and sent
 *   on the next connect, before the `onConnect` listeners run.
 */

export interface MqttLinkOptions {
  url: string;
  username?: string;
  password?: string;
  /** CA certificate (PEM) for mqtts:// brokers with a private CA. */
  caFile?: string;
  baseTopic: string;
  clientId: string;
  logger: Logger;
  /** First reconnect delay, doubled per failed attempt up to `maxReconnectMs`. */
  reconnectMs?: number;
  maxReconnectMs?: number;
  /** How long a publish may wait for the broker's PUBACK. */
  publishTimeoutMs?: number;
}

interface SubscribeOptions {
  /**
   * Ignore messages the broker replays because they were retained (a trigger published with
   * -r would otherwise run a sync on every reconnect). Live messages always pass.
   */
  skipRetained?: boolean;
}

interface Subscription {
  handler: MqttMessageHandler;
  skipRetained: boolean;
}

/** Default client id: stable across restarts of the same vault, distinct between vaults. */
export function defaultClientId(baseTopic: string, stateDir: string): string {
  const h = createHash("sha256").update(`${baseTopic}\n${stateDir}`).digest("hex");
  // 23 characters: the longest every MQTT 3.1.1 broker must accept.
  return `motioneye-vault-${h.slice(0, 7)}`;
}

/** MQTT topic filter matching (`+` one level, `#` the rest; wildcards never match `$` topics). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  if (topic.startsWith("$") && (f[0] === "+" || f[0] === "#")) return false;
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === "#") return true;
    if (i >= t.length) return false;
    if (level !== "+" && level !== t[i]) return false;
  }
  return f.length === t.length;
}

/** The broker's URL without credentials, for logs. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    return u.toString().replace(/\/$/, "");
  } catch {
    return "(unparsable URL)";
  }
}

/** CONNACK codes for "unsupported protocol version": 3.1.1's 1, MQTT 5's 0x84. */
const BAD_VERSION = new Set([1, 132]);
/** CONNACK codes for refused credentials or authorisation (3.1.1: 4, 5; MQTT 5: 0x86, 0x87). */
const REFUSED = new Set([4, 5, 134, 135]);

export class MqttConnection implements MqttLink {
  readonly baseTopic: string;
  private client: MqttClient | undefined;
  private version: 4 | 5 = 5;
  private isConnected = false;
  private stopping = false;
  private attempts = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly subs = new Map<string, Set<Subscription>>();
  /** Filters the broker holds for us in the current session. */
  private readonly granted = new Set<string>();
  private readonly connectListeners = new Set<() => void>();
  private readonly log: Logger;
  private readonly availability: string;
  private everConnected = false;
  /** Since when the link has been down (for /healthz); undefined while connected. */
  private downSinceMs: number | undefined;
  private readonly ca: Buffer | undefined;
  /** Retained messages published while the broker was away: sent on the next connect. */
  private readonly heldRetained = new Map<string, { payload: string | Buffer; qos: 0 | 1 }>();

  constructor(private readonly opts: MqttLinkOptions) {
    this.baseTopic = opts.baseTopic;
    if (opts.caFile) {
      try {
        this.ca = readFileSync(opts.caFile);
      } catch (err) {
        throw new Error(`mqtt.caFile: cannot read ${opts.caFile} (${errorMessage(err)})`);
      }
    }
    this.availability = `${opts.baseTopic}/availability`;
    this.log = opts.logger.child({ mqtt: safeUrl(opts.url) });
  }

  get connected(): boolean {
    return this.isConnected;
  }

  /** When the link went down (or started connecting), in ms since the epoch; undefined while up. */
  get disconnectedSinceMs(): number | undefined {
    return this.isConnected ? undefined : this.downSinceMs;
  }

  /** Starts connecting in the background; the link keeps trying until `stop()`. */
  start(): void {
    this.downSinceMs = Date.now();
    this.client = this.create();
  }

  /** Resolves true once connected, false after `timeoutMs`. */
  waitConnected(timeoutMs: number): Promise<boolean> {
    if (this.isConnected) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        off();
        resolve(false);
      }, timeoutMs);
      const off = this.onConnect(() => {
        clearTimeout(timer);
        off();
        resolve(true);
      });
    });
  }

  /**
   * Publishes now. While the broker is away a retained message is kept (the latest per topic)
   * and sent on the next connect, so retained state, and its clearing, is never lost; any other
   * message is refused.
   */
  async publish(
    topic: string,
    payload: string | Buffer,
    opts: { retain?: boolean; qos?: 0 | 1 } = {},
  ): Promise<void> {
    const client = this.client;
    const qos = opts.qos ?? 1;
    if (opts.retain) this.heldRetained.delete(topic); // this one is newer
    if (!client || !this.isConnected) {
      if (opts.retain && !this.stopping) {
        this.heldRetained.set(topic, { payload, qos });
        return;
      }
      throw new Error("not connected to the MQTT broker");
    }
    try {
      await withTimeout(
        client.publishAsync(topic, payload, { qos, retain: opts.retain ?? false }),
        this.opts.publishTimeoutMs ?? 10_000,
        `publish to ${topic} timed out`,
      );
    } catch (err) {
      if (!opts.retain || this.stopping) throw err;
      if (!this.heldRetained.has(topic)) this.heldRetained.set(topic, { payload, qos });
    }
  }

  async subscribe(
    topicFilter: string,
    handler: MqttMessageHandler,
    opts: SubscribeOptions = {},
  ): Promise<() => Promise<void>> {
    const sub: Subscription = { handler, skipRetained: opts.skipRetained ?? false };
    let set = this.subs.get(topicFilter);
    if (!set) {
      set = new Set();
      this.subs.set(topicFilter, set);
    }
    set.add(sub);
    if (this.isConnected && !this.granted.has(topicFilter)) {
      // Failure is not fatal: the next (re)connect subscribes again.
      await this.subscribeNow([topicFilter]);
    }
    return async () => {
      const current = this.subs.get(topicFilter);
      current?.delete(sub);
      if (current && current.size === 0) {
        this.subs.delete(topicFilter);
        this.granted.delete(topicFilter);
        if (this.isConnected) {
          await this.client?.unsubscribeAsync(topicFilter).catch(() => undefined);
        }
      }
    };
  }

  onConnect(listener: () => void): () => void {
    this.connectListeners.add(listener);
    return () => this.connectListeners.delete(listener);
  }

  /**
   * Publishes `offline` (QoS 1, retained; a clean disconnect does not fire the will), then
   * disconnects. Bounded by `timeoutMs` for a broker that is gone.
   */
  async stop(timeoutMs = 2000): Promise<void> {
    this.stopping = true;
    clearTimeout(this.reconnectTimer);
    const client = this.client;
    if (!client) return;
    const deadline = Date.now() + timeoutMs;
    if (this.isConnected) {
      try {
        await withTimeout(
          client.publishAsync(this.availability, "offline", { qos: 1, retain: true }),
          Math.max(100, deadline - Date.now()),
          "publishing offline timed out",
        );
      } catch (err) {
        this.log.warn({ err: errorMessage(err) }, "could not publish offline");
      }
    }
    this.isConnected = false;
    try {
      await withTimeout(client.endAsync(), Math.max(100, deadline - Date.now()), "timed out");
    } catch {
      await client.endAsync(true).catch(() => undefined);
    }
    this.log.info("MQTT disconnected");
  }

  // -- connection ---------------------------------------------------------------------------

  private options(): IClientOptions {
    const o = this.opts;
    const options: IClientOptions = {
      protocolVersion: this.version,
      clientId: o.clientId,
      clean: false,
      keepalive: 30,
      connectTimeout: 10_000,
      // Our own loop below (backoff, protocol fallback); our own resubscription book.
      reconnectPeriod: 0,
      resubscribe: false,
      will: { topic: this.availability, payload: Buffer.from("offline"), qos: 1, retain: true },
    };
    if (this.version === 5) options.properties = { sessionExpiryInterval: 7 * 24 * 3600 };
    if (o.username !== undefined) options.username = o.username;
    if (o.password !== undefined) options.password = o.password;
    if (this.ca) options.ca = this.ca;
    return options;
  }

  private create(): MqttClient {
    const client = connect(this.opts.url, this.options());
    const mine = () => client === this.client && !this.stopping;

    client.on("connect", (connack: IConnackPacket) => {
      if (!mine()) return;
      void this.onConnected(client, connack.sessionPresent);
    });
    client.on("message", (topic: string, payload: Buffer, packet: IPublishPacket) => {
      if (client === this.client) this.dispatch(topic, payload, packet.retain);
    });
    client.on("error", (err: Error & { code?: unknown }) => {
      if (!mine()) return;
      const code = typeof err.code === "number" ? err.code : undefined;
      if (code !== undefined && BAD_VERSION.has(code) && this.version === 5) {
        this.log.info("the broker does not speak MQTT 5: using MQTT 3.1.1");
        this.version = 4;
        this.attempts = 0;
        return; // 'close' follows and reconnects with 3.1.1 at once
      }
      const level = code !== undefined && REFUSED.has(code) ? "error" : "warn";
      if (this.attempts <= 1 || level === "error") {
        this.log[level]({ err: errorMessage(err) }, "MQTT connection failed");
      } else {
        this.log.debug({ err: errorMessage(err) }, "MQTT connection failed");
      }
    });
    client.on("close", () => {
      if (!mine()) return;
      if (this.isConnected) {
        this.log.warn("MQTT connection lost: reconnecting");
        this.downSinceMs = Date.now();
      }
      this.isConnected = false;
      this.granted.clear();
      this.scheduleReconnect();
    });
    return client;
  }

  private scheduleReconnect(): void {
    if (this.stopping || this.reconnectTimer) return;
    const base = this.opts.reconnectMs ?? 1000;
    const max = this.opts.maxReconnectMs ?? 30_000;
    // The first retry after a protocol fallback or a lost connection is quick.
    const delay = this.attempts === 0 ? 50 : backoffDelay(this.attempts, base, max);
    this.attempts++;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.stopping) return;
      const old = this.client;
      this.client = this.create();
      old?.end(true);
    }, delay);
  }

  private async onConnected(client: MqttClient, sessionPresent: boolean): Promise<void> {
    this.isConnected = true;
    this.downSinceMs = undefined;
    this.attempts = 0;
    this.log.info(
      { protocol: this.version === 5 ? "MQTT 5" : "MQTT 3.1.1", sessionPresent },
      this.everConnected ? "MQTT reconnected" : "MQTT connected",
    );
    this.everConnected = true;
    if (!sessionPresent) this.granted.clear();
    // Subscribed first: `online` means triggers are heard.
    await this.subscribeNow([...this.subs.keys()].filter((f) => !this.granted.has(f)));
    if (client !== this.client || !this.isConnected) return;
    try {
      await client.publishAsync(this.availability, "online", { qos: 1, retain: true });
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, "could not publish online");
    }
    const held = [...this.heldRetained];
    this.heldRetained.clear();
    for (const [topic, m] of held) {
      if (client !== this.client || !this.isConnected) return;
      await this.publish(topic, m.payload, { retain: true, qos: m.qos }).catch(() => undefined);
    }
    if (client !== this.client || !this.isConnected) return;
    for (const listener of this.connectListeners) {
      try {
        listener();
      } catch (err) {
        this.log.warn({ err: errorMessage(err) }, "an MQTT connect listener failed");
      }
    }
  }

  private async subscribeNow(filters: string[]): Promise<void> {
    const client = this.client;
    if (!client || filters.length === 0) return;
    try {
      const grants = await client.subscribeAsync(
        Object.fromEntries(filters.map((f) => [f, { qos: 1 as const }])),
      );
      for (const g of grants) {
        // 0x80 and up: the broker refused that filter (ACL).
        if (g.qos >= 128) this.log.error({ topic: g.topic }, "the broker refused a subscription");
        else this.granted.add(g.topic);
      }
    } catch (err) {
      this.log.warn({ err: errorMessage(err), filters }, "MQTT subscribe failed");
    }
  }

  private dispatch(topic: string, payload: Buffer, retained: boolean): void {
    for (const [filter, subs] of this.subs) {
      if (!topicMatches(filter, topic)) continue;
      for (const sub of subs) {
        if (retained && sub.skipRetained) continue;
        try {
          sub.handler(topic, payload);
        } catch (err) {
          this.log.error({ topic, err: errorMessage(err) }, "an MQTT message handler failed");
        }
      }
    }
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(message)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
