/**
 * The upload cap: a sync with `sync.bandwidthLimit: 2M` (2 MiB/s for every upload together, two
 * clips at a time) over each SFTP transport. The achieved rate is the bytes the run uploaded over
 * its whole run time (listing, connecting, renames and the manifest included), against the cap.
 */
import { writeClipFiles } from "./lib/clips.js";
import { MiB, round } from "./lib/measure.js";
import type { BenchRow } from "./lib/types.js";
import { runSync, startServers, TRANSPORTS, vaultConfig } from "./lib/vault.js";

const CAP = "2M";
const CAP_BYTES = 2 * MiB;
const COUNT = 6;
const SIZE = 4 * MiB;

export async function run(): Promise<BenchRow[]> {
  const s = await startServers();
  try {
    await writeClipFiles(s.ftp, {
      camera: "Camera1",
      date: "2024-05-01",
      count: COUNT,
      size: SIZE,
    });
    const rows: BenchRow[] = [];
    for (const transport of TRANSPORTS) {
      const cfg = await vaultConfig(s, `capped-${transport}`, {
        transport,
        sync: { bandwidthLimit: CAP },
      });
      const r = await runSync(cfg.file);
      // The ciphertext that went up: age adds a header and 16 bytes per 64 KiB.
      const sent = r.summary.bytes * (1 + 16 / 65536) + COUNT * 200;
      const rate = sent / 1e6 / (r.runMs / 1000);
      const cap = CAP_BYTES / 1e6;
      rows.push({
        name: `achieved upload rate, sync of ${COUNT} x 4 MiB with sync.bandwidthLimit ${CAP} (transport ${transport})`,
        value: rate,
        unit: "MB/s",
        reference: { name: `the cap, ${CAP} = 2 MiB/s`, value: cap, unit: "MB/s" },
        target: "within 15% of the cap",
        met: Math.abs(rate / cap - 1) <= 0.15,
        note: `${r.summary.uploaded} clips in ${round(r.runMs / 1000)} s, two at a time through one shared token bucket`,
      });
    }
    return rows;
  } finally {
    await s.close();
  }
}
