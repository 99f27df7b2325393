import type { BandwidthLimit } from "../../util/bandwidth.js";
import { errorMessage, type Logger } from "../../util/log.js";
import type { MqttLink, TriggerQueue } from "../contract.js";
import type { HaTopics } from "./discovery.js";

/**
 * What Home Assistant sends: "Sync now" presses, the "Backups enabled" switch, the "Upload cap"
 * number, and its own birth message (`online` on its status topic: discovery is sent again).
 * Returns the unsubscribes.
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
  /** sync.bandwidthLimit, which the number sets live (absent: the number is ignored). */
  bandwidth?: BandwidthLimit;
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

  /** KiB/s, 0 for no cap; it holds until the timetable's next change (or a restart). */
  const uploadCap = (payload: string) => {
    const kib = Number(payload);
    if (!deps.bandwidth || payload === "" || !Number.isFinite(kib) || kib < 0 || kib > 1048576) {
      log.warn({ payload: payload.slice(0, 40) }, "upload_cap expects KiB/s from 0 to 1048576");
    } else {
      log.info({ kib: Math.round(kib) }, "Home Assistant set the upload cap");
      deps.bandwidth.override(kib === 0 ? null : Math.max(1, Math.round(kib)) * 1024);
    }
    // The number shows what is in force, also after a refused value.
    deps.onPauseSet();
  };

  return Promise.all([
    mqtt.subscribe(topics.syncNow, () => syncNow()),
    mqtt.subscribe(topics.backupsEnabledSet, (_t, payload) =>
      backupsEnabled(payload.toString("utf8").trim()),
    ),
    mqtt.subscribe(topics.uploadCapSet, (_t, payload) =>
      uploadCap(payload.toString("utf8").trim()),
    ),
    mqtt.subscribe(deps.statusTopic, (_t, payload) => {
      if (payload.toString("utf8").trim().toLowerCase() === "online") deps.onBirth();
    }),
  ]);
}
