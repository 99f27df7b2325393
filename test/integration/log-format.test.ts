import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, rm, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI_BIN, REPO, spawnCli } from "../harness/cli.js";
import { tempDir, writeConfig } from "../harness/files.js";
import { stopProcess, track } from "../harness/processes.js";

/**
 * What a person sees when `serve` logs: readable lines on a terminal (a real pseudo-terminal from
 * util-linux `script`), JSON lines when stderr is a pipe (systemd, Docker, a log shipper), and
 * `log.format` choosing either way.
 */

const START_WAIT = 45_000;

let work: string;

/** A config for a serve that backs up one clip and needs no network (no MQTT, no HTTP). */
async function serveConfig(dir: string, log: Record<string, unknown> = {}): Promise<string> {
  await mkdir(dir, { recursive: true });
  const clip = join(dir, "media", "Camera1", "2024-05-01", "12-00-00.mp4");
  await mkdir(join(clip, ".."), { recursive: true });
  await writeFile(clip, Buffer.alloc(4096, 7));
  const old = new Date(Date.now() - 3600_000);
  await utimes(clip, old, old);
  return writeConfig(dir, {
    source: { type: "local", path: join(dir, "media"), stableSeconds: 0 },
    destination: { type: "local", path: join(dir, "vault") },
    state: { dir: join(dir, "state") },
    mqtt: { embeddedBroker: { enabled: false } },
    schedule: { sync: "" },
    http: { port: 0 },
    log,
  });
}

/** Collects a child's output until `pattern` shows up (bounded), then returns all of it. */
function outputOf(child: ChildProcess) {
  let text = "";
  const add = (d: Buffer) => {
    text += d.toString("utf8");
  };
  child.stdout?.on("data", add);
  child.stderr?.on("data", add);
  return {
    text: () => text,
    async waitFor(pattern: RegExp, budgetMs = START_WAIT): Promise<void> {
      const deadline = Date.now() + budgetMs;
      while (!pattern.test(text)) {
        if (Date.now() > deadline)
          throw new Error(`no ${pattern} in output:\n${text.slice(-3000)}`);
        if (child.exitCode !== null) throw new Error(`exited early:\n${text.slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

/** Resolves once the child has exited and its output is all read ("close"). */
function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.stdout?.readableEnded !== false && child.exitCode !== null) {
      resolve(child.exitCode);
      return;
    }
    child.once("close", (code) => resolve(code));
  });
}

/** ANSI escape sequences (colours), built from the ESC character. */
const ESC = String.fromCharCode(27);
const ANSI = new RegExp(`${ESC}\\[[0-9;]*m`, "g");
const HAS_ANSI = new RegExp(`${ESC}\\[[0-9;]*m`);

const shellQuote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

const logLines = (text: string) =>
  text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "");

beforeAll(async () => {
  work = await tempDir();
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe("serve's log", { timeout: 90_000 }, () => {
  it("on a terminal: readable lines, no JSON; Ctrl-C stops it cleanly", async () => {
    const config = await serveConfig(join(work, "tty"));
    const cli = [process.execPath, CLI_BIN, "serve", "--config", config];
    // `script` gives serve a pseudo-terminal as stdin, stdout and stderr; what it prints comes
    // back on script's stdout, and what we write to script's stdin is typed at that terminal.
    // `exec`, and a fixed SHELL: script runs `$SHELL -c`, and a dash that stays as serve's parent
    // would take the Ctrl-C too and die of it (exit 130) however cleanly serve stops.
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      CI: undefined,
      TERM: "xterm",
      SHELL: "/bin/sh",
    };
    for (const key of Object.keys(env)) if (key.startsWith("MOTIONEYE_VAULT_")) delete env[key];
    const child = track(
      spawn("script", ["-qfec", `exec ${cli.map(shellQuote).join(" ")}`, "/dev/null"], {
        cwd: REPO,
        env,
        stdio: ["pipe", "pipe", "pipe"],
      }),
      { name: "script serve" },
    );
    try {
      const out = outputOf(child);
      await out.waitFor(/sync finished/);
      child.stdin?.write("\x03"); // Ctrl-C at the terminal: SIGINT to serve
      const code = await exited(child);
      expect(code, `serve's output:\n${out.text().slice(-3000)}`).toBe(0);

      const text = out.text();
      expect(text).not.toMatch(/\{"level":/);
      const lines = logLines(text);
      // "[2024-05-01 12:00:00.000] INFO: sync finished {...}", with colours on a terminal
      const plain = lines.map((l) => l.replace(ANSI, ""));
      const finished = plain.find((l) => l.includes("sync finished"));
      expect(finished).toMatch(
        /^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}\] INFO: sync finished \{.*"uploaded":1/,
      );
      expect(
        plain.some((l) => /INFO: clip backed up .*Camera1\/2024-05-01\/12-00-00\.mp4/.test(l)),
      ).toBe(true);
      expect(plain.some((l) => /INFO: signal received .*SIGINT/.test(l))).toBe(true);
      expect(text).toMatch(HAS_ANSI); // coloured: it is a terminal
    } finally {
      await stopProcess(child);
    }
  });

  it("piped: one JSON object per line", async () => {
    const config = await serveConfig(join(work, "pipe"));
    const child = track(spawnCli(["serve", "--config", config]), { name: "serve" });
    const out = outputOf(child);
    try {
      await out.waitFor(/"msg":"sync finished"/);
    } finally {
      await stopProcess(child);
    }
    await exited(child); // its last output arrives before "close"
    const entries = logLines(out.text())
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    // Only the new-key banner (written for people, outside the log) is not JSON.
    const other = logLines(out.text()).filter(
      (l) =>
        !l.startsWith("{") && !/^\*+$|NEW ENCRYPTION KEY|public key|restored|Every backup/.test(l),
    );
    expect(other).toEqual([]);
    expect(entries.find((e) => e.msg === "sync finished")).toMatchObject({
      level: 30,
      uploaded: 1,
    });
    expect(entries.find((e) => e.msg === "signal received")).toMatchObject({ signal: "SIGTERM" });
  });

  it("log.format: pretty gives readable lines even when piped", async () => {
    const config = await serveConfig(join(work, "pretty"), { format: "pretty" });
    const child = track(spawnCli(["serve", "--config", config]), { name: "serve" });
    const out = outputOf(child);
    try {
      await out.waitFor(/INFO: sync finished/);
    } finally {
      await stopProcess(child);
    }
    await exited(child);
    expect(out.text()).not.toMatch(/\{"level":/);
    expect(out.text()).not.toMatch(HAS_ANSI); // no colour codes into a pipe
    expect(logLines(out.text()).some((l) => /^\[[\d\- :.]+\] INFO: sync finished \{/.test(l))).toBe(
      true,
    );
  });

  it("a bad log.format is a config error naming the key", async () => {
    const config = await serveConfig(join(work, "bad"), { format: "xml" });
    const child = spawnCli(["serve", "--config", config]);
    const out = outputOf(child);
    expect(await exited(child)).toBe(2);
    expect(out.text()).toMatch(/config error: log\.format: /);
  });
});
