/**
 * S3: the real CLI (compiled) syncing 20 x 20 MiB clips from a local media folder, age-encrypted,
 * to the loopback S3 server of the tests (s3rver), next to boto3's own `upload_file` of the same
 * plaintext files to the same server (its threaded multipart, 8 MiB parts). Each runs ROUNDS
 * times, alternating, each into a fresh key prefix; the best round of each counts. Our figure is
 * the sync run itself (startedAt..finishedAt of its JSON summary), boto3's the loop of uploads
 * (without the interpreter's start). Then the peak RSS of syncing one 1 GiB clip to S3.
 */
import { createWriteStream } from "node:fs";
import { mkdir, rm, utimes } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { writeNewIdentity } from "../src/crypto/age/age.js";
import { tempDir, writeConfig } from "../test/harness/files.js";
import { pseudoRandomChunks } from "../test/harness/ftp.js";
import {
  BOTO3_PYTHON,
  type Boto3Object,
  boto3,
  type S3Server,
  s3Destination,
  startS3Server,
} from "../test/harness/s3.js";
import { onCleanup } from "./lib/cleanup.js";
import { MiB, mbps, round } from "./lib/measure.js";
import type { BenchRow } from "./lib/types.js";
import { runSync } from "./lib/vault.js";

const COUNT = 20;
const SIZE = 20 * MiB;
const BIG = 1024 * MiB;
const ROUNDS = 2;
const RSS_LIMIT_MB = 150;
const DAY = "Camera1/2024-05-01";

/** A settled clip file of pseudo-random bytes, streamed to disk. */
async function writeClip(root: string, id: string, size: number): Promise<string> {
  const file = join(root, id);
  await mkdir(join(file, ".."), { recursive: true });
  await pipeline(Readable.from(pseudoRandomChunks(size, id)), createWriteStream(file));
  const settled = new Date(Date.now() - 3600_000);
  await utimes(file, settled, settled);
  return file;
}

interface Setup {
  s3: S3Server;
  work: string;
  identityFile: string;
}

async function syncTo(s: Setup, media: string, prefix: string) {
  const dir = join(s.work, prefix);
  await mkdir(dir, { recursive: true });
  const file = await writeConfig(dir, {
    source: { type: "local", path: media, stableSeconds: 0 },
    destination: s3Destination(s.s3, { path: prefix }),
    encryption: { identityFile: s.identityFile },
    state: { dir: join(dir, "state") },
    sync: { retries: 0 },
  });
  return runSync(file);
}

export async function run(): Promise<BenchRow[]> {
  if (!BOTO3_PYTHON) throw new Error("boto3 is missing (apt-get install python3-boto3)");
  const [s3, work] = await Promise.all([startS3Server(), tempDir("mevault-bench-s3-")]);
  const close = onCleanup(() =>
    Promise.allSettled([s3.close(), rm(work, { recursive: true, force: true })]),
  );
  try {
    const s: Setup = { s3, work, identityFile: join(work, "identity.txt") };
    await writeNewIdentity(s.identityFile);
    const media = join(work, "media");
    const files: string[] = [];
    for (let i = 0; i < COUNT; i++) {
      files.push(await writeClip(media, `${DAY}/12-00-${String(i).padStart(2, "0")}.mp4`, SIZE));
    }

    const ours: number[] = [];
    const theirs: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const sync = await syncTo(s, media, `ours-${round}`);
      if (sync.summary.uploaded !== COUNT)
        throw new Error(`sync uploaded ${sync.summary.uploaded}`);
      ours.push(mbps(COUNT * SIZE, sync.runMs));
      const { seconds } = await boto3<{ seconds: number }>(
        s3,
        "put-many",
        `boto3-${round}/`,
        ...files,
      );
      theirs.push(mbps(COUNT * SIZE, seconds * 1000));
      // Keep the server's folder small between rounds.
      await rm(join(s3.dir, s3.bucket, `ours-${round}`), { recursive: true, force: true });
      await rm(join(s3.dir, s3.bucket, `boto3-${round}`), { recursive: true, force: true });
    }
    const reference = {
      name: "boto3 upload_file, same files",
      value: Math.max(...theirs),
      unit: "MB/s",
    };
    const rows: BenchRow[] = [
      {
        name: `sync throughput, ${COUNT} x 20 MiB, local folder -> age -> S3 (s3rver)`,
        value: round(Math.max(...ours)),
        unit: "MB/s",
        reference: { ...reference, value: round(reference.value) },
        target: ">= 0.8x boto3",
        met: Math.max(...ours) >= 0.8 * reference.value,
        note: `best of ${ROUNDS}; ours ${ours.map(round).join(", ")}, boto3 ${theirs.map(round).join(", ")} MB/s (python3 ${BOTO3_PYTHON})`,
      },
    ];
    await rm(media, { recursive: true, force: true });

    const bigMedia = join(work, "big");
    await writeClip(bigMedia, `${DAY}/13-00-00.mp4`, BIG);
    const big = await syncTo(s, bigMedia, "big");
    const stored = await boto3<Boto3Object[]>(s3, "list", "big/");
    rows.push({
      name: "peak RSS, sync of one 1 GiB clip local -> age -> S3",
      value: round(big.peakRss / 1e6),
      unit: "MB",
      lowerIsBetter: true,
      target: `<= ${RSS_LIMIT_MB} MB`,
      met: big.peakRss / 1e6 <= RSS_LIMIT_MB && stored.length === 1,
      note: `compiled CLI (node ${process.version}); ${round(mbps(BIG, big.runMs))} MB/s; boto3 lists ${stored.map((o) => `${o.key} (${o.size} B)`).join(", ")}`,
    });
    return rows;
  } finally {
    await close();
  }
}
