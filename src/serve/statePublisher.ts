import type { MqttLink } from "../extensions/contract.js";
import { errorMessage, type Logger } from "../util/log.js";
import type { ServiceState } from "./state.js";

/**
 * The service's state as one retained JSON document on `<baseTopic>/state`, sent again on every
 * change (debounced a little) and after every (re)connect. Its keys follow `status --json`, plus
 * what only the daemon knows (running, paused, runs since start). When Home Assistant is on, its
 * extension publishes this document with its own keys added instead.
 */
export class StatePublisher {
  private readonly topic: string;
  private readonly disposers: Array<() => unknown> = [];
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly deps: {
      state: ServiceState;
      mqtt: MqttLink;
      logger: Logger;
      debounceMs?: number;
    },
  ) {
    this.topic = `${deps.mqtt.baseTopic}/state`;
  }

  start(): void {
    const { state, mqtt } = this.deps;
    this.disposers.push(
      state.onChange(() => this.schedule()),
      mqtt.onConnect(() => void this.publish()),
    );
    if (mqtt.connected) void this.publish();
  }

  /** Stops listening and publishes a last state (not running). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const d of this.disposers.splice(0)) d();
    await this.send();
  }

  private schedule(): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.publish();
    }, this.deps.debounceMs ?? 50);
  }

  private async publish(): Promise<void> {
    if (!this.stopped) await this.send();
  }

  private async send(): Promise<void> {
    const { mqtt, logger, state } = this.deps;
    if (!mqtt.connected) return; // sent again on connect
    try {
      await mqtt.publish(this.topic, JSON.stringify(state.snapshot()), { retain: true, qos: 1 });
    } catch (err) {
      logger.debug({ err: errorMessage(err) }, "could not publish the state");
    }
  }
}
