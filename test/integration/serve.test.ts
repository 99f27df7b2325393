import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { localDate } from "../../src/serve/retention.js";
import { ageCliDecrypt } from "../harness/age.js";
import { REPO, runCli, spawnCli } from "../harness/cli.js";
import { ftpSource, sftpDestination } from "../harness/config.js";
import { tempDir, walk, writeConfig } from "../harness/files.js";
import { type FtpServer, startFtpServer } from "../harness/ftp.js";
import { type FtpFaultProxy, startFtpFaultProxy } from "../harness/ftpProxy.js";
import { type Broker, mosquittoPub, mosquittoSub, startMosquitto } from "../harness/mosquitto.js";
import { GrowingMovie } from "../harness/mp4.js";
import { freePort } from "../harness/ports.js";
import { runCommand, stopProcess, track } from "../harness/processes.js";
import { type SftpServer, startSftpServer } from "../harness/sshd.js";

/**
 * `serve` as motionEye users run it: the real CLI against real vsftpd (the camera), OpenSSH sftp
 * (the vault) and mosquitto, triggered by the real integrations/motioneye.sh through the real
 * mosquitto_pub, observed through retained MQTT topics, the destination's files and Debian's age.
 */

const SCRIPT = resolve(import.meta.dirname, "../../integrations/motioneye/motioneye.sh");
const BASE = "mev-serve";
const WAIT = 20_000;

interface ServeState {
  running: boolean;
  runsSinceStart: number;
  lastRun: { trigger: string; pending: number; uploaded: number } | null;
  totals: { clips: number };
}

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
  /** Occurrences of `pattern` in the output after `from`. */
  count(pattern: RegExp, from = 0): number {
    return this.output.slice(from).match(new RegExp(pattern.source, "g"))?.length ?? 0;
  }
  async waitForOutput(pattern: RegExp, from = 0, times = 1): Promise<void> {
    await until(() => this.count(pattern, from) >= times, `${pattern} x${times}`, this);
  }
  async stop(): Promise<number | null> {
    await stopProcess(this.child, 12_000);
    return this.child.exitCode;
  }
}

async function until(ok: () => boolean | Promise<boolean>, what: string, serve?: Serve) {
  const deadline = Date.now() + WAIT;
  while (Date.now() < deadline) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}\nserve output:\n${serve?.output.slice(-5000)}`);
}

/** motionEye running the hook: its own shebang, only our MQTT settings. */
async function motioneyeSh(args: string[], port: number): Promise<void> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("MQTT_")) env[k] = v;
  const run = await runCommand(SCRIPT, args, {
    env: { ...env, MQTT_HOST: "127.0.0.1", MQTT_PORT: String(port) },
    timeoutMs: 20_000,
  });
  expect(run.stderr).toBe("");
}

describe("serve", () => {
  let ftp: FtpServer;
  let sftp: SftpServer;
  let broker: Broker;
  let work: string;
  let identityFile: string;
  let serve: Serve;
  let config: string;
  const vault = () => join(sftp.root, "vault");

  const retained = async (topic: string, url = broker.url) =>
    (await mosquittoSub(url, topic, { count: 1, timeoutMs: 1500, retainedOnly: true }))[0]?.payload;
  const state = async (): Promise<ServeState | undefined> => {
    const text = await retained(`${BASE}/state`);
    return text ? (JSON.parse(text) as ServeState) : undefined;
  };

  const baseConfig = (over: Record<string, unknown> = {}) => ({
    source: ftpSource(ftp, { stableSeconds: 2 }),
    destination: sftpDestination(sftp, vault()),
    encryption: { identityFile },
    state: { dir: join(work, "state") },
    mqtt: {
      url: broker.url,
      baseTopic: BASE,
      homeassistant: { enabled: false },
    },
    schedule: { sync: "" },
    sync: { retries: 0 },
    ...over,
  });

  /** The clip's encrypted copy, decrypted with Debian's age, equals the camera's file. */
  async function expectBackedUp(relPath: string, dest = vault()): Promise<void> {
    const remote = join(dest, `${relPath}.age`);
    await until(() => existsSync(remote), `${remote}`, serve);
    // Complete on arrival: it only ever appears under its final name by rename.
    const plain = await ageCliDecrypt(remote, identityFile);
    expect(plain.equals(await readFile(join(ftp.localRoot, relPath)))).toBe(true);
  }

  beforeAll(async () => {
    [ftp, sftp, broker, work] = await Promise.all([
      startFtpServer(),
      startSftpServer(),
      startMosquitto(),
      tempDir(),
    ]);
    identityFile = join(work, "identity.txt");
    await ftp.writeClip("Camera1/2024-05-01/08-00-00.mp4", 150_000);
    config = await writeConfig(work, baseConfig());
    serve = new Serve(config);
    await until(async () => (await state())?.totals.clips === 1, "the startup run", serve);
  });

  afterAll(async () => {
    if (serve?.alive) await serve.stop();
    await Promise.allSettled([
      ftp?.close(),
      sftp?.close(),
      broker?.close(),
      rm(work, { recursive: true, force: true }),
    ]);
  });

  it("backs up the clip motioneye.sh names as File Storage's command, decryptable", async () => {
    expect(await retained(`${BASE}/availability`)).toBe("online");
    // motion runs the command right after closing the movie: its mtime is fresh.
    const clip = await ftp.writeClip("Camera1/2024-05-01/10-00-00.mp4", 400_000, new Date());
    await motioneyeSh(["Camera1", `/data/output/${clip.relPath}`], broker.port);
    await expectBackedUp(clip.relPath);
  });

  it("end command (no file): a movie still recording at the trigger is backed up once closed", async () => {
    const before = (await state())?.runsSinceStart ?? 0;
    const rel = "Camera1/2024-05-01/11-00-00.mp4";
    const movie = await readFile(join(REPO, "test/fixtures/motion/finished.mp4"));
    const growing = new GrowingMovie(join(ftp.localRoot, rel), movie);
    await growing.start();
    await growing.burst(30_000);
    // motion runs the end command before it closes the movie
    await motioneyeSh(["Camera1"], broker.port);
    // The triggered run saw the movie and left it, not closed yet...
    await until(
      async () => {
        const s = await state();
        return (s?.runsSinceStart ?? 0) > before && s?.lastRun?.pending === 1 && !s.running;
      },
      "a run that leaves the movie pending",
      serve,
    );
    expect(existsSync(join(vault(), `${rel}.age`))).toBe(false);
    // ...then motion wrote the rest of the movie and closed it.
    await growing.close();
    await expectBackedUp(rel);
    // With no further trigger: the service came back by itself.
    const s = await state();
    expect(s?.lastRun?.trigger).toBe("settle");
    expect(serve.count(/"msg":"MQTT trigger"/)).toBe(2);
  });

  it("a burst of 50 triggers leads to at most a few runs", async () => {
    await until(async () => (await state())?.running === false, "idle", serve);
    const before = (await state())?.runsSinceStart ?? 0;
    const mark = serve.output.length;
    const line = JSON.stringify({
      camera: "Camera1",
      file: "/data/output/Camera1/2024-05-01/10-00-00.mp4",
      event: "movie_end",
    });
    // 50 messages as fast as one connection sends them (-l: one message per line).
    await runCommand(
      "mosquitto_pub",
      [
        "-h",
        "127.0.0.1",
        "-p",
        String(broker.port),
        "-q",
        "1",
        "-t",
        "motioneye/Camera1/event",
        "-l",
      ],
      { input: `${Array(50).fill(line).join("\n")}\n`, timeoutMs: 10_000 },
    );
    await serve.waitForOutput(/"msg":"MQTT trigger"/, mark, 50);
    // Done once the state shows no run going and no new one for longer than a follow-up waits.
    let seen = -1;
    let since = Date.now();
    await until(
      async () => {
        const s = await state();
        const n = s?.runsSinceStart ?? 0;
        if (n !== seen || s?.running !== false) {
          seen = n;
          since = Date.now();
          return false;
        }
        return n > before && Date.now() - since > 1500;
      },
      "the runs to end",
      serve,
    );
    const runs = seen - before;
    expect(runs).toBeGreaterThanOrEqual(1);
    expect(runs).toBeLessThanOrEqual(3);
  });

  it("junk payloads keep the service up; a later good trigger still works", async () => {
    const mark = serve.output.length;
    const junk: Array<string | Uint8Array> = [
      randomBytes(2048),
      Uint8Array.from([0xff, 0xfe, 0xfd]),
      "x".repeat(200_000),
      '{"camera":42,"file":{"path":"/data/output/Camera1/2024-05-01/10-00-00.mp4"}}',
      '{"camera":"Camera1","file":"/data/output/../../../etc/2024-05-01/passwd.mp4"}',
      '{"camera":"Camera1","file":"/etc/passwd.mp4"}',
      '{"camera":"Camera1","file":',
      "[1,2,3]",
    ];
    for (const payload of junk) {
      await mosquittoPub(broker.url, "motioneye/Camera1/event", payload, { qos: 1 });
    }
    await serve.waitForOutput(/"msg":"odd trigger payload/, mark, junk.length);
    expect(serve.alive).toBe(true);

    const clip = await ftp.writeClip("Camera1/2024-05-01/12-00-00.mp4", 250_000);
    await motioneyeSh(["Camera1", `/var/lib/motioneye/${clip.relPath}`], broker.port);
    await expectBackedUp(clip.relPath);
    // Nothing but complete encrypted clips on the destination, nothing outside it.
    expect((await walk(vault())).every((f) => f.endsWith(".mp4.age"))).toBe(true);
  });

  it("the broker restarted mid-way: the service reconnects and the next trigger works", async () => {
    const mark = serve.output.length;
    await broker.stop();
    await broker.start();
    // The broker kept nothing (no persistence): `online` is back only once serve is.
    await until(async () => (await retained(`${BASE}/availability`)) === "online", "online", serve);
    await serve.waitForOutput(/"msg":"MQTT reconnected"/, mark);
    const clip = await ftp.writeClip("Camera1/2024-05-01/13-00-00.mp4", 200_000);
    await motioneyeSh(["Camera1", `/data/output/${clip.relPath}`], broker.port);
    await expectBackedUp(clip.relPath);
  });

  it("SIGTERM exits 0 with offline retained on the availability topic", async () => {
    expect(await serve.stop()).toBe(0);
    const avail = await mosquittoSub(broker.url, `${BASE}/availability`, {
      count: 1,
      timeoutMs: 1500,
      retainedOnly: true,
    });
    expect(avail.map((m) => [m.payload, m.retained])).toEqual([["offline", true]]);
    expect((await state())?.running).toBe(false);
  });

  it("a trigger sent while serve is down is delivered when it is back (persistent session)", async () => {
    await motioneyeSh(["Camera1", "/data/output/Camera1/2024-05-01/13-00-00.mp4"], broker.port);
    serve = new Serve(config);
    await serve.waitForOutput(/13-00-00\.mp4[^\n]*"msg":"MQTT trigger"/);
    expect(await serve.stop()).toBe(0);
  });

  it("without mqtt.url it runs the embedded broker, and motioneye.sh triggers through it", async () => {
    const dir = await tempDir();
    const port = await freePort();
    const dest = join(sftp.root, "vault-embedded");
    const cfg = await writeConfig(dir, {
      ...baseConfig(),
      destination: { ...baseConfig().destination, path: dest },
      state: { dir: join(dir, "state") },
      mqtt: {
        baseTopic: BASE,
        embeddedBroker: { port },
        homeassistant: { enabled: false },
      },
    });
    const embedded = new Serve(cfg);
    try {
      await embedded.waitForOutput(/embedded MQTT broker \(aedes\) on 127\.0\.0\.1:\d+/);
      const url = `mqtt://127.0.0.1:${port}`;
      await until(async () => (await retained(`${BASE}/availability`, url)) === "online", "online");
      // After the startup run, so that only the trigger can bring the new clip over.
      await until(
        async () => {
          const text = await retained(`${BASE}/state`, url);
          const s = text ? (JSON.parse(text) as ServeState) : undefined;
          return s?.lastRun?.trigger === "startup" && !s.running;
        },
        "the startup run",
        embedded,
      );
      const clip = await ftp.writeClip("Camera2/2024-05-02/09-00-00.mp4", 180_000);
      await motioneyeSh(["Camera2", `/data/output/${clip.relPath}`], port);
      const remote = join(dest, `${clip.relPath}.age`);
      await until(() => existsSync(remote), remote, embedded);
      expect(
        (await ageCliDecrypt(remote, identityFile)).equals(await readFile(clip.localPath)),
      ).toBe(true);
    } finally {
      expect(await embedded.stop()).toBe(0);
      await rm(dir, { recursive: true, force: true });
    }
  });

  // Two service start-ups: over 30 s on a loaded 2-core machine.
  it("retention: dry run first, then deletes old clips the camera no longer has", {
    timeout: 90_000,
  }, async () => {
    const dir = await tempDir();
    const camera = join(dir, "camera");
    const dest = join(dir, "vault");
    const settled = new Date(Date.now() - 3600_000);
    const write = async (id: string) => {
      await mkdir(dirname(join(camera, id)), { recursive: true });
      await writeFile(join(camera, id), randomBytes(10_000));
      await utimes(join(camera, id), settled, settled);
    };
    const old = "Camera1/2024-05-01/10-00-00.mp4";
    const recent = `Camera1/${localDate(new Date())}/10-00-00.mp4`;
    await write(old);
    await write(recent);
    const cfg = (dryRun: boolean) =>
      writeConfig(dir, {
        source: { type: "local", path: camera, stableSeconds: 0 },
        destination: { type: "local", path: dest },
        state: { dir: join(dir, "state") },
        mqtt: { embeddedBroker: { enabled: false } },
        schedule: { sync: "" },
        // every second (node-schedule takes a seconds field), so the test need not wait
        retention: { remoteDays: 30, schedule: "* * * * * *", dryRun },
      });
    const file = await cfg(true);
    let svc = new Serve(file);
    try {
      await until(() => existsSync(join(dest, `${old}.age`)), "the startup run", svc);
      // The camera still has the old clip: deleting it would only make the next sync upload it.
      await svc.waitForOutput(/kept while the camera still has them/);
      const mark = svc.output.length;
      await rm(join(camera, old));
      await svc.waitForOutput(/retention \(dry run\): 1 clip\(s\) dated before/, mark);
      expect(await svc.stop()).toBe(0);
      expect(await walk(dest)).toEqual([`${old}.age`, `${recent}.age`]);

      await cfg(false);
      svc = new Serve(file);
      await svc.waitForOutput(/retention: deleted 1 clip\(s\) dated before/);
      expect(await svc.stop()).toBe(0);
      expect(await walk(dest)).toEqual([`${recent}.age`]);
      const listed = JSON.parse((await runCli(["list", "--config", file, "--json"])).stdout);
      expect(listed.map((c: { id: string }) => c.id)).toEqual([recent]);
    } finally {
      if (svc.alive) await svc.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  describe("stopped mid-upload", () => {
    let proxy: FtpFaultProxy;
    beforeAll(async () => {
      proxy = await startFtpFaultProxy(ftp);
    });
    afterAll(async () => {
      await proxy?.close();
    });

    it("SIGTERM abandons the transfer: exit 0, nothing under the final name, no part file", async () => {
      const dir = await tempDir();
      const dest = join(sftp.root, "vault-abort");
      const big = await ftp.writeClip("Camera3/2024-05-03/10-00-00.mp4", 4_000_000);
      const cfg = await writeConfig(dir, {
        ...baseConfig(),
        source: { ...baseConfig().source, port: proxy.port },
        destination: { ...baseConfig().destination, path: dest },
        state: { dir: join(dir, "state") },
      });
      // Every download stops after 1 MB: the small clips pass, the big one hangs mid-way.
      proxy.setDataMode({ kind: "stall", afterBytes: 1_000_000 });
      const stalled = new Serve(cfg);
      try {
        await until(
          async () => (await walk(dest)).some((f) => f.startsWith(`${big.relPath}.age.part-`)),
          "the big clip's upload to start",
          stalled,
        );
        expect(await stalled.stop()).toBe(0);
        const left = await walk(dest);
        expect(left.filter((f) => f.includes(".part-"))).toEqual([]);
        expect(left).not.toContain(`${big.relPath}.age`);
        expect(left.length).toBeGreaterThan(0); // the small clips made it
        const listed = JSON.parse((await runCli(["list", "--config", cfg, "--json"])).stdout);
        expect(listed.map((c: { id: string }) => c.id)).not.toContain(big.relPath);
      } finally {
        proxy.setDataMode({ kind: "pass" });
        if (stalled.alive) await stalled.stop();
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
});
