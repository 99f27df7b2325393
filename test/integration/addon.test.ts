import { type ChildProcess, spawn } from "node:child_process";
import { copyFile, mkdir, readFile, rm, stat, symlink, utimes, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { ageCliDecrypt, ageKeygenRecipient } from "../harness/age.js";
import { REPO, runCli } from "../harness/cli.js";
import { tempDir, walk } from "../harness/files.js";
import { clipBytes } from "../harness/ftp.js";
import {
  type Broker,
  type MqttMessage,
  mosquittoPub,
  mosquittoSub,
  startMosquitto,
} from "../harness/mosquitto.js";
import { freePort } from "../harness/ports.js";
import { runCommand, stopProcess, track } from "../harness/processes.js";

/**
 * The Home Assistant add-on's real run script, as the Supervisor starts it, with everything the
 * Supervisor provides stood in for on loopback: `/data/options.json` (what the user set in the
 * add-on's UI), `/config` (the add-on's folder), `/share/motioneye`-like media, the Supervisor's
 * API (`GET /services/mqtt` and `/addons/self/info` with the add-on's token, over real HTTP) and
 * Home Assistant's broker (a real mosquitto with the account the Supervisor hands out). The image
 * layout is copied too: the app compiled into `<home>/dist` with its node_modules beside it.
 */

const RUN_SH = join(REPO, "integrations/homeassistant-addon/motioneye_vault/run.sh");
const TOKEN = "supervisor-token-for-this-add-on";
const MQTT_USER = "addons";
const MQTT_PASSWORD = "mqtt-password-from-the-supervisor";
const SLUG = "local_motioneye_vault";
const CLIP = "Camera1/2024-05-01/12-00-00.mp4";
const START_WAIT = 60_000;

let work: string;
let home: string;
let broker: Broker;
let supervisor: Server;
let supervisorUrl: string;
const supervisorCalls: Array<{ path: string; auth: string | undefined }> = [];
let mqttServiceUp = true;

/** The Supervisor's API as an add-on sees it: `{"result":"ok","data":...}` with its token. */
function answer(req: IncomingMessage): { status: number; body: unknown } {
  supervisorCalls.push({ path: req.url ?? "", auth: req.headers.authorization });
  if (req.headers.authorization !== `Bearer ${TOKEN}`) {
    return { status: 401, body: { result: "error", message: "Unauthorized" } };
  }
  if (req.method === "GET" && req.url === "/services/mqtt") {
    if (!mqttServiceUp) return { status: 400, body: { result: "error", message: "No service" } };
    return {
      status: 200,
      body: {
        result: "ok",
        data: {
          addon: "core_mosquitto",
          host: "127.0.0.1",
          port: broker.port,
          ssl: false,
          protocol: "3.1.1",
          username: MQTT_USER,
          password: MQTT_PASSWORD,
        },
      },
    };
  }
  if (req.method === "GET" && req.url === "/addons/self/info") {
    return { status: 200, body: { result: "ok", data: { slug: SLUG, name: "motionEye Vault" } } };
  }
  return { status: 404, body: { result: "error", message: "not found" } };
}

interface AddonRun {
  child: ChildProcess;
  output(): string;
  waitFor(pattern: RegExp, budgetMs?: number): Promise<void>;
  exited: Promise<number | null>;
}

/** Starts run.sh as the Supervisor would, in the folders of this test. */
async function startAddon(dir: string): Promise<AddonRun> {
  const env: NodeJS.ProcessEnv = {
    PATH: `${dirname(process.execPath)}:${process.env.PATH ?? "/usr/bin:/bin"}`,
    HOME: dir,
    TZ: "UTC",
    SUPERVISOR_TOKEN: TOKEN,
    SUPERVISOR_URL: supervisorUrl,
    ADDON_DATA_DIR: join(dir, "data"),
    ADDON_USER_DIR: join(dir, "addon_config"),
    MOTIONEYE_VAULT_HOME: home,
    // In the add-on the listener is 0.0.0.0:8099; here, loopback on a free port.
    MOTIONEYE_VAULT_HTTP_HOST: "127.0.0.1",
    MOTIONEYE_VAULT_HTTP_PORT: String(await freePort()),
  };
  // busybox sh: the add-on's Alpine image has busybox ash as /bin/sh.
  const child = track(
    spawn("busybox", ["sh", RUN_SH], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] }),
    { name: "run.sh" },
  );
  let text = "";
  child.stdout?.on("data", (d: Buffer) => {
    text += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    text += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once("close", resolve));
  return {
    child,
    output: () => text,
    exited,
    async waitFor(pattern, budgetMs = START_WAIT) {
      const deadline = Date.now() + budgetMs;
      while (!pattern.test(text)) {
        if (Date.now() > deadline) throw new Error(`no ${pattern} in:\n${text.slice(-4000)}`);
        if (child.exitCode !== null) throw new Error(`run.sh exited early:\n${text.slice(-4000)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

/** Retained messages under `filter` right now (ended by a probe message, not a timeout). */
async function retained(filter: string): Promise<MqttMessage[]> {
  const probe = "test-probe/addon";
  const creds = { username: MQTT_USER, password: MQTT_PASSWORD };
  const sub = mosquittoSub(broker.url, [filter, probe], {
    timeoutMs: 15_000,
    retainedOnly: true,
    ...creds,
  });
  await sub.ready;
  await mosquittoPub(broker.url, probe, "end", { qos: 1, ...creds });
  return (await sub).filter((m) => m.topic !== probe);
}

async function retainedUntil(
  filter: string,
  ok: (m: MqttMessage[]) => boolean,
  what: string,
  run: AddonRun,
): Promise<MqttMessage[]> {
  const deadline = Date.now() + START_WAIT;
  let last: MqttMessage[] = [];
  while (Date.now() < deadline) {
    last = await retained(filter).catch(() => []);
    if (ok(last)) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}:\n${run.output().slice(-4000)}`);
}

/**
 * A media folder as the motionEye add-on leaves it (a settled clip), at its default place
 * `/share/motioneye` or, for cameras whose root directory the user moved, under `/media`.
 */
async function motioneyeMedia(dir: string, root = "share/motioneye"): Promise<Buffer> {
  const clip = join(dir, root, CLIP);
  await mkdir(dirname(clip), { recursive: true });
  // A finished movie (its MP4 boxes say so), as motion leaves it once closed.
  const bytes = clipBytes(10_000, CLIP);
  await writeFile(clip, bytes);
  const old = new Date(Date.now() - 3600_000);
  await utimes(clip, old, old);
  return bytes;
}

async function writeOptions(dir: string, options: Record<string, unknown>): Promise<void> {
  await mkdir(join(dir, "data"), { recursive: true });
  await mkdir(join(dir, "addon_config"), { recursive: true });
  await writeFile(join(dir, "data", "options.json"), JSON.stringify(options));
}

/** The add-on's defaults (config.yaml `options`) with the paths of this test. */
function defaultOptions(dir: string): Record<string, unknown> {
  return {
    source_path: join(dir, "share", "motioneye"),
    destination_type: "local",
    destination_path: join(dir, "share", "motioneye-vault"),
    encryption_recipients: [],
    telegram_allowed_chat_ids: [],
    schedule: "*/15 * * * *",
    log_level: "info",
  };
}

beforeAll(async () => {
  [work, broker] = await Promise.all([
    tempDir("mev-addon-"),
    startMosquitto({ username: MQTT_USER, password: MQTT_PASSWORD }),
  ]);
  // The image's /opt/motioneye-vault: package.json, node_modules and the compiled dist/.
  home = join(work, "opt", "motioneye-vault");
  await mkdir(home, { recursive: true });
  await copyFile(join(REPO, "package.json"), join(home, "package.json"));
  await symlink(join(REPO, "node_modules"), join(home, "node_modules"));
  await runCommand(
    process.execPath,
    [
      join(REPO, "node_modules/typescript/bin/tsc"),
      "-p",
      join(REPO, "tsconfig.build.json"),
      "--outDir",
      join(home, "dist"),
    ],
    { cwd: REPO, timeoutMs: 180_000 },
  );

  supervisor = createServer((req, res) => {
    const { status, body } = answer(req);
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => supervisor.listen(0, "127.0.0.1", resolve));
  supervisorUrl = `http://127.0.0.1:${(supervisor.address() as AddressInfo).port}`;
}, 240_000);

afterAll(async () => {
  await new Promise((resolve) => supervisor?.close(resolve));
  await Promise.allSettled([broker?.close(), rm(work, { recursive: true, force: true })]);
});

describe("the add-on's run script", { timeout: 180_000 }, () => {
  it("writes the vault's config from the options and the Supervisor's MQTT, then serves", async () => {
    const dir = join(work, "first");
    const clipBytes = await motioneyeMedia(dir);
    await writeOptions(dir, {
      ...defaultOptions(dir),
      telegram_token: "",
      motioneye_url: "http://192.168.1.20:8765/",
    });

    const run = await startAddon(dir);
    try {
      // Home Assistant's broker, with the account the Supervisor gave: the device appears,
      // linked to the add-on's page, and the startup run backs up the clip.
      const configs = await retainedUntil(
        "homeassistant/+/motioneye_vault/+/config",
        (m) => m.length >= 15,
        "the device's discovery",
        run,
      );
      const device = JSON.parse(configs[0]?.payload ?? "{}").device;
      expect(device.configuration_url).toBe(`homeassistant://hassio/addon/${SLUG}/info`);
      const [state] = await retainedUntil(
        "motioneye-vault/state",
        (m) => JSON.parse(m[0]?.payload ?? "{}").clips === 1,
        "the clip backed up",
        run,
      );
      const identity = join(dir, "data", "identity.txt");
      const recipient = await ageKeygenRecipient(identity);
      expect(JSON.parse(state?.payload ?? "{}").age_recipient).toBe(recipient);
      // The log says where clips go and the key they are encrypted to (the new-key banner).
      expect(run.output()).toContain(
        `clips from ${join(dir, "share", "motioneye")} (local folder)`,
      );
      expect(run.output()).toContain("MQTT: Home Assistant's broker 127.0.0.1");
      expect(run.output()).toContain(`public key: ${recipient}`);
      expect(run.output()).not.toContain(MQTT_PASSWORD);
    } finally {
      await stopProcess(run.child);
    }
    expect(await run.exited).toBe(0);

    // The Supervisor was asked with the add-on's token.
    expect(supervisorCalls.map((c) => c.path)).toEqual(
      expect.arrayContaining(["/services/mqtt", "/addons/self/info"]),
    );
    for (const c of supervisorCalls) expect(c.auth).toBe(`Bearer ${TOKEN}`);

    // The identity and the config live in /data, private to the add-on.
    const configFile = join(dir, "data", "config.yml");
    expect((await stat(configFile)).mode & 0o777).toBe(0o600);
    const written = parseYaml(await readFile(configFile, "utf8"));
    expect(written).toMatchObject({
      source: { type: "local", path: join(dir, "share", "motioneye") },
      destination: { type: "local", path: join(dir, "share", "motioneye-vault") },
      encryption: { identityFile: join(dir, "data", "identity.txt") },
      mqtt: {
        url: `mqtt://127.0.0.1:${broker.port}`,
        username: MQTT_USER,
        password: MQTT_PASSWORD,
        embeddedBroker: { enabled: false },
        homeassistant: { motioneyeUrl: "http://192.168.1.20:8765/" },
      },
      http: { host: "0.0.0.0", port: 8099, token: expect.stringMatching(/^[\w-]{32}$/) },
      log: { format: "pretty" },
    });
    expect(written).not.toHaveProperty("telegram");

    // The config is one `motioneye-vault status` accepts, reading the local media folder.
    const status = await runCli(["status", "--json", "--config", configFile]);
    expect(status.stderr).toBe("");
    expect(status.code).toBe(0);
    const st = JSON.parse(status.stdout);
    expect(st.source).toContain(join(dir, "share", "motioneye"));
    expect(st.totals.clips).toBe(1);

    // On the destination: the clip, age-encrypted, that Debian's age decrypts with the identity.
    const vault = join(dir, "share", "motioneye-vault");
    expect(await walk(vault)).toEqual([`${CLIP}.age`]);
    expect(
      (await ageCliDecrypt(join(vault, `${CLIP}.age`), join(dir, "data", "identity.txt"))).equals(
        clipBytes,
      ),
    ).toBe(true);
  });

  it("on the next start the log shows the recipient of the identity it keeps", async () => {
    const dir = join(work, "first");
    const before = await readFile(join(dir, "data", "config.yml"), "utf8");
    const run = await startAddon(dir);
    try {
      const recipient = await ageKeygenRecipient(join(dir, "data", "identity.txt"));
      await run.waitFor(new RegExp(`encrypted to the age recipient ${recipient}`));
      await run.waitFor(/sync finished/);
    } finally {
      await stopProcess(run.child);
    }
    expect(await run.exited).toBe(0);
    // The same generated hook token: motionEye's web hook URL keeps working across restarts.
    expect(parseYaml(await readFile(join(dir, "data", "config.yml"), "utf8")).http.token).toBe(
      parseYaml(before).http.token,
    );
  });

  it("a wrong option stops it before anything starts, naming the option", async () => {
    const dir = join(work, "bad");
    await motioneyeMedia(dir);
    await writeOptions(dir, {
      ...defaultOptions(dir),
      destination_type: "sftp",
      destination_path: "/backup",
    });
    const run = await startAddon(dir);
    expect(await run.exited).toBe(2);
    expect(run.output()).toContain(
      "option error: sftp_host: is required when destination_type is sftp",
    );
    expect(run.output()).toContain(
      "option error: sftp_private_key_file: or sftp_password is required",
    );
    expect(run.output()).not.toMatch(/serve running/);
  });

  it("without an MQTT service it still backs up clips under /media, and says why there is no device", async () => {
    const dir = join(work, "nomqtt");
    await motioneyeMedia(dir, "media/cameras");
    await writeOptions(dir, { ...defaultOptions(dir), source_path: join(dir, "media", "cameras") });
    mqttServiceUp = false;
    const run = await startAddon(dir);
    try {
      await run.waitFor(/sync finished/);
      expect(run.output()).toContain("the Supervisor answered 400 for /services/mqtt: No service");
      expect(run.output()).toContain("MQTT: no broker");
    } finally {
      mqttServiceUp = true;
      await stopProcess(run.child);
    }
    expect(await run.exited).toBe(0);
    expect(await walk(join(dir, "share", "motioneye-vault"))).toEqual([`${CLIP}.age`]);
    const status = await runCli(["status", "--json", "--config", join(dir, "data", "config.yml")]);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout).source).toContain(join(dir, "media", "cameras"));
  });
});
