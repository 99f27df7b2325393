/**
 * Trigger latency: motionEye's File Storage command (integrations/motioneye/motioneye.sh CAMERA
 * FILE, through the real mosquitto_pub and a real mosquitto) until the 5 MB clip's encrypted copy
 * is on the SFTP destination under its final name, with the real `serve` running against vsftpd
 * and OpenSSH's sshd on loopback. 20 clips, one after the other: median and p95.
 *
 * References measured in the same run: OpenSSH's own `sftp` putting the same 5 MB file (a fresh
 * connection each time, as a cron job would), and a bare MQTT round trip (mosquitto_pub ->
 * mosquitto_sub) on the same broker.
 *
 * The clips are written settled (older than source.stableSeconds) before the trigger, so the
 * figure is the service's own path: message, queue, listing, download, encryption, upload,
 * rename. A clip whose mtime is fresh waits for source.stableSeconds first; the last row shows
 * that with stableSeconds 2.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { spawnCli } from "../test/harness/cli.js";
import { ftpSource, sftpDestination } from "../test/harness/config.js";
import { writeConfig } from "../test/harness/files.js";
import { type Broker, mosquittoSub, startMosquitto } from "../test/harness/mosquitto.js";
import { runCommand, stopProcess } from "../test/harness/processes.js";
import { onCleanup } from "./lib/cleanup.js";
import { MiB, median, quantile, round, timed } from "./lib/measure.js";
import { sftpPut } from "./lib/references.js";
import type { BenchRow } from "./lib/types.js";
import { type BenchServers, startServers } from "./lib/vault.js";

const SAMPLES = 20;
const FRESH_SAMPLES = 5;
const SIZE = 5 * MiB;
const TARGET_MS = 1000;
const SCRIPT = resolve(import.meta.dirname, "../integrations/motioneye/motioneye.sh");
const BASE = "mev-bench";

interface Service {
  /** Its own base topic: one service's retained state must not pass for the next one's. */
  base: string;
  child: ChildProcess;
  output(): string;
  destination: string;
}

async function waitFor(ok: () => boolean | Promise<boolean>, what: string, svc?: Service) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for ${what}\n${svc?.output().slice(-3000) ?? ""}`);
}

async function startServe(
  s: BenchServers,
  broker: Broker,
  name: string,
  stableSeconds: number,
): Promise<Service> {
  const dir = join(s.work, name);
  const base = `${BASE}-${name}`;
  const destination = join(s.sftp.root, name);
  await mkdir(dir, { recursive: true });
  const file = await writeConfig(dir, {
    source: ftpSource(s.ftp, { stableSeconds }),
    destination: sftpDestination(s.sftp, destination),
    encryption: { identityFile: s.identityFile },
    state: { dir: join(dir, "state") },
    mqtt: { url: broker.url, baseTopic: base, homeassistant: { enabled: false } },
    schedule: { sync: "" },
    log: { level: "warn" },
  });
  const child = spawnCli(["serve", "--config", file]);
  let out = "";
  child.stderr?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const svc: Service = { base, child, output: () => out, destination };
  onCleanup(() => stopProcess(child, 12_000));
  // Up when the broker holds its retained state from the startup run.
  await waitFor(
    async () => {
      const m = await mosquittoSub(broker.url, `${base}/state`, {
        count: 1,
        timeoutMs: 1000,
        retainedOnly: true,
      });
      const st = m[0]
        ? (JSON.parse(m[0].payload) as { lastRun?: unknown; running: boolean })
        : null;
      return Boolean(st?.lastRun) && st?.running === false;
    },
    "serve to start",
    svc,
  );
  return svc;
}

/** motioneye.sh CAMERA FILE, as motion runs it, until the clip's `.age` is on the destination. */
async function triggerToDestination(
  svc: Service,
  broker: Broker,
  relPath: string,
): Promise<number> {
  const remote = join(svc.destination, `${relPath}.age`);
  const { ms } = await timed(async () => {
    await runCommand(SCRIPT, ["Camera1", `/data/output/${relPath}`], {
      env: { ...process.env, MQTT_HOST: broker.host, MQTT_PORT: String(broker.port) },
      timeoutMs: 20_000,
    });
    await waitFor(() => existsSync(remote), remote, svc);
  });
  return ms;
}

/** mosquitto_pub -> mosquitto_sub on the same broker: what MQTT alone costs. */
async function mqttRoundTrip(broker: Broker): Promise<number> {
  const sub = mosquittoSub(broker.url, "mev-bench/ping", { count: 1, timeoutMs: 10_000 });
  await sub.ready;
  const { ms } = await timed(async () => {
    await runCommand("mosquitto_pub", [
      "-h",
      broker.host,
      "-p",
      String(broker.port),
      "-q",
      "1",
      "-t",
      "mev-bench/ping",
      "-m",
      "x",
    ]);
    await sub;
  });
  return ms;
}

export async function run(): Promise<BenchRow[]> {
  const s = await startServers();
  const broker = await startMosquitto();
  const closeBroker = onCleanup(() => broker.close());
  try {
    const settled = new Date(Date.now() - 3600_000);
    // A lived-in camera: 10 days of 10 small clips each, backed up by serve's startup run; every
    // triggered run lists them all again.
    for (let d = 10; d < 20; d++) {
      for (let i = 0; i < 10; i++) {
        await s.ftp.writeClip(`Camera1/2024-04-${d}/08-00-0${i}.mp4`, 10_000, settled);
      }
    }
    const svc = await startServe(s, broker, "latency", 10);
    const ours: number[] = [];
    const sftp: number[] = [];
    const mqtt: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const id = `Camera1/2024-05-02/lat-${String(i).padStart(2, "0")}.mp4`;
      const clip = await s.ftp.writeClip(id, SIZE, settled);
      ours.push(await triggerToDestination(svc, broker, clip.relPath));
      if (i % 4 === 0) {
        const dir = join(s.sftp.root, `sftp-ref-${i}`);
        sftp.push((await timed(() => sftpPut(s, [clip.localPath], dir))).ms);
        await rm(dir, { recursive: true, force: true });
        mqtt.push(await mqttRoundTrip(broker));
      }
    }
    await stopProcess(svc.child, 12_000);

    // Fresh clips (mtime now, as when motion has just closed the file): the stable wait first.
    const fresh = await startServe(s, broker, "latency-fresh", 2);
    const freshMs: number[] = [];
    for (let i = 0; i < FRESH_SAMPLES; i++) {
      const clip = await s.ftp.writeClip(`Camera1/2024-05-03/fresh-${i}.mp4`, SIZE, new Date());
      freshMs.push(await triggerToDestination(fresh, broker, clip.relPath));
    }
    await stopProcess(fresh.child, 12_000);

    const med = median(ours);
    const p95 = quantile(ours, 0.95);
    const sftpMed = median(sftp);
    const mqttMed = median(mqtt);
    const list = (v: number[]) => v.map((x) => Math.round(x)).join(", ");
    return [
      {
        name: "trigger latency (motioneye.sh with file -> 5 MB clip on SFTP), median of 20",
        value: round(med),
        unit: "ms",
        reference: {
          name: "OpenSSH sftp put of the same 5 MB file",
          value: round(sftpMed),
          unit: "ms",
        },
        lowerIsBetter: true,
        target: `<= ${TARGET_MS} ms`,
        met: med <= TARGET_MS,
        note: `samples (ms): ${list(ours)}; sftp put (ms): ${list(sftp)}`,
      },
      {
        name: "trigger latency (motioneye.sh with file -> 5 MB clip on SFTP), p95 of 20",
        value: round(p95),
        unit: "ms",
        reference: {
          name: "OpenSSH sftp put of the same 5 MB file",
          value: round(sftpMed),
          unit: "ms",
        },
        lowerIsBetter: true,
        target: `<= ${TARGET_MS} ms`,
        met: p95 <= TARGET_MS,
        note: `for scale, a bare MQTT round trip (mosquitto_pub -> mosquitto_sub) took ${round(mqttMed)} ms (median of ${list(mqtt)})`,
      },
      {
        name: `trigger latency with a fresh clip (mtime now), source.stableSeconds 2, median of ${FRESH_SAMPLES}`,
        value: round(median(freshMs)),
        unit: "ms",
        lowerIsBetter: true,
        note: `samples (ms): ${list(freshMs)}: the clip named by the storage command is backed up at once, without waiting out stableSeconds`,
      },
    ];
  } finally {
    await closeBroker();
    await s.close();
  }
}
