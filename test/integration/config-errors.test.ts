import { existsSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliResult, runCli } from "../harness/cli.js";
import { tempDir } from "../harness/files.js";

/**
 * A config as a user gets it wrong, through the real CLI: every mistake stops the program before
 * it does anything (no state folder made), with exit code 2 and one `config error: <key>: ...`
 * line per problem that names the key, and the nearest known key when one is close.
 */

describe("strict config: mistakes are named, with the nearest known key", () => {
  let work: string;
  let cases = 0;

  beforeAll(async () => {
    work = await tempDir("mev-config-");
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  /** A config of two local devices that is valid as it is; `over` replaces top-level sections. */
  function validConfig(dir: string, over: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      sources: [
        { name: "garage", type: "local", path: join(dir, "garage") },
        { name: "porch", type: "local", path: join(dir, "porch") },
      ],
      destination: { type: "local", path: join(dir, "vault") },
      state: { dir: join(dir, "state") },
      ...over,
    };
  }

  /** Writes `yaml` (text, so keys are exactly as typed) in a fresh folder and runs `status`. */
  async function statusWith(
    build: (dir: string) => Record<string, unknown> | string,
    env: Record<string, string> = {},
  ): Promise<{ result: CliResult; lines: string[]; errors: string[]; dir: string }> {
    const dir = join(work, `case-${++cases}`);
    await mkdir(dir);
    const config = build(dir);
    const text = typeof config === "string" ? config : JSON.stringify(config, null, 2); // JSON is YAML
    const file = join(dir, "config.yml");
    await writeFile(file, text, { mode: 0o600 });
    const result = await runCli(["status", "--config", file], { env });
    const lines = result.stderr.split("\n").filter((l) => l.trim() !== "");
    return { result, lines, errors: lines.filter((l) => l.startsWith("config error: ")), dir };
  }

  /** Exit 2, nothing done (no state folder), and exactly `count` problems reported. */
  function expectRefused(
    run: { result: CliResult; errors: string[]; dir: string },
    count = 1,
  ): void {
    expect(run.result.code, run.result.stderr).toBe(2);
    expect(run.result.stdout).toBe("");
    expect(existsSync(join(run.dir, "state")), "nothing may happen before the check").toBe(false);
    expect(run.errors, run.result.stderr).toHaveLength(count);
  }

  it("accepts the valid sources: config it starts from", async () => {
    const run = await statusWith((dir) => validConfig(dir));
    expect(run.result.code, run.result.stderr).toBe(0);
    expect(run.errors).toEqual([]);
  });

  it("an unknown top-level key close to a known one: `sorces`", async () => {
    const run = await statusWith((dir) => {
      const { sources, ...rest } = validConfig(dir);
      return { ...rest, sorces: sources };
    });
    expectRefused(run);
    expect(run.errors).toEqual(["config error: sorces: unknown key (did you mean sources?)"]);
  });

  it("an unknown top-level key like nothing known gets no suggestion", async () => {
    const run = await statusWith((dir) => validConfig(dir, { colour: "blue" }));
    expectRefused(run);
    expect(run.errors[0]).toMatch(/^config error: colour: unknown key/);
    expect(run.errors[0]).not.toMatch(/did you mean/);
  });

  it("an unknown key in a section: `source.stableSecond`", async () => {
    const run = await statusWith(
      (dir) => `source:
  type: local
  path: ${join(dir, "camera")}
  stableSecond: 5
destination:
  type: local
  path: ${join(dir, "vault")}
state:
  dir: ${join(dir, "state")}
`,
    );
    expectRefused(run);
    expect(run.errors).toEqual([
      "config error: source.stableSecond: unknown key (did you mean stableSeconds?)",
    ]);
  });

  it("an unknown key two sections deep: `mqtt.homeassistant.enable`", async () => {
    const run = await statusWith((dir) =>
      validConfig(dir, { mqtt: { homeassistant: { enable: false } } }),
    );
    expectRefused(run);
    expect(run.errors).toEqual([
      "config error: mqtt.homeassistant.enable: unknown key (did you mean enabled?)",
    ]);
  });

  it("an unknown key in a sources entry, named by its path", async () => {
    const run = await statusWith((dir) => {
      const config = validConfig(dir);
      (config.sources as Record<string, unknown>[])[1] = {
        name: "porch",
        type: "local",
        path: join(dir, "porch"),
        stableSecond: 3,
      };
      return config;
    });
    expectRefused(run);
    expect(run.errors[0]).toMatch(
      /^config error: sources(\.1|\[1\]|\.porch)\.stableSecond: unknown key \(did you mean stableSeconds\?\)$/,
    );
  });

  it("a key of another backend is unknown to this one (`host` on a local source)", async () => {
    const run = await statusWith((dir) => {
      const config = validConfig(dir);
      (config.sources as Record<string, unknown>[])[0] = {
        name: "garage",
        type: "local",
        host: "192.168.1.21",
        path: join(dir, "garage"),
      };
      return config;
    });
    expectRefused(run);
    expect(run.errors[0]).toMatch(/^config error: sources(\.0|\[0\]|\.garage)\.host: unknown key/);
  });

  it("two sources with one name", async () => {
    const run = await statusWith((dir) =>
      validConfig(dir, {
        sources: [
          { name: "garage", type: "local", path: join(dir, "a") },
          { name: "garage", type: "local", path: join(dir, "b") },
        ],
      }),
    );
    expectRefused(run);
    expect(run.errors[0]).toMatch(/^config error: sources(\.1|\[1\])?(\.name)?: /);
    expect(run.errors[0]).toMatch(/garage/);
    // Clear about what is wrong: says so, or names the entry that has the name already.
    expect(run.errors[0]).toMatch(
      /duplicate|unique|twice|already|more than once|same name|sources(\.0|\[0\])/i,
    );
  });

  it('two sources with prefix: ""', async () => {
    const run = await statusWith((dir) =>
      validConfig(dir, {
        sources: [
          { name: "garage", type: "local", path: join(dir, "a"), prefix: "" },
          { name: "porch", type: "local", path: join(dir, "b"), prefix: "" },
        ],
      }),
    );
    expectRefused(run);
    expect(run.errors[0]).toMatch(/^config error: sources(\.1|\[1\]|\.porch)?(\.prefix)?: /);
    expect(run.errors[0]).toMatch(/prefix/);
    expect(run.errors[0]).toMatch(/at most one|only one|more than one|one source/i);
  });

  it("a source name that is not [a-z0-9][a-z0-9_-]*", async () => {
    const run = await statusWith((dir) =>
      validConfig(dir, {
        sources: [
          { name: "Garage!", type: "local", path: join(dir, "a") },
          { name: "porch", type: "local", path: join(dir, "b") },
        ],
      }),
    );
    expectRefused(run);
    expect(run.errors[0]).toMatch(/^config error: sources(\.0|\[0\])\.name: /);
  });

  it("a sources entry without a name", async () => {
    const run = await statusWith((dir) =>
      validConfig(dir, {
        sources: [
          { name: "garage", type: "local", path: join(dir, "a") },
          { type: "local", path: join(dir, "b") },
        ],
      }),
    );
    expectRefused(run);
    expect(run.errors[0]).toMatch(/^config error: sources(\.1|\[1\])\.name: /);
  });

  it("source: and sources: together", async () => {
    const run = await statusWith((dir) =>
      validConfig(dir, { source: { type: "local", path: join(dir, "camera") } }),
    );
    expectRefused(run);
    // Whichever of the two it names, the message says the other one is there too.
    const [line = ""] = run.errors;
    const match = /^config error: (sources?): (.*)$/.exec(line);
    expect(match, line).not.toBeNull();
    const other = match?.[1] === "source" ? /\bsources\b/ : /\bsource\b/;
    expect(match?.[2]).toMatch(other);
  });

  it("an unknown destination type names the known ones (the registry drives the schema)", async () => {
    const run = await statusWith((dir) =>
      validConfig(dir, { destination: { type: "webdav", path: join(dir, "vault") } }),
    );
    expectRefused(run);
    expect(run.errors[0]).toMatch(/^config error: destination\.type: /);
    expect(run.errors[0]).toMatch(/\bwebdav\b|\bsftp\b/);
    for (const known of ["sftp", "local"])
      expect(run.errors[0]).toMatch(new RegExp(`\\b${known}\\b`));
  });

  it("a camera backend is not a vault backend: destination type ftp is refused", async () => {
    const run = await statusWith((dir) =>
      validConfig(dir, {
        destination: { type: "ftp", host: "127.0.0.1", path: "/vault" },
      }),
    );
    expect(run.result.code, run.result.stderr).toBe(2);
    expect(existsSync(join(run.dir, "state"))).toBe(false);
    expect(run.errors.some((l) => /^config error: destination\.type: .*\bsftp\b/.test(l))).toBe(
      true,
    );
  });

  it("an unknown source type names the known ones, in `source:` and in a sources entry", async () => {
    const single = await statusWith((dir) => {
      const { sources: _, ...rest } = validConfig(dir);
      return { ...rest, source: { type: "smb", path: join(dir, "camera") } };
    });
    expectRefused(single);
    expect(single.errors[0]).toMatch(/^config error: source\.type: /);
    for (const known of ["ftp", "local"])
      expect(single.errors[0]).toMatch(new RegExp(`\\b${known}\\b`));

    const listed = await statusWith((dir) => {
      const config = validConfig(dir);
      (config.sources as Record<string, unknown>[])[1] = {
        name: "porch",
        type: "smb",
        path: join(dir, "porch"),
      };
      return config;
    });
    expectRefused(listed);
    expect(listed.errors[0]).toMatch(/^config error: sources(\.1|\[1\]|\.porch)\.type: /);
    for (const known of ["ftp", "local"])
      expect(listed.errors[0]).toMatch(new RegExp(`\\b${known}\\b`));
  });

  it("every problem at once: one line each", async () => {
    const run = await statusWith((dir) => ({
      ...validConfig(dir),
      colour: "blue",
      destination: {
        type: "sftp",
        host: "127.0.0.1",
        username: "vault",
        password: "secret",
        path: "/vault",
        hostKey: "nope",
        pth: "x",
      },
    }));
    expectRefused(run, 3);
    expect(run.errors.some((l) => l.startsWith("config error: colour: unknown key"))).toBe(true);
    expect(run.errors.some((l) => l.startsWith("config error: destination.pth: unknown key"))).toBe(
      true,
    );
    expect(run.errors.some((l) => l.startsWith("config error: destination.hostKey: "))).toBe(true);
  });

  describe("a valid sources: config with secrets in files and environment overrides", () => {
    const ftpEntry = (name: string, passwordFile: string) => ({
      name,
      type: "ftp",
      host: "192.168.1.21",
      user: "admin",
      passwordFile,
      path: "/sdcard",
    });

    it("is accepted: `status` exits 0, using the state folder the environment names", async () => {
      let envState = "";
      const run = await statusWith((dir) => {
        envState = join(dir, "env-state");
        return `sources:
  - ${JSON.stringify(ftpEntry("garage", "./secrets/garage"))}
  - ${JSON.stringify({ ...ftpEntry("shed", join(dir, "secrets", "shed")), prefix: "" })}
  - name: porch
    type: local
    path: ./porch
destination:
  type: local
  path: ./vault
state:
  dir: ./state
`;
      });
      // The secrets did not exist yet: a missing passwordFile is named by its entry's path.
      expect(run.result.code, run.result.stderr).toBe(2);
      expect(
        run.errors.some((l) =>
          /^config error: sources(\.0|\[0\]|\.garage)\.passwordFile: /.test(l),
        ),
      ).toBe(true);
      expect(
        run.errors.some((l) => /^config error: sources(\.1|\[1\]|\.shed)\.passwordFile: /.test(l)),
      ).toBe(true);
      expect(run.result.stderr).toContain(join(run.dir, "secrets", "garage"));

      // With the two secret files in place (and other sections from the environment) it runs.
      await mkdir(join(run.dir, "secrets"));
      await writeFile(join(run.dir, "secrets", "garage"), "garage-password\n", { mode: 0o600 });
      await writeFile(join(run.dir, "secrets", "shed"), "shed-password\n", { mode: 0o600 });
      const file = join(run.dir, "config.yml");
      const ok = await runCli(["status", "--config", file], {
        env: {
          MOTIONEYE_VAULT_STATE_DIR: envState,
          MOTIONEYE_VAULT_SYNC_RETRIES: "1",
          MOTIONEYE_VAULT_TELEGRAM_ALLOWED_CHAT_IDS: "111,222",
        },
      });
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stderr).not.toMatch(/config error/);
      expect(existsSync(envState), "state.dir from the environment").toBe(true);
      expect(existsSync(join(run.dir, "state"))).toBe(false);
      // A secret never shows.
      expect(ok.stdout + ok.stderr).not.toMatch(/garage-password|shed-password/);
    });

    it("a bad environment override is a config error naming the variable", async () => {
      const run = await statusWith((dir) => validConfig(dir), {
        MOTIONEYE_VAULT_SYNC_RETRIES: "three",
      });
      expectRefused(run);
      expect(run.errors[0]).toMatch(/^config error: MOTIONEYE_VAULT_SYNC_RETRIES: /);
    });
  });
});
