/**
 * The manifest at scale.
 *
 * 1. Recording one clip (what sync does after each upload) in a vault already holding 1k, 10k
 *    and 100k clips (a vault that grew day by day, see lib/manifestData.ts), into a day that
 *    already has half a day's clips. The manifest is sharded by day, so this must not grow with
 *    the vault. The 1k figure is compared with the floor: writing the same two files (the day's
 *    shard and the state file) as durably as the manifest must (temporary file, fsync, rename,
 *    fsync of the folder), both at once as the manifest does.
 * 2. A no-op sync (the real CLI against vsftpd + sshd, nothing new on the camera), with 1k and
 *    with 100k clips in the manifest.
 */
import { cp, mkdtemp, open, readFile, rename, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Manifest } from "../src/manifest/manifest.js";
import { onCleanup } from "./lib/cleanup.js";
import { writeClipFile } from "./lib/clips.js";
import { CLIPS_PER_DAY, clipRecord, fillManifest } from "./lib/manifestData.js";
import { median, round } from "./lib/measure.js";
import type { BenchRow } from "./lib/types.js";
import { runSync, startServers, vaultConfig } from "./lib/vault.js";

const SIZES = [1_000, 10_000, 100_000];
const ROUNDS = 10;
const PER_ROUND = 6;
const TODAY = "2025-06-01";
const FLAT = 1.5;
const NOOP_ROUNDS = 5;

/** A Manifest on TODAY as sync has it after a while: half a day recorded, the day loaded. */
async function openOnToday(stateDir: string): Promise<{ manifest: Manifest; next: number }> {
  const manifest = await Manifest.open(stateDir);
  const half = CLIPS_PER_DAY / 2;
  for (let i = 0; i < half; i++) await manifest.record(clipRecord(TODAY, i % 4, i));
  await manifest.reload();
  await manifest.listDate(TODAY); // as sync does before it uploads
  return { manifest, next: half };
}

/** The least a durable write of one file costs: what the manifest does, by hand. */
async function writeDurably(path: string, data: Buffer): Promise<void> {
  const temp = `${path}.tmp`;
  const file = await open(temp, "w");
  try {
    await file.writeFile(data);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, path);
  const dir = await open(dirname(path), "r");
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

async function recordRows(): Promise<BenchRow[]> {
  const root = await mkdtemp(join(tmpdir(), "mevault-bench-manifest-"));
  const done = onCleanup(() => rm(root, { recursive: true, force: true }));
  try {
    const vaults = [];
    for (const n of SIZES) {
      const dir = join(root, String(n));
      const days = await fillManifest(dir, n, TODAY);
      vaults.push({
        n,
        dir,
        days: days.length,
        times: [] as number[],
        ...(await openOnToday(dir)),
      });
    }
    const first = vaults[0] as (typeof vaults)[number];
    const shard = await readFile(join(first.dir, "manifest", `${TODAY}.json`));
    const state = await readFile(join(first.dir, "state.json"));
    const floor: number[] = [];
    // Round-robin, so that the machine's load drifts over every size alike.
    for (let round = 0; round < ROUNDS; round++) {
      for (const v of vaults) {
        for (let i = 0; i < PER_ROUND; i++) {
          const rec = clipRecord(TODAY, v.next % 4, v.next);
          v.next++;
          const t0 = performance.now();
          await v.manifest.record(rec);
          v.times.push(performance.now() - t0);
        }
      }
      for (let i = 0; i < PER_ROUND; i++) {
        const t0 = performance.now();
        await Promise.all([
          writeDurably(join(first.dir, "floor-shard.json"), shard),
          writeDurably(join(first.dir, "floor-state.json"), state),
        ]);
        floor.push(performance.now() - t0);
      }
    }
    const firstMs = median(first.times);
    return await Promise.all(
      vaults.map(async (v, i): Promise<BenchRow> => {
        const shardBytes = (await stat(join(v.dir, "manifest", `${TODAY}.json`))).size;
        const name = `manifest: record one clip, ${v.n.toLocaleString("en")} clips in the vault`;
        const note = `${v.days} days x ${CLIPS_PER_DAY} clips; median of ${v.times.length}, sizes interleaved; the day's shard is ${round(shardBytes / 1024)} KiB`;
        const ms = median(v.times);
        if (i === 0) {
          return {
            name,
            value: ms,
            unit: "ms",
            reference: {
              name: "the same two files written durably (temp, fsync, rename, fsync dir)",
              value: median(floor),
              unit: "ms",
            },
            lowerIsBetter: true,
            note,
          };
        }
        return {
          name,
          value: ms,
          unit: "ms",
          reference: {
            name: `same, ${first.n.toLocaleString("en")} clips`,
            value: firstMs,
            unit: "ms",
          },
          lowerIsBetter: true,
          target: `flat: <= ${FLAT}x the 1k cost`,
          met: ms <= FLAT * firstMs,
          note,
        };
      }),
    );
  } finally {
    await done();
  }
}

async function noopRows(): Promise<BenchRow[]> {
  const s = await startServers();
  try {
    // 20 small clips on the camera today, backed up once.
    for (let i = 0; i < 20; i++) {
      await writeClipFile(
        s.ftp,
        `Camera${(i % 2) + 1}/${TODAY}/10-00-${String(i).padStart(2, "0")}.mp4`,
        200_000,
      );
    }
    const first = await vaultConfig(s, "noop-first");
    const initial = await runSync(first.file);
    if (initial.summary.uploaded !== 20)
      throw new Error(`first sync uploaded ${initial.summary.uploaded}`);

    const variants = [] as Array<{ n: number; file: string; ms: number[] }>;
    for (const n of [SIZES[0] as number, SIZES[SIZES.length - 1] as number]) {
      const cfg = await vaultConfig(s, `noop-${n}`);
      await cp(first.stateDir, cfg.stateDir, { recursive: true });
      await fillManifest(cfg.stateDir, n - 20, TODAY);
      variants.push({ n, file: cfg.file, ms: [] });
    }
    for (let round = 0; round < NOOP_ROUNDS; round++) {
      for (const v of variants) {
        const r = await runSync(v.file);
        if (r.summary.uploaded !== 0)
          throw new Error(`a no-op sync uploaded ${r.summary.uploaded}`);
        v.ms.push(r.runMs);
      }
    }
    const [small, big] = variants as [(typeof variants)[number], (typeof variants)[number]];
    return [
      {
        name: `no-op sync (20 clips on the camera, all backed up), ${big.n.toLocaleString("en")} clips in the vault`,
        value: median(big.ms),
        unit: "ms",
        reference: {
          name: `same, ${small.n.toLocaleString("en")} clips in the vault`,
          value: median(small.ms),
          unit: "ms",
        },
        lowerIsBetter: true,
        target: `flat: <= ${FLAT}x`,
        met: median(big.ms) <= FLAT * median(small.ms),
        note: `real CLI, run time from its summary (list the camera, plan, record the run), median of ${NOOP_ROUNDS}, interleaved: ${big.ms.map(round).join(", ")} vs ${small.ms.map(round).join(", ")} ms`,
      },
    ];
  } finally {
    await s.close();
  }
}

export async function run(): Promise<BenchRow[]> {
  return [...(await recordRows()), ...(await noopRows())];
}
