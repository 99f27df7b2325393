/**
 * Realistic manifests of any size, made fast: the clips of a vault that grew day by day
 * (CAMERAS cameras, CLIPS_PER_DAY clips a day in all), written as the manifest's day shards,
 * then checked and totalled through the Manifest API itself, so a change of the on-disk format
 * fails here loudly instead of measuring something else.
 */
import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type ClipRecord, Manifest } from "../../src/manifest/manifest.js";

export const CAMERAS = 4;
/** ~68 events a day per camera: a busy motionEye setup. 100k clips are then a year. */
export const CLIPS_PER_DAY = 274;
const DAY_MS = 86_400_000;

export function isoDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** A clip record as sync writes it. */
export function clipRecord(date: string, camera: number, index: number): ClipRecord {
  const seconds = Math.floor((index * 86_400) / CLIPS_PER_DAY) + camera;
  const time = new Date(seconds * 1000).toISOString().slice(11, 19).replace(/:/g, "-");
  const name = `${time}.mp4`;
  const id = `Camera${camera + 1}/${date}/${name}`;
  const size = 3_000_000 + ((index * 7919 + camera * 104_729) % 20_000_000);
  return {
    id,
    camera: `Camera${camera + 1}`,
    date,
    name,
    size,
    mtimeMs: Date.parse(`${date}T00:00:00Z`) + seconds * 1000,
    sha256: createHash("sha256").update(id).digest("hex"),
    remotePath: `${id}.age`,
    remoteSize: size + 262,
    uploadedAt: new Date(Date.parse(`${date}T00:00:00Z`) + seconds * 1000 + 60_000).toISOString(),
    format: "age",
  };
}

/**
 * Adds `count` clips to the manifest in `stateDir`, on the days before `beforeDate`
 * (CLIPS_PER_DAY a day), and brings the totals up to date. Returns the days written.
 */
export async function fillManifest(
  stateDir: string,
  count: number,
  beforeDate: string,
): Promise<string[]> {
  const dir = join(stateDir, "manifest");
  await mkdir(dir, { recursive: true });
  const days: string[] = [];
  let left = count;
  for (let d = 1; left > 0; d++) {
    const date = isoDate(Date.parse(`${beforeDate}T00:00:00Z`) - d * DAY_MS);
    const n = Math.min(left, CLIPS_PER_DAY);
    const clips: Record<string, ClipRecord> = {};
    for (let i = 0; i < n; i++) {
      const rec = clipRecord(date, i % CAMERAS, Math.floor(i / CAMERAS) * CAMERAS);
      clips[rec.id] = rec;
    }
    await writeFile(join(dir, `${date}.json`), JSON.stringify({ clips }));
    days.push(date);
    left -= n;
  }
  const manifest = await Manifest.open(stateDir);
  await manifest.reconcileTotals();
  const sample = days[days.length - 1] as string;
  if ((await manifest.listDate(sample)).length === 0) {
    throw new Error(`the Manifest does not read the generated shard ${sample}: format changed?`);
  }
  return days;
}
