import type { RunSummary } from "../util/events.js";

/**
 * `/healthz`: is the service doing its job? A pure judgement of what the daemon knows, so the
 * rules are unit-tested without a clock or a broker. It says why, and nothing about clips (it
 * needs no token).
 */

/** This many failed runs in a row, with none good since, and the service is not working. */
export const FAILED_RUNS_UNHEALTHY = 3;
/** A broker away this long is no blip (reconnects back off to 30 s). */
export const MQTT_DOWN_UNHEALTHY_MS = 60_000;

export interface HealthInputs {
  /** Recorded runs, newest first (the manifest's history, across restarts). */
  runs: readonly Pick<RunSummary, "error">[];
  lastSuccessAt: string | undefined;
  /** Absent when MQTT is off. */
  mqtt?: { connected: boolean; disconnectedSinceMs: number | undefined };
  paused: boolean;
  running: boolean;
  stopping: boolean;
  nowMs: number;
  /** Whether the destination takes backups (its last write and listing worked); null: not known. */
  destinationConnected?: boolean | null;
}

export interface HealthReport {
  ok: boolean;
  status: "ok" | "failing";
  /** Why it is failing; empty when ok. */
  problems: string[];
  checks: {
    runs: { ok: boolean; failedInARow: number; lastSuccessAt: string | null };
    mqtt: { ok: boolean; connected: boolean } | null;
    destination: { ok: boolean; connected: boolean | null };
    running: boolean;
    paused: boolean;
  };
}

export function assessHealth(i: HealthInputs): HealthReport {
  const problems: string[] = [];
  if (i.stopping) problems.push("the service is stopping");

  const failedInARow = countLeadingFailures(i.runs);
  const runsOk = failedInARow < FAILED_RUNS_UNHEALTHY;
  if (!runsOk) {
    problems.push(
      `the last ${failedInARow} sync runs failed${i.lastSuccessAt ? ` (last success ${i.lastSuccessAt})` : " (none succeeded yet)"}`,
    );
  }

  let mqtt: HealthReport["checks"]["mqtt"] = null;
  if (i.mqtt) {
    const downMs =
      i.mqtt.connected || i.mqtt.disconnectedSinceMs === undefined
        ? 0
        : i.nowMs - i.mqtt.disconnectedSinceMs;
    const ok = i.mqtt.connected || downMs < MQTT_DOWN_UNHEALTHY_MS;
    if (!ok)
      problems.push(`the MQTT broker has been unreachable for ${Math.round(downMs / 1000)} s`);
    mqtt = { ok, connected: i.mqtt.connected };
  }

  // One failed write is enough: every clip of every source goes there.
  const destinationOk = i.destinationConnected !== false;
  if (!destinationOk) {
    problems.push("the destination does not take backups (its last write or listing failed)");
  }

  return {
    ok: problems.length === 0,
    status: problems.length === 0 ? "ok" : "failing",
    problems,
    checks: {
      runs: { ok: runsOk, failedInARow, lastSuccessAt: i.lastSuccessAt ?? null },
      mqtt,
      destination: { ok: destinationOk, connected: i.destinationConnected ?? null },
      running: i.running,
      paused: i.paused,
    },
  };
}

function countLeadingFailures(runs: HealthInputs["runs"]): number {
  let n = 0;
  for (const run of runs) {
    if (!run.error) break;
    n++;
  }
  return n;
}
