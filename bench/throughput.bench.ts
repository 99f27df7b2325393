/**
 * Sync throughput: 20 x 20 MiB clips from vsftpd, age-encrypted, to OpenSSH's sshd, by the real
 * CLI (`sync`, compiled as users run it), next to (a) OpenSSH's own `sftp` putting the same
 * plaintext files to the same server and (b) `rclone copy` from the same FTP server to an SFTP
 * `crypt` remote.
 *
 * Each tool runs ROUNDS times in rotating order, each into a fresh destination folder that is
 * deleted afterwards; the best round of each counts (the least disturbed by the rest of the
 * machine). Our figure is the sync run itself (its JSON summary's startedAt..finishedAt: list,
 * connect, download, hash, encrypt, upload, rename, record), without the node process start.
 * The CPU time every process spent per MB is noted too: it says what limits each tool.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { writeClipFiles } from "./lib/clips.js";
import { childrenCpuMs, MiB, mbps, round, timed, treeCpuMs } from "./lib/measure.js";
import { rcloneConfig, rcloneCopy, sftpPut } from "./lib/references.js";
import type { BenchRow } from "./lib/types.js";
import {
  type BenchServers,
  runCliMeasured,
  runSync,
  startServers,
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

function best(samples: Sample[]): Sample {
  return samples.reduce((a, b) => (b.mbps > a.mbps ? b : a));
}

function describe(samples: Sample[], parts: Array<[string, keyof Sample]>): string {
  const avg = (k: keyof Sample) => samples.reduce((n, x) => n + x[k], 0) / samples.length;
  const cpu = parts.map(([label, k]) => `${label} ${round(avg(k))}`).join(", ");
  return `${samples.map((x) => round(x.mbps)).join(", ")} MB/s; CPU ms per MB: ${cpu}`;
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
    const oursWall: number[] = [];

    const tools: Record<"sftp" | "ours" | "rclone", (round: number) => Promise<number>> = {
      sftp: async (r) => {
        const dir = join(s.sftp.root, `sftp-${r}`);
        const { ms } = await timed(() =>
          sftpPut(
            s,
            clips.map((c) => c.localPath),
            dir,
          ),
        );
        await rm(dir, { recursive: true, force: true });
        return ms;
      },
      ours: async (r) => {
        const cfg = await vaultConfig(s, `sync-${r}`);
        const result = await runSync(cfg.file);
        if (result.summary.uploaded !== COUNT) {
          throw new Error(`sync uploaded ${result.summary.uploaded} of ${COUNT} clips`);
        }
        oursWall.push(result.wallMs);
        await rm(cfg.destination, { recursive: true, force: true });
        return result.runMs;
      },
      rclone: async (r) => {
        const { ms } = await timed(() =>
          rcloneCopy(rcloneConf, `${s.ftp.path}/${CAMERA}/${DATE}`, `r${r}`),
        );
        await rm(join(s.sftp.root, "rclone"), { recursive: true, force: true });
        return ms;
      },
    };
    const order = Object.keys(tools) as Array<keyof typeof tools>;
    const samples: Record<keyof typeof tools, Sample[]> = { sftp: [], ours: [], rclone: [] };
    for (let r = 0; r < ROUNDS; r++) {
      for (let i = 0; i < order.length; i++) {
        const name = order[(i + r) % order.length] as keyof typeof tools;
        const tool = tools[name];
        samples[name].push(await measured(s, () => tool(r)));
      }
    }

    const ours = best(samples.ours).mbps;
    const sftp = best(samples.sftp).mbps;
    const rclone = best(samples.rclone).mbps;
    const name = `sync throughput, ${COUNT} x 20 MiB, FTP -> age -> SFTP`;
    // The CPU a CLI process spends starting (loading its modules), to tell it from the transfer's.
    const idle = await runCliMeasured(["status", "--config", (await vaultConfig(s, "idle")).file]);
    const startCpu = round(idle.cpuMs / MB);
    const oursNote = `ours ${describe(samples.ours, [
      ["node", "client"],
      ["sshd", "sshd"],
      ["vsftpd", "vsftpd"],
    ])}; of node's, ${startCpu} is its start (\`status\` uses that much); counting the node process start in the time too: ${round(mbps(COUNT * SIZE, Math.min(...oursWall)))} MB/s`;
    return [
      {
        name: `${name} vs OpenSSH sftp put`,
        value: ours,
        unit: "MB/s",
        reference: { name: "OpenSSH sftp put of the plaintext", value: sftp, unit: "MB/s" },
        target: ">= 0.8x",
        met: ours / sftp >= 0.8,
        note: `best of ${ROUNDS}; ${oursNote}; sftp ${describe(samples.sftp, [
          ["sftp+ssh", "client"],
          ["sshd", "sshd"],
        ])}`,
      },
      {
        name: `${name} vs rclone copy ftp -> sftp crypt`,
        value: ours,
        unit: "MB/s",
        reference: {
          name: "rclone copy to a crypt remote (defaults)",
          value: rclone,
          unit: "MB/s",
        },
        target: ">= 2x",
        met: ours / rclone >= 2,
        note: `best of ${ROUNDS}; rclone ${describe(samples.rclone, [
          ["rclone", "client"],
          ["sshd", "sshd"],
          ["vsftpd", "vsftpd"],
        ])}`,
      },
    ];
  } finally {
    await s.close();
  }
}
