import { describe, expect, it } from "vitest";
import {
  assessHealth,
  FAILED_RUNS_UNHEALTHY,
  type HealthInputs,
  MQTT_DOWN_UNHEALTHY_MS,
} from "../../src/serve/health.js";

const NOW = Date.parse("2024-05-01T12:00:00Z");
type Run = HealthInputs["runs"][number];
const ok: Run = {};
const failed: Run = { error: "Camera1/2024-05-01/12-00-00.mp4: connection refused" };
const base: HealthInputs = {
  runs: [],
  lastSuccessAt: undefined,
  paused: false,
  running: false,
  stopping: false,
  nowMs: NOW,
};

describe("assessHealth", () => {
  it("is healthy with no runs yet, and with a failure or two after a success", () => {
    expect(assessHealth(base)).toMatchObject({ ok: true, status: "ok", problems: [] });
    const runs = [failed, failed, ok, failed];
    expect(assessHealth({ ...base, runs }).ok).toBe(true);
  });

  it(`fails after ${FAILED_RUNS_UNHEALTHY} failed runs in a row, and says so without clip names`, () => {
    const runs: Run[] = [...Array.from({ length: FAILED_RUNS_UNHEALTHY }, () => failed), ok];
    const r = assessHealth({ ...base, runs, lastSuccessAt: "2024-05-01T11:00:00.000Z" });
    expect(r.ok).toBe(false);
    expect(r.status).toBe("failing");
    expect(r.problems).toEqual([
      `the last ${FAILED_RUNS_UNHEALTHY} sync runs failed (last success 2024-05-01T11:00:00.000Z)`,
    ]);
    expect(r.checks.runs).toEqual({
      ok: false,
      failedInARow: FAILED_RUNS_UNHEALTHY,
      lastSuccessAt: "2024-05-01T11:00:00.000Z",
    });
    expect(JSON.stringify(r)).not.toContain("Camera1");
    // One good run and it is healthy again.
    expect(assessHealth({ ...base, runs: [ok, ...runs] }).ok).toBe(true);
  });

  it("fails when the MQTT broker has been away for long, not on a blip", () => {
    const down = (ms: number) =>
      assessHealth({ ...base, mqtt: { connected: false, disconnectedSinceMs: NOW - ms } });
    expect(down(5000).ok).toBe(true);
    expect(down(5000).checks.mqtt).toEqual({ ok: true, connected: false });
    const long = down(MQTT_DOWN_UNHEALTHY_MS + 1000);
    expect(long.ok).toBe(false);
    expect(long.problems).toEqual([
      `the MQTT broker has been unreachable for ${MQTT_DOWN_UNHEALTHY_MS / 1000 + 1} s`,
    ]);
    const up = assessHealth({ ...base, mqtt: { connected: true, disconnectedSinceMs: undefined } });
    expect(up.checks.mqtt).toEqual({ ok: true, connected: true });
    expect(assessHealth(base).checks.mqtt).toBeNull(); // MQTT off: not a check
  });

  it("fails while stopping; paused is a choice, not a failure", () => {
    expect(assessHealth({ ...base, stopping: true }).problems).toEqual(["the service is stopping"]);
    const paused = assessHealth({ ...base, paused: true });
    expect(paused.ok).toBe(true);
    expect(paused.checks.paused).toBe(true);
  });

  it("fails while the destination does not take backups; unknown is not a failure", () => {
    const refused = assessHealth({ ...base, destinationConnected: false });
    expect(refused.ok).toBe(false);
    expect(refused.problems).toEqual([
      "the destination does not take backups (its last write or listing failed)",
    ]);
    expect(refused.checks.destination).toEqual({ ok: false, connected: false });
    expect(assessHealth({ ...base, destinationConnected: null }).ok).toBe(true);
    expect(assessHealth({ ...base, destinationConnected: true }).checks.destination).toEqual({
      ok: true,
      connected: true,
    });
  });
});
