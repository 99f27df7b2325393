import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config/load.js";
import { isStale, staleThresholds } from "../../src/serve/staleness.js";

function configFile(yaml: string): string {
  const d = mkdtempSync(join(tmpdir(), "mev-stale-"));
  writeFileSync(join(d, "config.yml"), yaml);
  return join(d, "config.yml");
}

describe("the staleness alarm's settings", () => {
  it("is off unless asked; the top-level threshold applies to every source, a source's own wins", () => {
    const none = loadConfig({ file: configFile("source:\n  type: local\n"), env: {} });
    expect(staleThresholds(none.config).size).toBe(0);

    const file = configFile(
      [
        "alerts:",
        "  staleAfterHours: 24",
        "sources:",
        "  - name: garage",
        "    type: local",
        "    path: /media/garage",
        "  - name: porch",
        "    type: local",
        "    path: /media/porch",
        "    alerts:",
        "      staleAfterHours: 0.5",
        "",
      ].join("\n"),
    );
    const { config } = loadConfig({ file, env: {} });
    expect(Object.fromEntries(staleThresholds(config))).toEqual({
      garage: 24 * 3600_000,
      porch: 1800_000,
    });
  });

  it("names the key of a threshold that is not a positive number", () => {
    const file = configFile("source:\n  type: local\nalerts:\n  staleAfterHours: 0\n");
    try {
      loadConfig({ file, env: {} });
      expect.unreachable("a zero threshold was taken");
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect(
        (err as ConfigError).problems.some((p) => p.startsWith("alerts.staleAfterHours:")),
      ).toBe(true);
    }
  });
});

describe("isStale", () => {
  const hour = 3600_000;
  const now = Date.parse("2024-05-02T12:00:00Z");
  it("counts from the last clip backed up, or from when watching began when there is none", () => {
    expect(isStale("2024-05-02T11:30:00Z", "2024-04-01T00:00:00Z", hour, now)).toBe(false);
    expect(isStale("2024-05-02T10:59:00Z", "2024-04-01T00:00:00Z", hour, now)).toBe(true);
    expect(isStale(undefined, "2024-05-02T11:30:00Z", hour, now)).toBe(false);
    expect(isStale(undefined, "2024-05-02T10:00:00Z", hour, now)).toBe(true);
  });
});
