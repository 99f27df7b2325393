import { errorMessage, type Logger } from "../../util/log.js";
import type { MqttLink, TriggerQueue } from "../contract.js";
import type { HaTopics } from "./discovery.js";

/**
 * What Home Assistant sends: "Sync now" presses, the "Backups enabled" switch, and its own birth
 * message (`online` on its status topic: discovery is sent again). Returns the unsubscribes.
 */
export function subscribeControls(deps: {
  mqtt: MqttLink;
  topics: HaTopics;
  statusTopic: string;
  queue: TriggerQueue;
  log: Logger;
  onBirth(): void;
  /** The switch was set: say the state again, so it never waits for one that did not change. */
  onPauseSet(): void;
}): Promise<Array<() => Promise<void>>> {
  const { mqtt, topics, queue, log } = deps;

  const syncNow = () => {
    log.info("Home Assistant asked for a sync");
    queue.request({ origin: "homeassistant" }).then(
      (s) => log.debug({ run: s.runId, uploaded: s.uploaded }, "sync asked by HA done"),
      (err: unknown) => {
        // Paused ("Backups enabled" off) or stopping: the queue says so; not a failure.
        const expected = err instanceof Error && /^(Paused|Stopped)Error$/.test(err.name);
        (expected ? log.info.bind(log) : log.warn.bind(log))(
          { err: errorMessage(err) },
          "Home Assistant's sync was not run",
        );
      },
    );
  };

  const backupsEnabled = (payload: string) => {
    const command = payload.toUpperCase();
    if (command !== "ON" && command !== "OFF") {
      log.warn({ payload: payload.slice(0, 40) }, "backups_enabled expects ON or OFF");
      return;
    }
    const paused = command === "OFF";
    log.info({ paused }, "Home Assistant switched backups");
    queue
      .setPaused(paused)
      .then(deps.onPauseSet, (err) =>
        log.warn({ err: errorMessage(err) }, "could not change the pause"),
      );
  };

  return Promise.all([
    mqtt.subscribe(topics.syncNow, () => syncNow()),
    mqtt.subscribe(topics.backupsEnabledSet, (_t, payload) =>
      backupsEnabled(payload.toString("utf8").trim()),
    ),
    mqtt.subscribe(deps.statusTopic, (_t, payload) => {
      if (payload.toString("utf8").trim().toLowerCase() === "online") deps.onBirth();
    }),
  ]);
}
