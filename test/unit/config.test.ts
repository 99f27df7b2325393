import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config/load.js";

function dir(): string {
  return mkdtempSync(join(tmpdir(), "mev-config-"));
}

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("config", () => {
  it("runs on embedded defaults with no file: local source and vault, state in ./data", () => {
    const cwd = dir();
    const { config, file } = loadConfig({ cwd, env: {} });
    expect(file).toBeUndefined();
    expect(config.sources[0]?.type).toBe("local");
    expect(config.destination.type).toBe("local");
    expect(config.state.dir).toBe(join(cwd, "data"));
    expect(config.encryption.identityFile).toBe(join(cwd, "data", "identity.txt"));
    expect(config.schedule.sync).toBe("*/15 * * * *");
  });

  it("reads YAML, resolves relative paths against the file, and lets the environment override", () => {
    const d = dir();
    writeFileSync(
      join(d, "config.yml"),
      "source:\n  type: ftp\n  host: cam.local\n  password: fromfile\ndestination:\n  path: vault\ntelegram:\n  allowedChatIds: [1]\n",
    );
    const { config } = loadConfig({
      file: join(d, "config.yml"),
      env: {
        MOTIONEYE_VAULT_SOURCE_PORT: "2121",
        MOTIONEYE_VAULT_SOURCE_STABLE_SECONDS: "3",
        MOTIONEYE_VAULT_MQTT_HOMEASSISTANT_ENABLED: "false",
        MOTIONEYE_VAULT_TELEGRAM_ALLOWED_CHAT_IDS: "5,6",
        MOTIONEYE_VAULT_TELEGRAM_TOKEN: "123:abc",
      },
    });
    expect(config.sources[0]?.port).toBe(2121);
    expect(config.sources[0]?.stableSeconds).toBe(3);
    expect(config.sources[0]?.password).toBe("fromfile");
    expect(config.destination.path).toBe(join(d, "vault"));
    expect(config.mqtt.homeassistant.enabled).toBe(false);
    expect(config.telegram.allowedChatIds).toEqual([5, 6]);
    expect(config.telegram.token).toBe("123:abc");
  });

  it("reads secrets from <key>File, Docker-secrets style, from YAML or the environment", () => {
    const d = dir();
    writeFileSync(join(d, "pw"), "s3cret\n");
    writeFileSync(join(d, "tok"), "42:xyz\n");
    writeFileSync(join(d, "config.yml"), "source:\n  type: ftp\n  host: cam\n  passwordFile: pw\n");
    const { config } = loadConfig({
      file: join(d, "config.yml"),
      env: { MOTIONEYE_VAULT_TELEGRAM_TOKEN_FILE: join(d, "tok") },
    });
    expect(config.sources[0]?.password).toBe("s3cret");
    expect(config.telegram.token).toBe("42:xyz");
  });

  it("names every bad key, one problem per line", () => {
    const d = dir();
    writeFileSync(
      join(d, "config.yml"),
      "source:\n  type: nfs\ndestination:\n  type: sftp\n  hostKey: abc\nmqtt:\n  url: localhost\n",
    );
    const problems = problemsOf(() =>
      loadConfig({ file: join(d, "config.yml"), env: { MOTIONEYE_VAULT_SOURCE_PORT: "x" } }),
    );
    expect(
      problems.some((p) => p.startsWith("MOTIONEYE_VAULT_SOURCE_PORT: expected a number")),
    ).toBe(true);
    expect(problems.some((p) => p.startsWith("source.type:"))).toBe(true);
    expect(problems.some((p) => p.startsWith("destination.hostKey:"))).toBe(true);
    expect(problems.some((p) => p.startsWith("destination.host:"))).toBe(true);
    expect(problems.some((p) => p.startsWith("mqtt.url:"))).toBe(true);
  });

  it("checks cron expressions with the parser serve uses; an empty schedule disables it", () => {
    const d = dir();
    writeFileSync(
      join(d, "config.yml"),
      'schedule:\n  sync: "every five minutes"\nretention:\n  remoteDays: 30\n  schedule: "61 * * * *"\n',
    );
    const problems = problemsOf(() => loadConfig({ file: join(d, "config.yml"), env: {} }));
    expect(problems).toEqual([
      'schedule.sync: is not a valid cron expression (like "*/15 * * * *")',
      'retention.schedule: is not a valid cron expression (like "*/15 * * * *")',
    ]);
    writeFileSync(join(d, "config.yml"), 'schedule:\n  sync: ""\n');
    expect(loadConfig({ file: join(d, "config.yml"), env: {} }).config.schedule.sync).toBe("");
  });

  it("telegram.oversize: split by default; shrink or refuse from the file or the environment; anything else named", () => {
    const d = dir();
    const file = join(d, "config.yml");
    writeFileSync(file, "telegram:\n  maxUploadMB: 20\n");
    expect(loadConfig({ file, env: {} }).config.telegram.oversize).toBe("split");
    writeFileSync(file, "telegram:\n  oversize: shrink\n");
    expect(loadConfig({ file, env: {} }).config.telegram.oversize).toBe("shrink");
    const env = { MOTIONEYE_VAULT_TELEGRAM_OVERSIZE: "refuse" };
    expect(loadConfig({ file, env }).config.telegram.oversize).toBe("refuse");

    writeFileSync(file, "telegram:\n  oversize: cut\n");
    const bad = problemsOf(() => loadConfig({ file, env: {} }));
    expect(bad).toHaveLength(1);
    expect(bad[0]).toMatch(/^telegram\.oversize: .*split.*shrink.*refuse/);
    writeFileSync(file, "telegram:\n  overSize: shrink\n");
    expect(problemsOf(() => loadConfig({ file, env: {} }))).toEqual([
      "telegram.overSize: unknown key (did you mean oversize?)",
    ]);
  });

  it("says which file is missing or broken", () => {
    const d = dir();
    expect(problemsOf(() => loadConfig({ file: join(d, "nope.yml"), env: {} }))[0]).toMatch(
      /nope\.yml: cannot be read/,
    );
    writeFileSync(join(d, "bad.yml"), "source: [\n");
    expect(problemsOf(() => loadConfig({ file: join(d, "bad.yml"), env: {} }))[0]).toMatch(
      /invalid YAML/,
    );
  });
});
