import type { ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, rm, utimes, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ageCliDecrypt } from "../harness/age.js";
import { REPO, runCli, spawnCli } from "../harness/cli.js";
import { ftpSource, sftpDestination } from "../harness/config.js";
import { type Call, type FakeTelegram, startFakeTelegram } from "../harness/fakeTelegram.js";
import { sha256, tempDir, walk, writeConfig } from "../harness/files.js";
import { type FtpServer, pseudoRandomBytes, startFtpServer } from "../harness/ftp.js";
import { type Broker, mosquittoPub, startMosquitto } from "../harness/mosquitto.js";
import {
  binarySensorState,
  type DiscoveryConfig,
  deviceIds,
  discoveryConfigs,
  metricValue,
  parseMetrics,
  retainedMessages,
} from "../harness/observe.js";
import { freePort } from "../harness/ports.js";
import { stopProcess, track } from "../harness/processes.js";
import { type SftpServer, startSftpServer } from "../harness/sshd.js";

/**
 * Several camera devices in one `serve` (CONTRACT.md, "Several camera devices"): two motionEyeOS
 * boxes over FTP (two real vsftpd, each with its own Camera1) and a local folder, backed up to a
 * real sshd, triggered through a real mosquitto. One device goes offline: the others' clips still
 * arrive, and status, /metrics, Home Assistant and Telegram say which device is failing.
 */

const BASE = "mev-sources";
const PREFIX = "homeassistant";
const OWNER = 4242;
const WAIT = 20_000;
const START_WAIT = 60_000;
const FAILURES = "motioneye_vault_sync_failures_total";
/** Whether this build has `/metrics` at all (serve's HTTP listener comes from another branch). */
const METRICS_BUILT = sourceMentions(join(REPO, "src"), FAILURES);

function sourceMentions(dir: string, text: string): boolean {
  return readdirSync(dir, { withFileTypes: true }).some((e) =>
    e.isDirectory()
      ? sourceMentions(join(dir, e.name), text)
      : e.name.endsWith(".ts") && readFileSync(join(dir, e.name), "utf8").includes(text),
  );
}

type Json = Record<string, unknown>;

/** A running `serve` and everything it printed. */
class Serve {
  output = "";
  readonly child: ChildProcess;
  constructor(config: string) {
    this.child = track(spawnCli(["serve", "--config", config]), { name: "serve" });
    const keep = (d: Buffer) => {
      this.output += d.toString();
    };
    this.child.stdout?.on("data", keep);
    this.child.stderr?.on("data", keep);
  }
  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
}

let serve: Serve | undefined;

/** Polls `check` (which returns a value when satisfied) until it does, or fails naming `what`. */
async function until<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  budgetMs = WAIT,
): Promise<T> {
  const deadline = Date.now() + budgetMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err; // a probe that could not run on a busy machine: ask again
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(
    `timed out waiting for ${what}${lastError ? ` (last error: ${lastError})` : ""}\nserve output:\n${serve?.output.slice(-5000)}`,
  );
}

/** Source `name` in `status --json`: a list of entries with a `name`, or an object by name. */
function sourceStatus(status: Json, name: string): Json | undefined {
  const list = status.sources;
  if (Array.isArray(list)) return (list as Json[]).find((s) => s?.name === name);
  if (list && typeof list === "object") return (list as Record<string, Json>)[name];
  return undefined;
}

/** Whether a source's status entry says it is failing now. */
function isFailing(entry: Json): boolean {
  if (typeof entry.failing === "boolean") return entry.failing;
  if (typeof entry.reachable === "boolean") return !entry.reachable;
  if (typeof entry.ok === "boolean") return !entry.ok;
  throw new Error(`no failure state in ${JSON.stringify(entry)}`);
}

const textOf = (c: Call) => String(c.params.text ?? c.params.caption ?? "");

describe("several camera devices in one serve", { timeout: 120_000 }, () => {
  let garageFtp: FtpServer;
  let shedFtp: FtpServer;
  let sftp: SftpServer;
  let broker: Broker;
  let tg: FakeTelegram;
  let work: string;
  let porchDir: string;
  let identityFile: string;
  let config: string;
  let httpPort: number;
  const vault = () => join(sftp.root, "vault");
  /** Every clip written so far: vault-relative id -> plaintext. */
  const clips = new Map<string, Buffer>();

  /** Writes a settled clip on a device; its bytes differ from any other device's same path. */
  async function addClip(source: "garage" | "shed" | "porch", rel: string, size: number) {
    const bytes = pseudoRandomBytes(size, `${source}/${rel}`);
    if (source === "porch") {
      const file = join(porchDir, rel);
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, bytes);
      const settled = new Date(Date.now() - 3600_000);
      await utimes(file, settled, settled);
    } else {
      await (source === "garage" ? garageFtp : shedFtp).writeClip(rel, bytes);
    }
    clips.set(`${source}/${rel}`, bytes);
  }

  /** The clip is on the vault under `<name>/<camera>/<date>/<file>.age` and age -d gives it back. */
  async function expectArrives(id: string): Promise<void> {
    const remote = join(vault(), `${id}.age`);
    await until(`${id}.age on the vault`, () => existsSync(remote));
    const plain = await ageCliDecrypt(remote, identityFile);
    expect(sha256(plain), id).toBe(sha256(clips.get(id) ?? Buffer.alloc(0)));
  }

  async function status(): Promise<Json> {
    const run = await runCli(["status", "--json", "--config", config]);
    if (run.code !== 0) throw new Error(`status --json: exit ${run.code}: ${run.stderr}`);
    return JSON.parse(run.stdout) as Json;
  }

  async function metrics() {
    const res = await fetch(`http://127.0.0.1:${httpPort}/metrics`);
    expect(res.status).toBe(200);
    return parseMetrics(await res.text());
  }

  /** Home Assistant's view of each source's reachability sensor: "on", "off" or "unknown". */
  async function reachability(): Promise<Record<string, string>> {
    const msgs = await retainedMessages(broker.url, [`${PREFIX}/#`, `${BASE}/#`]);
    const out: Record<string, string> = {};
    for (const name of ["garage", "shed", "porch"]) {
      const sensor = reachabilitySensor(discoveryConfigs(msgs, PREFIX), name);
      const topic = String(sensor.config.state_topic);
      out[name] = binarySensorState(sensor, msgs.find((m) => m.topic === topic)?.payload);
    }
    return out;
  }

  /** The connectivity binary sensor of the device that stands for source `name`. */
  function reachabilitySensor(configs: DiscoveryConfig[], name: string): DiscoveryConfig {
    const found = configs.filter(
      (c) =>
        c.component === "binary_sensor" &&
        c.config.device_class === "connectivity" &&
        (c.config.device?.name === name ||
          new RegExp(`\\b${name}\\b`).test(c.config.device?.name ?? "") ||
          deviceIds(c).some((id) => new RegExp(`[_/:-]${name}$`).test(id))),
    );
    if (found.length !== 1) {
      throw new Error(
        `expected one connectivity sensor for source ${name}, found ${found.length}:\n${configs.map((c) => `${c.topic} ${JSON.stringify(c.config.device)}`).join("\n")}`,
      );
    }
    return found[0] as DiscoveryConfig;
  }

  beforeAll(async () => {
    [garageFtp, shedFtp, sftp, broker, tg, work] = await Promise.all([
      startFtpServer(),
      startFtpServer(),
      startSftpServer(),
      startMosquitto(),
      startFakeTelegram(),
      tempDir("mev-sources-"),
    ]);
    porchDir = join(work, "porch");
    identityFile = join(work, "identity.txt");
    await addClip("garage", "Camera1/2024-05-01/12-00-00.mp4", 120_000);
    await addClip("garage", "Camera1/2024-05-01/12-30-00.mp4", 80_000);
    await addClip("shed", "Camera1/2024-05-01/12-00-00.mp4", 100_000);
    await addClip("shed", "Camera2/2024-05-01/07-00-00.mp4", 40_000);
    await addClip("porch", "Camera1/2024-05-01/12-00-00.mp4", 60_000);

    const settings = {
      sources: [
        { name: "garage", ...ftpSource(garageFtp, { stableSeconds: 1 }) },
        { name: "shed", ...ftpSource(shedFtp, { stableSeconds: 1, timeoutSeconds: 5 }) },
        { name: "porch", type: "local", path: porchDir, stableSeconds: 1 },
      ],
      destination: sftpDestination(sftp, vault()),
      encryption: { identityFile },
      state: { dir: join(work, "state") },
      mqtt: {
        url: broker.url,
        baseTopic: BASE,
        homeassistant: { enabled: true, discoveryPrefix: PREFIX, rediscoverDelaySeconds: 0.5 },
      },
      schedule: { sync: "" },
      sync: { retries: 0 },
      telegram: {
        token: tg.token,
        apiRoot: tg.apiRoot,
        allowedChatIds: [OWNER],
        notify: { failures: true, clips: false },
      },
      log: { level: "info" },
    };
    httpPort = await freePort();
    config = await writeConfig(work, { ...settings, http: { host: "127.0.0.1", port: httpPort } });
    serve = new Serve(config);
  });

  afterAll(async () => {
    if (serve?.alive) await stopProcess(serve.child, 12_000);
    await Promise.allSettled([
      garageFtp?.close(),
      shedFtp?.close(),
      sftp?.close(),
      broker?.close(),
      tg?.stop(),
      rm(work, { recursive: true, force: true }),
    ]);
  });

  it("every clip of every device lands at <name>/<camera>/<date>/<file>.age, decryptable", async () => {
    await until(
      "the start-up run",
      () => [...clips.keys()].every((id) => existsSync(join(vault(), `${id}.age`))),
      START_WAIT,
    );
    for (const id of clips.keys()) await expectArrives(id);
    // Three Camera1/2024-05-01/12-00-00.mp4, three files; nothing else (no temp file) on the vault.
    expect(await walk(vault())).toEqual([...clips.keys()].map((id) => `${id}.age`).sort());
  });

  it("with one device offline, the others' triggered clips still arrive", async () => {
    await shedFtp.stop();
    await addClip("shed", "Camera1/2024-05-02/10-00-10.mp4", 30_000);
    await addClip("garage", "Camera1/2024-05-02/10-00-00.mp4", 50_000);
    await addClip("porch", "Camera1/2024-05-02/10-00-05.mp4", 45_000);

    // A trigger naming its source (motioneye.sh with VAULT_SOURCE=garage).
    await mosquittoPub(
      broker.url,
      "motioneye/Camera1/event",
      JSON.stringify({
        source: "garage",
        camera: "Camera1",
        file: "/data/output/Camera1/2024-05-02/10-00-00.mp4",
      }),
      { qos: 1 },
    );
    await expectArrives("garage/Camera1/2024-05-02/10-00-00.mp4");

    // One naming none: every source is synced, the offline one fails, the others go on.
    await mosquittoPub(
      broker.url,
      "motioneye/Camera1/event",
      JSON.stringify({
        camera: "Camera1",
        file: "/var/lib/motioneye/Camera1/2024-05-02/10-00-05.mp4",
      }),
      { qos: 1 },
    );
    await expectArrives("porch/Camera1/2024-05-02/10-00-05.mp4");
    expect(existsSync(join(vault(), "shed/Camera1/2024-05-02/10-00-10.mp4.age"))).toBe(false);
  });

  it("status --json shows that device failing and the others not", async () => {
    let last: Json | undefined;
    const st = await until("shed failing in status --json", async () => {
      last = await status();
      const shed = sourceStatus(last, "shed");
      return shed && isFailing(shed) ? last : undefined;
    }).catch((err: Error) => {
      throw new Error(
        `${err.message.split("\n")[0]}; last status --json:\n${JSON.stringify(last, null, 2)}\n${serve?.output.slice(-6000)}`,
      );
    });
    for (const name of ["garage", "porch"]) {
      const entry = sourceStatus(st, name);
      expect(entry, `${name} in ${JSON.stringify(st)}`).toBeDefined();
      expect(isFailing(entry as Json), name).toBe(false);
    }
  });

  it("/metrics counts the failures of that device only", async (ctx) => {
    if (!METRICS_BUILT) ctx.skip(); // serve's HTTP listener is not merged into this build yet
    const samples = await until("shed's failures in /metrics", async () => {
      const s = await metrics();
      return (metricValue(s, FAILURES, { source: "shed" }) ?? 0) >= 1 ? s : undefined;
    });
    for (const name of ["garage", "porch"]) {
      expect(metricValue(samples, FAILURES, { source: name }) ?? 0, name).toBe(0);
      expect(
        metricValue(samples, "motioneye_vault_clips_backed_up_total", { source: name }),
        name,
      ).toBeGreaterThanOrEqual(2);
    }
  });

  it("Home Assistant shows a device per source, that one unreachable", async () => {
    await until("shed unreachable in Home Assistant", async () => {
      const r = await reachability();
      return r.shed === "off" && r.garage === "on" && r.porch === "on" ? r : undefined;
    });
    const configs = discoveryConfigs(await retainedMessages(broker.url, `${PREFIX}/#`), PREFIX);
    // Unique ids stay unique though three devices have a Camera1.
    const ids = configs.map((c) => String(c.config.unique_id));
    expect(new Set(ids).size).toBe(ids.length);
    // A device per source, each with its own cameras under it (named with the source's name).
    for (const [name, cameras] of [
      ["garage", ["Camera1"]],
      ["shed", ["Camera1", "Camera2"]],
      ["porch", ["Camera1"]],
    ] as const) {
      const sourceDevice = deviceIds(reachabilitySensor(configs, name));
      const under = configs.filter((c) => sourceDevice.includes(c.config.device?.via_device ?? ""));
      const names = new Set(under.map((c) => c.config.device?.name ?? ""));
      expect(names.size, `${name}: ${[...names]}`).toBe(cameras.length);
      for (const camera of cameras) {
        expect(
          [...names].some((n) => n.includes(name) && n.includes(camera)),
          `${name}'s ${camera} in ${[...names]}`,
        ).toBe(true);
      }
    }
  });

  it("Telegram gets a failure notice naming that device", async () => {
    const notice = await tg.waitForCall(
      "sendMessage",
      (c) => c.params.chat_id === OWNER && /^Backup failed/.test(textOf(c)),
      WAIT,
    );
    expect(textOf(notice)).toMatch(/\bshed\b/);
    expect(textOf(notice)).not.toMatch(/\b(garage|porch)\b/);
  });

  it("the device comes back and recovers", async () => {
    await shedFtp.start();
    await mosquittoPub(broker.url, "motioneye/Camera1/event", JSON.stringify({ source: "shed" }), {
      qos: 1,
    });
    await expectArrives("shed/Camera1/2024-05-02/10-00-10.mp4");
    await until("shed no longer failing in status --json", async () => {
      const shed = sourceStatus(await status(), "shed");
      return shed && !isFailing(shed);
    });
    await until(
      "shed reachable in Home Assistant",
      async () => (await reachability()).shed === "on",
    );
    expect(await walk(vault())).toEqual([...clips.keys()].map((id) => `${id}.age`).sort());
  });
});
