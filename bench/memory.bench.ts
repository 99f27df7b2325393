/**
 * Peak RSS of the CLI (compiled, as users run it) syncing one 512 MiB clip FTP -> age -> SFTP,
 * and restoring it, over each SFTP transport, against the same CLI's footprint doing no transfer
 * (`status`). Each restored file is checked against the original's sha256; everything is deleted.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { writeClipFile } from "./lib/clips.js";
import { MiB, mbps, round } from "./lib/measure.js";
import type { BenchRow } from "./lib/types.js";
import { runCliMeasured, runSync, startServers, TRANSPORTS, vaultConfig } from "./lib/vault.js";

const SIZE = 512 * MiB;
const LIMIT_MB = 150;
const MB = 1e6;
const CLIP = "Camera1/2024-05-01/12-00-00.mp4";

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

export async function run(): Promise<BenchRow[]> {
  const s = await startServers();
  try {
    const clip = await writeClipFile(s.ftp, CLIP, SIZE);
    const rows: BenchRow[] = [];
    let baseline: BenchRow["reference"];
    for (const transport of TRANSPORTS) {
      const cfg = await vaultConfig(s, `memory-${transport}`, { transport });
      if (!baseline) {
        const idle = await runCliMeasured(["status", "--config", cfg.file, "--json"]);
        if (idle.code !== 0) throw new Error(`status failed: ${idle.stderr.slice(-1000)}`);
        baseline = { name: "same CLI, no transfer (status)", value: idle.peakRss / MB, unit: "MB" };
      }
      const sync = await runSync(cfg.file);
      rows.push({
        name: `peak RSS, sync of one 512 MiB clip FTP -> age -> SFTP (transport ${transport})`,
        value: sync.peakRss / MB,
        unit: "MB",
        reference: baseline,
        lowerIsBetter: true,
        target: `<= ${LIMIT_MB} MB`,
        met: sync.peakRss / MB <= LIMIT_MB,
        note: `compiled CLI (node ${process.version}); the sync ran at ${round(mbps(SIZE, sync.runMs))} MB/s`,
      });
      const out = join(s.work, "restored");
      const restore = await runCliMeasured(["restore", CLIP, "--config", cfg.file, "--out", out]);
      if (restore.code !== 0) throw new Error(`restore failed: ${restore.stderr.slice(-1000)}`);
      const same = (await sha256File(join(out, CLIP))) === clip.sha256;
      await rm(out, { recursive: true, force: true });
      // Keep the disk use down: this vault is done with.
      await rm(cfg.destination, { recursive: true, force: true });
      rows.push({
        name: `peak RSS, restore of that clip SFTP -> age -d -> file (transport ${transport})`,
        value: restore.peakRss / MB,
        unit: "MB",
        reference: baseline,
        lowerIsBetter: true,
        target: `<= ${LIMIT_MB} MB`,
        met: restore.peakRss / MB <= LIMIT_MB && same,
        note: `${same ? "restored bytes identical to the original" : "RESTORED BYTES DIFFER FROM THE ORIGINAL"}; whole command ${round(mbps(SIZE, restore.wallMs))} MB/s`,
      });
    }
    return rows;
  } finally {
    await s.close();
  }
}
