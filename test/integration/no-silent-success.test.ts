import type { ChildProcess } from "node:child_process";
import { mkdir, rm, utimes, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, spawnCli } from "../harness/cli.js";
import { type Call, type FakeTelegram, startFakeTelegram } from "../harness/fakeTelegram.js";
import { tempDir, walk, writeConfig } from "../harness/files.js";
import {
  type Broker,
  type MqttMessage,
  mosquittoPub,
  mosquittoSub,
  startMosquitto,
} from "../harness/mosquitto.js";
import { freePort } from "../harness/ports.js";
import { stopProcess, track } from "../harness/processes.js";

/**
 * No silent success, through the real `serve`: a camera folder that is not there, a destination
 * that refuses every write, and backups that quietly stopped are each seen in Home Assistant
 * (mosquitto_sub), on /healthz and /metrics, and in Telegram (a fake Bot API), and each clears by
 * itself once fixed.
 */

const BASE = "motioneye-vault";
const PREFIX = "homeassistant";
const TOKEN = "123456789:TEST-fake-telegram-token";
const OWNER = 4242;
const WAIT = 30_000;
/** For waits that include starting `serve` on a machine busy with other tests. */
const START_WAIT = 60_000;

async function writeClip(root: string, id: string): Promise<void> {
  const file = join(root, id);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, Buffer.alloc(4096, id));
  const old = new Date(Date.now() - 3600_000);
  await utimes(file, old, old);
}

const textOf = (c: Call) => String(c.params.text ?? "");
const json = (m: MqttMessage | undefined) => JSON.parse(m?.payload ?? "null");

/** One `serve` with its output, and the ways a user looks at it. */
function serveHarness(get: () => { broker: Broker; config: string; httpPort: number }) {
  let child: ChildProcess | undefined;
  let output = "";

  async function retained(filter: string | string[]): Promise<MqttMessage[]> {
    const probe = "test-probe/retained";
    const sub = mosquittoSub(get().broker.url, [...[filter].flat(), probe], {
      timeoutMs: 15_000,
      retainedOnly: true,
    });
    await sub.ready;
    await mosquittoPub(get().broker.url, probe, "end", { qos: 1 });
    return (await sub).filter((m) => m.topic !== probe);
  }

  /** Polls until `ok` gives a value (serve publishes and runs on its own time). */
  async function until<T>(
    what: string,
    look: () => Promise<T | undefined>,
    budgetMs = WAIT,
  ): Promise<T> {
    const deadline = Date.now() + budgetMs;
    let lastErr: unknown;
    while (Date.now() < deadline) {
      try {
        const v = await look();
        if (v !== undefined) return v;
      } catch (err) {
        lastErr = err; // a probe that could not start on a busy machine: look again
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(
      `timed out waiting for ${what} (${String(lastErr ?? "")}); serve output:\n${output.slice(-4000)}`,
    );
  }

  const state = async () =>
    json((await retained(`${BASE}/state`)).find((m) => m.topic === `${BASE}/state`));
  const stateWhere = (what: string, ok: (s: Record<string, unknown>) => boolean, budget = WAIT) =>
    until(
      what,
      async () => {
        const s = await state();
        return s && ok(s) ? (s as Record<string, unknown>) : undefined;
      },
      budget,
    );
  const http = async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${get().httpPort}${path}`);
    return { status: res.status, text: await res.text() };
  };

  return {
    get output() {
      return output;
    },
    retained,
    until,
    stateWhere,
    http,
    start() {
      child = track(spawnCli(["serve", "--config", get().config]), { name: "serve" });
      child.stdout?.on("data", (d: Buffer) => {
        output += d.toString();
      });
      child.stderr?.on("data", (d: Buffer) => {
        output += d.toString();
      });
    },
    async stop() {
      if (!child) return;
      const c = child;
      child = undefined;
      await stopProcess(c);
      expect(c.exitCode).toBe(0);
    },
  };
}

describe("a missing camera folder, then the staleness alarm", { timeout: 240_000 }, () => {
  let broker: Broker;
  let tg: FakeTelegram;
  let work: string;
  let media: string;
  let config: string;
  let httpPort: number;
  const serve = serveHarness(() => ({ broker, config, httpPort }));

  beforeAll(async () => {
    [broker, tg, work, httpPort] = await Promise.all([
      startMosquitto(),
      startFakeTelegram({ token: TOKEN }),
      tempDir(),
      freePort(),
    ]);
    media = join(work, "usb", "motioneye"); // not mounted yet
    config = await writeConfig(work, {
      source: { type: "local", path: media, stableSeconds: 0 },
      destination: { type: "local", path: join(work, "vault") },
      state: { dir: join(work, "state") },
      mqtt: {
        url: broker.url,
        baseTopic: BASE,
        embeddedBroker: { enabled: false },
        homeassistant: { enabled: true, discoveryPrefix: PREFIX, rediscoverDelaySeconds: 0 },
      },
      schedule: { sync: "*/2 * * * * *" },
      sync: { retries: 0 },
      http: { port: httpPort },
      // 0.003 h = 10.8 s: long enough to see it clear before it would be due again.
      alerts: { staleAfterHours: 0.003 },
      telegram: {
        token: TOKEN,
        apiRoot: tg.apiRoot,
        allowedChatIds: [OWNER],
        notify: { failures: true },
      },
      log: { level: "info" },
    });
  });

  afterAll(async () => {
    await serve.stop().catch(() => {});
    await Promise.allSettled([
      broker?.close(),
      tg?.stop(),
      rm(work, { recursive: true, force: true }),
    ]);
  });

  const sent = (pattern: RegExp) =>
    tg.calls.filter((c) => c.method === "sendMessage" && c.ok && pattern.test(textOf(c)));
  const missing = `source.path: ${join("__WORK__", "usb", "motioneye")} does not exist`;

  it("serve shows the source failing: status, Home Assistant, Telegram, /healthz, /metrics", async () => {
    const message = missing.replace("__WORK__", work);
    serve.start();
    await serve.stateWhere(
      "camera_connection OFF",
      (s) => s.camera_connection === "OFF",
      START_WAIT,
    );
    const status = JSON.parse((await runCli(["status", "--config", config, "--json"])).stdout);
    expect(status.sources.default).toMatchObject({ failing: true, lastSuccessAt: null });
    expect(status.sources.default.lastError.message).toContain(message);
    expect(status.lastSuccessAt).toBeNull();

    const notice = await serve.until("a failure notice", async () => sent(/^Backup failed/)[0]);
    expect(textOf(notice)).toContain(message);
    expect(notice.params.chat_id).toBe(OWNER);

    // Every run fails: after a few, /healthz says the service is not working.
    const health = await serve.until("/healthz 503", async () => {
      const h = await serve.http("/healthz");
      return h.status === 503 ? h : undefined;
    });
    expect(JSON.parse(health.text).problems.join("\n")).toMatch(/sync runs failed/);
    const metrics = (await serve.http("/metrics")).text;
    expect(metrics).toMatch(/motioneye_vault_sync_failures_total\{source="default"\} [1-9]/);
    expect(metrics).toMatch(/motioneye_vault_source_up\{source="default"\} 0/);
    // One notice for the same error, however many runs fail with it.
    expect(sent(/^Backup failed/)).toHaveLength(1);
  });

  it("raises the staleness alarm once: Home Assistant's problem sensor and one message", async () => {
    const discovery = await serve.retained(`${PREFIX}/binary_sensor/+/backups_stale/config`);
    expect(json(discovery[0])).toMatchObject({ device_class: "problem" });
    const alarm = await serve.until(
      "the staleness message",
      async () => sent(/^No new clip backed up/)[0],
      WAIT * 2,
    );
    expect(textOf(alarm)).toMatch(/from the camera for 11 s/);
    await serve.stateWhere("backups_stale ON", (s) => s.backups_stale === "ON");

    // A restart keeps the alarm (Home Assistant still shows it) and does not send it again.
    await serve.stop();
    const from = serve.output.length;
    serve.start();
    // The alarm is judged again after the startup run: wait for that run and the next.
    await serve.until(
      "two runs after the restart",
      async () =>
        /sync finished[\s\S]*sync finished/.test(serve.output.slice(from)) ? true : undefined,
      START_WAIT,
    );
    await serve.stateWhere("backups_stale ON after the restart", (s) => s.backups_stale === "ON");
    expect(sent(/^No new clip backed up/)).toHaveLength(1);
  });

  it("recovers by itself when the folder appears, and clears the alarm once", async () => {
    await writeClip(media, "Camera1/2024-05-01/12-00-00.mp4");
    await serve.stateWhere(
      "the clip backed up, camera connected, alarm cleared",
      (st) => st.clips === 1 && st.camera_connection === "ON" && st.backups_stale === "OFF",
    );
    const resumed = await serve.until(
      "the resumed message",
      async () => sent(/^Backups resumed/)[0],
    );
    await serve.until("/healthz 200", async () =>
      (await serve.http("/healthz")).status === 200 ? true : undefined,
    );
    await serve.stop();
    expect(await walk(join(work, "vault"))).toEqual(["Camera1/2024-05-01/12-00-00.mp4.age"]);
    const status = JSON.parse((await runCli(["status", "--config", config, "--json"])).stdout);
    expect(status.sources.default.failing).toBe(false);
    // Exactly one alarm before it cleared, and one "resumed" (a later alarm would be a new one).
    expect(sent(/^No new clip backed up/).filter((c) => c.seq < resumed.seq)).toHaveLength(1);
    expect(sent(/^Backups resumed/)).toHaveLength(1);
  });
});

describe("a destination that refuses every write", { timeout: 120_000 }, () => {
  let broker: Broker;
  let work: string;
  let config: string;
  let httpPort: number;
  let blocker: string;
  const serve = serveHarness(() => ({ broker, config, httpPort }));

  beforeAll(async () => {
    [broker, work, httpPort] = await Promise.all([startMosquitto(), tempDir(), freePort()]);
    const media = join(work, "motioneye");
    await writeClip(media, "Camera1/2024-05-01/12-00-00.mp4");
    // The vault's path goes through a regular file: every upload fails with ENOTDIR.
    blocker = join(work, "nas");
    await writeFile(blocker, "not a folder");
    config = await writeConfig(work, {
      source: { type: "local", path: media, stableSeconds: 0 },
      destination: { type: "local", path: join(blocker, "vault") },
      state: { dir: join(work, "state") },
      mqtt: {
        url: broker.url,
        baseTopic: BASE,
        embeddedBroker: { enabled: false },
        homeassistant: { enabled: true, discoveryPrefix: PREFIX, rediscoverDelaySeconds: 0 },
      },
      schedule: { sync: "" },
      sync: { retries: 0 },
      http: { port: httpPort },
      log: { level: "info" },
    });
  });

  afterAll(async () => {
    await serve.stop().catch(() => {});
    await Promise.allSettled([broker?.close(), rm(work, { recursive: true, force: true })]);
  });

  it("turns the destination connection OFF and /healthz 503; a working destination turns them back", async () => {
    serve.start();
    const s = await serve.stateWhere(
      "destination_connection OFF",
      (st) => st.destination_connection === "OFF",
      START_WAIT,
    );
    // The camera answered: only the destination is at fault.
    expect(s.camera_connection).toBe("ON");
    expect(s.clips).toBe(0);
    const health = await serve.until("/healthz 503", async () => {
      const h = await serve.http("/healthz");
      return h.status === 503 ? h : undefined;
    });
    expect(JSON.parse(health.text)).toMatchObject({
      problems: ["the destination does not take backups (its last write or listing failed)"],
      checks: { destination: { ok: false, connected: false } },
    });

    // Fixed (the share mounted): the next run backs up and the sensor says so.
    await rm(blocker);
    await mkdir(blocker);
    await mosquittoPub(broker.url, "motioneye/Camera1/event", "", { qos: 1 });
    await serve.stateWhere(
      "destination_connection ON",
      (st) => st.destination_connection === "ON" && st.clips === 1,
    );
    expect((await serve.http("/healthz")).status).toBe(200);
    await serve.stop();
    expect(await walk(join(blocker, "vault"))).toEqual(["Camera1/2024-05-01/12-00-00.mp4.age"]);
  });
});
