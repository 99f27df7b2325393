/**
 * Restore throughput: the CLI's `restore <date>` (SFTP -> age -d -> sha256 check -> file) of
 * 20 x 20 MiB clips over each SFTP transport, next to OpenSSH's `sftp` getting the same stored
 * files from the same server. Rounds rotate; the median counts. Both are timed as commands, start
 * to exit (the CLI's start is noted: `restore` has no summary with its own timings).
 */
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { writeClipFiles } from "./lib/clips.js";
import { childrenCpuMs, MiB, mbps, median, round, timed } from "./lib/measure.js";
import { sftpGet } from "./lib/references.js";
import type { BenchRow } from "./lib/types.js";
import {
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
const DATE = "2024-05-01";
const MB = (COUNT * SIZE) / 1e6;

interface Sample {
  mbps: number;
  cpuPerMb: number;
}

export async function run(): Promise<BenchRow[]> {
  const s = await startServers();
  try {
    const clips = await writeClipFiles(s.ftp, {
      camera: "Camera1",
      date: DATE,
      count: COUNT,
      size: SIZE,
    });
    const vault = await vaultConfig(s, "restore-ssh2");
    const synced = await runSync(vault.file);
    if (synced.summary.uploaded !== COUNT) throw new Error("the vault to restore is incomplete");
    const configs: Record<Transport, string> = {
      ssh2: vault.file,
      openssh: (
        await vaultConfig(s, "restore-openssh", { transport: "openssh", sameVaultAs: vault })
      ).file,
    };
    const stored = clips.map((c) => join(vault.destination, `${c.relPath}.age`));
    const out = join(s.work, "restored");

    const tools: Record<string, () => Promise<number>> = {
      sftp: async () => {
        await mkdir(out, { recursive: true });
        return (await timed(() => sftpGet(s, stored, out))).ms;
      },
    };
    for (const t of TRANSPORTS) {
      tools[t] = async () => {
        const r = await runCliMeasured(["restore", DATE, "--config", configs[t], "--out", out]);
        if (r.code !== 0) throw new Error(`restore (${t}) failed: ${r.stderr.slice(-1000)}`);
        return r.wallMs;
      };
    }
    const names = Object.keys(tools);
    const samples: Record<string, Sample[]> = Object.fromEntries(names.map((n) => [n, []]));
    for (let r = 0; r < ROUNDS; r++) {
      for (let i = 0; i < names.length; i++) {
        const name = names[(i + r) % names.length] as string;
        const cpu0 = childrenCpuMs();
        const ms = await (tools[name] as () => Promise<number>)();
        await new Promise((resolve) => setTimeout(resolve, 200));
        samples[name]?.push({
          mbps: mbps(COUNT * SIZE, ms),
          cpuPerMb: (childrenCpuMs() - cpu0) / MB,
        });
        await rm(out, { recursive: true, force: true });
      }
    }
    const idle = await runCliMeasured(["status", "--config", vault.file]);
    const med = (name: string, k: keyof Sample) => median((samples[name] ?? []).map((x) => x[k]));
    return TRANSPORTS.map((t) => ({
      name: `restore, ${COUNT} x 20 MiB, SFTP -> age -d -> sha256 -> file (transport ${t}) vs sftp get`,
      value: med(t, "mbps"),
      unit: "MB/s",
      reference: {
        name: "OpenSSH sftp get of the stored files",
        value: med("sftp", "mbps"),
        unit: "MB/s",
      },
      target: ">= 0.8x",
      met: med(t, "mbps") / med("sftp", "mbps") >= 0.8,
      note: `median of ${ROUNDS}, whole commands; ours ${(samples[t] ?? []).map((x) => round(x.mbps)).join(", ")} MB/s, CPU ${round(med(t, "cpuPerMb"))} ms/MB (node+ssh); sftp ${(samples.sftp ?? []).map((x) => round(x.mbps)).join(", ")} MB/s, CPU ${round(med("sftp", "cpuPerMb"))} ms/MB (sftp+ssh); the CLI's start alone takes ${Math.round(idle.wallMs)} ms (\`status\`)`,
    }));
  } finally {
    await s.close();
  }
}
