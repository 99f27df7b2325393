/**
 * Sync throughput and CPU: 20 x 20 MiB clips from vsftpd, age-encrypted, to OpenSSH's sshd, by
 * the real CLI (`sync`, compiled as users run it) over each SFTP transport (ssh2, the default;
 * openssh), next to (a) OpenSSH's own `sftp` putting the same plaintext files to the same server
 * and (b) `rclone copy` from the same FTP server to an SFTP `crypt` remote. Then the same sync
 * and `sftp` pinned to one core (`taskset -c 0`, their children too): a Pi-sized figure.
 *
 * Each tool runs ROUNDS times in rotating order, each into a fresh destination folder that is
 * deleted afterwards; the median round counts. Our time is the sync run itself (its JSON
 * summary's startedAt..finishedAt: list, connect, download, hash, encrypt, upload, rename,
 * record), without the node process start. CPU is every process of the tool (node and its `ssh`;
 * `sftp` and its `ssh`; rclone), whole, start included, per MB.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { writeClipFiles } from "./lib/clips.js";
import { childrenCpuMs, MiB, mbps, median, round, timed, treeCpuMs } from "./lib/measure.js";
import { rcloneConfig, rcloneCopy, sftpPut } from "./lib/references.js";
import type { BenchRow } from "./lib/types.js";
import {
  type BenchServers,
  runCliMeasured,
  runSync,
  startServers,
  TRANSPORTS,
  type Transport,
  vaultConfig,
} from "./lib/vault.js";

const COUNT = 20;
const SIZE = 20 * MiB;
const ROUNDS = 3;
const CAMERA = "Camera1";
const DATE = "2024-05-01";
const MB = (COUNT * SIZE) / 1e6;

interface Sample {
  mbps: number;
  /** CPU ms per MB: the tool's own processes, sshd (all sessions), vsftpd (all sessions). */
  client: number;
  sshd: number;
  vsftpd: number;
}

/** Runs one transfer; `run` resolves with its duration in ms once the tool's process is reaped. */
async function measured(s: BenchServers, run: () => Promise<number>): Promise<Sample> {
  const before = {
    client: childrenCpuMs(),
    sshd: treeCpuMs(s.sftp.pid ?? 0),
    ftp: treeCpuMs(s.ftp.pid ?? 0),
  };
  const ms = await run();
  // Sessions end when the client disconnects: give the servers a moment to reap them.
  await new Promise((resolve) => setTimeout(resolve, 300));
  return {
    mbps: mbps(COUNT * SIZE, ms),
    client: (childrenCpuMs() - before.client) / MB,
    sshd: (treeCpuMs(s.sftp.pid ?? 0) - before.sshd) / MB,
    vsftpd: (treeCpuMs(s.ftp.pid ?? 0) - before.ftp) / MB,
  };
}

const med = (samples: Sample[], k: keyof Sample) => median(samples.map((x) => x[k]));

function describe(samples: Sample[], parts: Array<[string, keyof Sample]>): string {
  const cpu = parts.map(([label, k]) => `${label} ${round(med(samples, k))}`).join(", ");
  return `${samples.map((x) => round(x.mbps)).join(", ")} MB/s; CPU ms per MB (medians): ${cpu}`;
}

type Tool = (round: number) => Promise<number>;

/** ROUNDS rounds of every tool, in rotating order. */
async function rounds(s: BenchServers, tools: Record<string, Tool>) {
  const names = Object.keys(tools);
  const samples: Record<string, Sample[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < names.length; i++) {
      const name = names[(i + r) % names.length] as string;
      samples[name]?.push(await measured(s, () => (tools[name] as Tool)(r)));
    }
  }
  return samples;
}

export async function run(): Promise<BenchRow[]> {
  const s = await startServers();
  try {
    const clips = await writeClipFiles(s.ftp, {
      camera: CAMERA,
      date: DATE,
      count: COUNT,
      size: SIZE,
    });
    const rcloneConf = await rcloneConfig(s, join(s.sftp.root, "rclone"));

    const sftp =
      (pin: boolean): Tool =>
      async (r) => {
        const dir = join(s.sftp.root, `sftp-${pin ? "pinned-" : ""}${r}`);
        const { ms } = await timed(() =>
          sftpPut(
            s,
            clips.map((c) => c.localPath),
            dir,
            { pin },
          ),
        );
        await rm(dir, { recursive: true, force: true });
        return ms;
      };
    const ours =
      (transport: Transport, pin: boolean): Tool =>
      async (r) => {
        const cfg = await vaultConfig(s, `sync-${transport}-${pin ? "pinned-" : ""}${r}`, {
          transport,
        });
        const result = await runSync(cfg.file, [], { pin });
        if (result.summary.uploaded !== COUNT) {
          throw new Error(`sync uploaded ${result.summary.uploaded} of ${COUNT} clips`);
        }
        await rm(cfg.destination, { recursive: true, force: true });
        return result.runMs;
      };
    const rclone: Tool = async (r) => {
      const { ms } = await timed(() =>
        rcloneCopy(rcloneConf, `${s.ftp.path}/${CAMERA}/${DATE}`, `r${r}`),
      );
      await rm(join(s.sftp.root, "rclone"), { recursive: true, force: true });
      return ms;
    };

    const free = await rounds(s, {
      sftp: sftp(false),
      ssh2: ours("ssh2", false),
      openssh: ours("openssh", false),
      rclone,
    });
    const pinned = await rounds(s, {
      sftp: sftp(true),
      ssh2: ours("ssh2", true),
      openssh: ours("openssh", true),
    });
    // The CPU a CLI process spends starting (loading its modules), to tell it from the transfer's.
    const idle = await runCliMeasured(["status", "--config", (await vaultConfig(s, "idle")).file]);
    const startCpu = idle.cpuMs / MB;

    const name = `sync, ${COUNT} x 20 MiB, FTP -> age -> SFTP`;
    const sftpFree = free.sftp as Sample[];
    const sftpPinned = pinned.sftp as Sample[];
    const rows: BenchRow[] = [];
    for (const t of TRANSPORTS) {
      const ourFree = free[t] as Sample[];
      rows.push({
        name: `${name} (transport ${t}) vs OpenSSH sftp put`,
        value: med(ourFree, "mbps"),
        unit: "MB/s",
        reference: {
          name: "OpenSSH sftp put of the plaintext",
          value: med(sftpFree, "mbps"),
          unit: "MB/s",
        },
        target: ">= 0.8x",
        met: med(ourFree, "mbps") / med(sftpFree, "mbps") >= 0.8,
        note: `median of ${ROUNDS}; ours ${describe(ourFree, [
          ["node+ssh", "client"],
          ["sshd", "sshd"],
          ["vsftpd", "vsftpd"],
        ])}; sftp ${describe(sftpFree, [
          ["sftp+ssh", "client"],
          ["sshd", "sshd"],
        ])}`,
      });
    }
    for (const t of TRANSPORTS) {
      const ours = med(free[t] as Sample[], "client");
      const theirs = med(sftpFree, "client");
      rows.push({
        name: `CPU (user+sys) per MB of that sync (transport ${t}), whole process tree`,
        value: ours,
        unit: "ms/MB",
        reference: {
          name: "OpenSSH sftp + ssh putting the same files",
          value: theirs,
          unit: "ms/MB",
        },
        lowerIsBetter: true,
        target: "<= 2x sftp+ssh (ratio >= 0.5x)",
        met: ours / theirs <= 2,
        note: `${round(ours / theirs)}x sftp+ssh; of ours, ${round(startCpu)} ms/MB is the CLI's start (\`status\` uses that much): ${round((ours - startCpu) / theirs)}x without it`,
      });
    }
    for (const t of TRANSPORTS) {
      const ourPinned = pinned[t] as Sample[];
      rows.push({
        name: `${name} (transport ${t}), pinned to one core (taskset -c 0), vs sftp put pinned alike`,
        value: med(ourPinned, "mbps"),
        unit: "MB/s",
        reference: {
          name: "OpenSSH sftp put, taskset -c 0",
          value: med(sftpPinned, "mbps"),
          unit: "MB/s",
        },
        target: ">= 0.8x",
        met: med(ourPinned, "mbps") / med(sftpPinned, "mbps") >= 0.8,
        note: `median of ${ROUNDS}; ours ${describe(ourPinned, [
          ["node+ssh", "client"],
          ["sshd", "sshd"],
        ])}; sftp ${describe(sftpPinned, [["sftp+ssh", "client"]])}`,
      });
    }
    const rc = free.rclone as Sample[];
    rows.push({
      name: `${name} (transport ssh2) vs rclone copy ftp -> sftp crypt`,
      value: med(free.ssh2 as Sample[], "mbps"),
      unit: "MB/s",
      reference: {
        name: "rclone copy to a crypt remote (defaults)",
        value: med(rc, "mbps"),
        unit: "MB/s",
      },
      target: ">= 2x",
      met: med(free.ssh2 as Sample[], "mbps") / med(rc, "mbps") >= 2,
      note: `median of ${ROUNDS}; rclone ${describe(rc, [
        ["rclone", "client"],
        ["sshd", "sshd"],
        ["vsftpd", "vsftpd"],
      ])}`,
    });
    return rows;
  } finally {
    await s.close();
  }
}
