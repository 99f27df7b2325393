import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, rm, utimes, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ageKeygenRecipient } from "../harness/age.js";
import { spawnCli } from "../harness/cli.js";
import { ftpSource } from "../harness/config.js";
import { tempDir, walk, writeConfig } from "../harness/files.js";
import { type FtpServer, startFtpServer } from "../harness/ftp.js";
import {
  type Broker,
  type MqttMessage,
  mosquittoPub,
  mosquittoSub,
  startMosquitto,
} from "../harness/mosquitto.js";
import { stopProcess, track } from "../harness/processes.js";

/**
 * Home Assistant's side of the vault, with no Home Assistant: a real mosquitto, the real `serve`,
 * and the real `mosquitto_sub` / `mosquitto_pub` seeing and doing what Home Assistant would:
 * retained discovery configs, the state documents, the "Sync now" button, the "Backups enabled"
 * switch, and the birth message `online` on homeassistant/status.
 */

const BASE = "motioneye-vault";
const VAULT_PAGE = "homeassistant://hassio/addon/local_motioneye_vault/info";
const PREFIX = "homeassistant";
const WAIT = 20_000;
/** For waits that include starting `serve` (node + tsx), on a machine busy with other tests. */
const START_WAIT = 45_000;
const TEST_TIMEOUT = 90_000;
const TZ = /(Z|[+-]\d{2}:\d{2})$/;
/** The vault device's entities (the cameras have 2 each). */
const VAULT_ENTITIES = 17;
/** A real JPEG (16x16, one colour, made by ffmpeg): what motionEye writes as `<movie>.thumb`. */
const THUMB_JPEG = Buffer.from(
  "/9j/4AAQSkZJRgABAgAAAQABAAD//gAQTGF2YzU5LjM3LjEwMAD/2wBDAAgQEBMQExYWFhYWFhoYGhsbGxoaGhobGxsdHR0iIiIdHR0bGx0dICAiIiUmJSMjIiMmJigoKDAwLi44ODpFRVP/xABLAAEBAAAAAAAAAAAAAAAAAAAABgEBAAAAAAAAAAAAAAAAAAAABhABAAAAAAAAAAAAAAAAAAAAABEBAAAAAAAAAAAAAAAAAAAAAP/AABEIABAAEAMBIgACEQADEQD/2gAMAwEAAhEDEQA/AJ4AgGX/2Q==",
  "base64",
);

function localToday(): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

/** Writes a small clip that has long settled (an hour old). */
async function writeClip(root: string, id: string, size = 2048): Promise<void> {
  const file = join(root, id);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, Buffer.alloc(size, id));
  const old = new Date(Date.now() - 3600_000);
  await utimes(file, old, old);
}

const json = (m: MqttMessage | undefined) => JSON.parse(m?.payload ?? "null");

describe("Home Assistant discovery through serve", { timeout: TEST_TIMEOUT }, () => {
  let broker: Broker;
  let work: string;
  let source: string;
  let destination: string;
  let config: string;
  let serve: ChildProcess | undefined;
  let output = "";

  /**
   * What a client subscribing now gets as retained messages. `--retained-only` ends at the first
   * live message: one published on a probe topic once subscribed (the broker sends the retained
   * ones first), so this takes milliseconds, not a timeout.
   */
  async function retained(filter: string | string[]): Promise<MqttMessage[]> {
    const probe = "test-probe/retained";
    const sub = mosquittoSub(broker.url, [...[filter].flat(), probe], {
      timeoutMs: 15_000, // a backstop only: the probe ends it
      retainedOnly: true,
    });
    await sub.ready;
    await mosquittoPub(broker.url, probe, "end", { qos: 1 });
    return (await sub).filter((m) => m.topic !== probe);
  }

  /** Polls the retained messages until `ok` holds (serve publishes asynchronously). */
  async function retainedUntil(
    filter: string | string[],
    ok: (msgs: MqttMessage[]) => boolean,
    what: string,
    budgetMs = WAIT,
  ): Promise<MqttMessage[]> {
    const deadline = Date.now() + budgetMs;
    let last: MqttMessage[] = [];
    while (Date.now() < deadline) {
      try {
        last = await retained(filter);
      } catch {
        // a mosquitto_sub that could not start in time on a busy machine: ask again
      }
      if (ok(last)) return last;
      await new Promise((r) => setTimeout(r, 150));
    }
    throw new Error(
      `timed out waiting for ${what}; retained:\n${last.map((m) => `${m.topic} ${m.payload}`).join("\n")}\nserve output:\n${output.slice(-4000)}`,
    );
  }

  const configsOf = (msgs: MqttMessage[]) =>
    msgs.filter((m) => m.topic.startsWith(`${PREFIX}/`) && m.topic.endsWith("/config"));
  const stateOf = async () =>
    json((await retained(`${BASE}/state`)).find((m) => m.topic === `${BASE}/state`));

  async function waitForOutput(pattern: RegExp, from: number, budgetMs = WAIT): Promise<void> {
    const deadline = Date.now() + budgetMs;
    while (Date.now() < deadline) {
      if (pattern.test(output.slice(from))) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no ${pattern} in serve output:\n${output.slice(-4000)}`);
  }

  async function startServe(): Promise<void> {
    serve = track(spawnCli(["serve", "--config", config]), { name: "serve" });
    serve.stdout?.on("data", (d: Buffer) => {
      output += d.toString();
    });
    serve.stderr?.on("data", (d: Buffer) => {
      output += d.toString();
    });
  }

  async function stopServe(): Promise<void> {
    if (!serve) return;
    await stopProcess(serve);
    expect(serve.exitCode).toBe(0);
    serve = undefined;
  }

  beforeAll(async () => {
    [broker, work] = await Promise.all([startMosquitto(), tempDir()]);
    source = join(work, "motioneye");
    destination = join(work, "vault");
    await writeClip(source, "Camera1/2024-05-01/12-00-00.mp4");
    await writeClip(source, "OldCam/2024-05-01/08-00-00.mp4");
    config = await writeServeConfig(true);
  });

  const writeServeConfig = (enabled: boolean) =>
    writeConfig(work, {
      source: { type: "local", path: source, stableSeconds: 0 },
      destination: { type: "local", path: destination },
      state: { dir: join(work, "state") },
      mqtt: {
        url: broker.url,
        baseTopic: BASE,
        embeddedBroker: { enabled: false },
        homeassistant: {
          enabled,
          discoveryPrefix: PREFIX,
          rediscoverDelaySeconds: 0.5,
          configurationUrl: VAULT_PAGE,
        },
      },
      schedule: { sync: "" },
      sync: { retries: 0 },
      http: { port: 0 }, // no HTTP listener: nothing here calls it
      log: { level: "info" },
    });

  afterAll(async () => {
    if (serve) await stopProcess(serve).catch(() => {});
    await Promise.allSettled([broker?.close(), rm(work, { recursive: true, force: true })]);
  });

  it("publishes retained configs with unique ids, the device and availability", async () => {
    await startServe();
    // The vault's entities and 2 per camera (Camera1, OldCam).
    const msgs = await retainedUntil(
      [`${PREFIX}/#`, `${BASE}/#`],
      (m) =>
        configsOf(m).length === VAULT_ENTITIES + 2 * 2 &&
        m.some((x) => x.topic === `${BASE}/availability` && x.payload === "online") &&
        m.some((x) => x.topic === `${BASE}/state`),
      "discovery",
      START_WAIT,
    );
    const configs = configsOf(msgs);
    const payloads = configs.map((m) => JSON.parse(m.payload) as Record<string, unknown>);
    expect(new Set(payloads.map((p) => p.unique_id)).size).toBe(configs.length);
    for (const p of payloads) {
      expect(p.unique_id).toEqual(expect.any(String));
      expect(p.availability).toEqual([{ topic: `${BASE}/availability` }]);
      expect(p.origin).toMatchObject({ name: "motioneye-vault" });
      const device = p.device as Record<string, unknown>;
      expect(device.identifiers).toEqual(expect.any(Array));
      if (device.via_device === undefined) expect(device.name).toBe("motionEye Vault");
      else expect(["Camera1", "OldCam"]).toContain(device.name);
    }
    const vaultDevice = payloads.find((p) => !(p.device as { via_device?: string }).via_device)
      ?.device as Record<string, unknown>;
    expect(vaultDevice).toMatchObject({
      name: "motionEye Vault",
      manufacturer: "motioneye-vault",
      sw_version: expect.stringMatching(/^\d+\.\d+\.\d+/),
    });
    expect(configs.every((m) => m.retained)).toBe(true);
    expect(
      configs.some((m) => m.topic.includes("/button/") && m.topic.endsWith("/sync_now/config")),
    ).toBe(true);

    // The startup sync backed both clips up; the state says so, with zoned timestamps.
    const state = (
      await retainedUntil(
        `${BASE}/state`,
        (m) => json(m[0])?.clips === 2 && json(m[0])?.syncing === "OFF",
        "the startup run to end with 2 clips",
      )
    )[0];
    const s = json(state);
    expect(s.last_success).toMatch(TZ);
    expect(s.last_clip_attributes.time).toMatch(TZ);
    expect(s).toMatchObject({
      syncing: "OFF",
      backups_enabled: "ON",
      camera_connection: "ON",
      destination_connection: "ON",
    });
    // The document still carries serve's own state keys (it replaces serve's state publisher).
    expect(s).toMatchObject({ running: false, paused: false, totals: { clips: 2 } });
    expect(s.lastSuccessAt).toMatch(TZ);
    // The recipient of the identity in the add-on's data, as `age-keygen -y` reads it.
    expect(s.age_recipient).toBe(await ageKeygenRecipient(join(work, "state", "identity.txt")));
    // Links: the project's page on every entity, the vault's own page on its device.
    const origin = payloads[0]?.origin as Record<string, unknown>;
    expect(origin.support_url).toMatch(/^https:\/\//);
    expect(vaultDevice.configuration_url).toBe(VAULT_PAGE);
  });

  it("the upload cap number sets sync.bandwidthLimit live; 0 lifts it", async () => {
    expect((await stateOf()).upload_cap).toBe("off");
    await mosquittoPub(broker.url, `${BASE}/upload_cap/set`, "256", { qos: 1 });
    const capped = json(
      (await retainedUntil(`${BASE}/state`, (m) => json(m[0])?.upload_cap_kib === 256, "256"))[0],
    );
    expect(capped.upload_cap).toBe("256 KiB/s");
    expect(capped.upload_cap_attributes).toMatchObject({
      bytes_per_second: 262144,
      set_by: "override",
    });
    await mosquittoPub(broker.url, `${BASE}/upload_cap/set`, "0", { qos: 1 });
    await retainedUntil(`${BASE}/state`, (m) => json(m[0])?.upload_cap === "off", "off");
  });

  it("the switch turns backups off; a stopped serve leaves every entity unavailable", async () => {
    await mosquittoPub(broker.url, `${BASE}/backups_enabled/set`, "OFF", { qos: 1 });
    await retainedUntil(`${BASE}/state`, (m) => json(m[0])?.backups_enabled === "OFF", "OFF");
    await stopServe();
    expect((await retained(`${BASE}/availability`))[0]?.payload).toBe("offline");
  });

  it("after a restart: a vanished camera's configs are cleared, backups are still off", async () => {
    await rm(join(source, "OldCam"), { recursive: true });
    const from = output.length;
    await startServe();
    await waitForOutput(/clearing a Home Assistant config/, from, START_WAIT);
    const msgs = await retainedUntil(
      [`${PREFIX}/#`, `${BASE}/#`],
      (m) =>
        configsOf(m).length === VAULT_ENTITIES + 2 &&
        m.some((x) => x.topic === `${BASE}/availability` && x.payload === "online"),
      "OldCam's configs to go",
      START_WAIT,
    );
    expect(configsOf(msgs).some((m) => m.topic.includes("OldCam"))).toBe(false);
    expect(msgs.some((m) => m.topic === `${BASE}/camera/OldCam/state`)).toBe(false);
    expect(msgs.some((m) => m.topic === `${BASE}/camera/Camera1/state`)).toBe(true);
    expect((await stateOf()).backups_enabled).toBe("OFF");
  });

  it("while paused the button is ignored; switched on, it backs up a new clip", async () => {
    const id = `Camera1/${localToday()}/09-30-00.mp4`;
    await writeClip(source, id);
    await writeFile(join(source, `${id}.thumb`), THUMB_JPEG);
    const from = output.length;
    await mosquittoPub(broker.url, `${BASE}/sync/set`, "PRESS", { qos: 1 });
    await waitForOutput(/Home Assistant asked for a sync[\s\S]*paused/i, from);
    expect(existsSync(join(destination, `${id}.age`))).toBe(false);
    expect((await stateOf()).clips).toBe(2);

    await mosquittoPub(broker.url, `${BASE}/backups_enabled/set`, "ON", { qos: 1 });
    await retainedUntil(`${BASE}/state`, (m) => json(m[0])?.backups_enabled === "ON", "ON");

    // The one clip gives one event: the subscription ends with it.
    const event = mosquittoSub(broker.url, `${BASE}/event`, { count: 1, timeoutMs: WAIT });
    await event.ready;
    await mosquittoPub(broker.url, `${BASE}/sync/set`, "PRESS", { qos: 1 });
    const state = await retainedUntil(
      `${BASE}/state`,
      (m) => json(m[0])?.last_clip === id && json(m[0])?.syncing === "OFF",
      "the new clip in the state",
    );
    expect(await walk(destination)).toContain(`${id}.age`);
    const s = json(state[0]);
    expect(s).toMatchObject({ clips: 3, pending: 0, last_clip_attributes: { camera: "Camera1" } });
    expect(s.last_success).toMatch(TZ);
    expect(s.last_clip_attributes.time).toMatch(TZ);

    const [fired] = await event;
    expect(json(fired)).toMatchObject({ event_type: "clip_backed_up", id, camera: "Camera1" });
    expect(json(fired).at).toMatch(TZ);
    expect(fired?.retained).toBe(false);

    const camera = await retainedUntil(
      `${BASE}/camera/Camera1/state`,
      (m) => json(m[0])?.clips_today === 1,
      "clips today",
    );
    expect(json(camera[0]).last_clip).toBe(id);

    // Home Assistant's image entity reads the clip's thumbnail: JPEG bytes, retained.
    const image = configsOf(await retained(`${PREFIX}/image/#`));
    expect(image.map((m) => m.topic)).toEqual([
      `${PREFIX}/image/motioneye_vault/last_clip_thumbnail/config`,
    ]);
    expect(JSON.parse(image[0]?.payload ?? "{}")).toMatchObject({
      image_topic: `${BASE}/thumbnail`,
      content_type: "image/jpeg",
      unique_id: "motioneye_vault_last_clip_thumbnail",
    });
    const [thumbnail] = await retainedUntil(
      `${BASE}/thumbnail`,
      (m) => m[0]?.payloadBytes.equals(THUMB_JPEG) === true,
      "the clip's thumbnail",
    );
    expect(thumbnail?.retained).toBe(true);
  });

  it("Home Assistant's birth message brings discovery back", async () => {
    const before = configsOf(await retained(`${PREFIX}/#`));
    expect(before.length).toBe(VAULT_ENTITIES + 2);
    // Home Assistant lost everything (a broker without persistence restarted, say).
    for (const m of before) await mosquittoPub(broker.url, m.topic, "", { retain: true, qos: 1 });
    expect(configsOf(await retained(`${PREFIX}/#`))).toEqual([]);

    await mosquittoPub(broker.url, `${PREFIX}/status`, "online", { qos: 1 });
    const back = await retainedUntil(
      `${PREFIX}/#`,
      (m) => configsOf(m).length === before.length,
      "discovery after the birth message",
    );
    expect(new Set(configsOf(back).map((m) => m.topic))).toEqual(
      new Set(before.map((m) => m.topic)),
    );
    expect(
      configsOf(back)
        .map((m) => m.payload)
        .sort(),
    ).toEqual(before.map((m) => m.payload).sort());
    await stopServe();
  });

  it("with homeassistant.enabled: false, the next start removes every config it published", async () => {
    expect(configsOf(await retained(`${PREFIX}/#`)).length).toBe(VAULT_ENTITIES + 2);
    await writeServeConfig(false);
    await startServe();
    await retainedUntil(
      [`${PREFIX}/#`, `${BASE}/availability`],
      (m) => configsOf(m).length === 0 && m.some((x) => x.payload === "online"),
      "every config cleared",
      START_WAIT,
    );
    // serve's own state document is back on <base>/state, without Home Assistant's keys
    const state = await retainedUntil(
      `${BASE}/state`,
      (m) => json(m[0])?.syncing === undefined && json(m[0])?.totals?.clips === 3,
      "serve's own state",
    );
    expect(json(state[0])).toMatchObject({ paused: false, totals: { clips: 3 } });
    await stopServe();
  });
});

describe("Home Assistant: the camera goes away and comes back", { timeout: TEST_TIMEOUT }, () => {
  let broker: Broker;
  let ftp: FtpServer;
  let work: string;
  let serve: ChildProcess | undefined;
  let output = "";

  const state = async () => {
    const sub = mosquittoSub(broker.url, [`${BASE}/state`, "test-probe/x"], {
      timeoutMs: 15_000,
      retainedOnly: true,
    });
    await sub.ready;
    await mosquittoPub(broker.url, "test-probe/x", "end", { qos: 1 });
    return json((await sub).find((m) => m.topic === `${BASE}/state`));
  };
  async function stateUntil(
    ok: (s: Record<string, unknown>) => boolean,
    what: string,
    budgetMs = WAIT,
  ) {
    const deadline = Date.now() + budgetMs;
    let last: Record<string, unknown> = {};
    while (Date.now() < deadline) {
      last = (await state().catch(() => null)) ?? {};
      if (ok(last)) return last;
      await new Promise((r) => setTimeout(r, 150));
    }
    throw new Error(
      `timed out waiting for ${what}: ${JSON.stringify(last)}\n${output.slice(-3000)}`,
    );
  }
  /** Presses "Sync now" and resolves with the event the run fires. */
  async function press(): Promise<Record<string, unknown>> {
    const event = mosquittoSub(broker.url, `${BASE}/event`, { count: 1, timeoutMs: WAIT });
    await event.ready;
    await mosquittoPub(broker.url, `${BASE}/sync/set`, "PRESS", { qos: 1 });
    return json((await event)[0]);
  }

  beforeAll(async () => {
    [broker, ftp, work] = await Promise.all([startMosquitto(), startFtpServer(), tempDir()]);
    await ftp.writeClip("Camera1/2024-05-01/12-00-00.mp4", 4096);
    const config = await writeConfig(work, {
      source: ftpSource(ftp, { stableSeconds: 0, timeoutSeconds: 5 }),
      destination: { type: "local", path: join(work, "vault") },
      state: { dir: join(work, "state") },
      mqtt: { url: broker.url, baseTopic: BASE, embeddedBroker: { enabled: false } },
      schedule: { sync: "" },
      sync: { retries: 0 },
      http: { port: 0 },
    });
    serve = track(spawnCli(["serve", "--config", config]), { name: "serve" });
    serve.stderr?.on("data", (d: Buffer) => {
      output += d.toString();
    });
  });

  afterAll(async () => {
    if (serve) await stopProcess(serve).catch(() => {});
    await Promise.allSettled([
      broker?.close(),
      ftp?.close(),
      rm(work, { recursive: true, force: true }),
    ]);
  });

  it("shows the camera disconnected and fires sync_failed, then connected again", async () => {
    await stateUntil(
      (s) => s.clips === 1 && s.syncing === "OFF" && s.camera_connection === "ON",
      "the startup run",
      START_WAIT,
    );

    await ftp.stop();
    const failed = await press();
    expect(failed).toMatchObject({ event_type: "sync_failed", error: expect.any(String) });
    expect(failed.at).toMatch(TZ);
    const down = await stateUntil(
      (s) => s.camera_connection === "OFF" && s.syncing === "OFF",
      "camera_connection OFF",
    );
    expect(down.last_error).toEqual(expect.any(String));
    expect((down.last_error_attributes as { time: string }).time).toMatch(TZ);
    expect(down.destination_connection).toBe("ON");

    await ftp.start();
    await ftp.writeClip("Camera1/2024-05-01/12-30-00.mp4", 4096);
    expect(await press()).toMatchObject({ event_type: "clip_backed_up", camera: "Camera1" });
    await stateUntil((s) => s.camera_connection === "ON" && s.clips === 2, "camera back");

    await stopProcess(serve as ChildProcess);
    expect(serve?.exitCode).toBe(0);
    serve = undefined;
  });
});
