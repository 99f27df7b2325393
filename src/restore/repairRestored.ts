/**
 * `restore --repair` and the bot's restore of an incomplete clip: a playable copy of a restored
 * cut-off movie, next to it (`<name>.repaired.mp4`), made with a complete movie of the same
 * camera as the reference: one from the vault (restored to a scratch folder) or a local file.
 * The restored file, like the backed-up bytes, is never changed.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgeVault } from "../crypto/ageVault.js";
import type { ClipRecord } from "../manifest/manifest.js";
import { errorMessage } from "../util/log.js";
import {
  ffmpegAvailable,
  RepairError,
  type RepairResult,
  repairedName,
  repairMovie,
} from "./repair/repairMovie.js";
import { restoreClip } from "./restore.js";

export type RepairOutcome =
  | { status: "repaired"; result: RepairResult; reference: string }
  | { status: "not-repaired"; why: string };

const MOVIE = /\.(mp4|mov|m4v)$/i;

/**
 * The complete movie of the same camera (and source) nearest in time to `clip`: its SPS/PPS
 * are the ones the camera's encoder used for the cut-off movie too.
 */
export function findReference(
  clips: Iterable<ClipRecord>,
  clip: ClipRecord,
): ClipRecord | undefined {
  let best: ClipRecord | undefined;
  for (const c of clips) {
    if (c.id === clip.id || c.incomplete || c.camera !== clip.camera || c.source !== clip.source)
      continue;
    if (!MOVIE.test(c.name) || c.size === 0) continue;
    const gap = Math.abs(c.mtimeMs - clip.mtimeMs);
    if (best === undefined || gap < Math.abs(best.mtimeMs - clip.mtimeMs)) best = c;
  }
  return best;
}

/**
 * Repairs the restored copy `restoredFile` of the incomplete `clip`. `reference` is a local
 * complete movie; without it one is looked for among `clips` and restored from the vault.
 * Never throws for data that cannot be saved: the outcome says why.
 */
export async function repairRestored(
  vault: AgeVault,
  clip: ClipRecord,
  restoredFile: string,
  opts: {
    /** The vault's clips, read only when a reference is looked for. */
    clips: () => Promise<Iterable<ClipRecord>>;
    reference?: string;
    ffmpeg?: string;
    signal?: AbortSignal;
  },
): Promise<RepairOutcome> {
  if (!MOVIE.test(clip.name)) {
    return {
      status: "not-repaired",
      why: `${clip.name} is no MP4/MOV movie: only those can be repaired`,
    };
  }
  const ffmpeg = await ffmpegAvailable(opts.ffmpeg);
  if (ffmpeg !== true) return { status: "not-repaired", why: ffmpeg };
  let scratch: string | undefined;
  try {
    let reference = opts.reference;
    let referenceName = reference ?? "";
    if (reference === undefined) {
      const ref = findReference(await opts.clips(), clip);
      if (ref === undefined) {
        return {
          status: "not-repaired",
          why: `no complete movie of camera ${clip.camera} in the vault to take the missing H.264 settings from (give one with --reference FILE)`,
        };
      }
      scratch = await mkdtemp(join(tmpdir(), "mev-repair-"));
      reference = join(scratch, ref.name);
      await restoreClip(vault, ref, reference, { signal: opts.signal });
      referenceName = ref.id;
    }
    const result = await repairMovie(restoredFile, reference, repairedName(restoredFile), {
      ffmpeg: opts.ffmpeg,
      signal: opts.signal,
    });
    return { status: "repaired", result, reference: referenceName };
  } catch (err) {
    const why = err instanceof RepairError ? err.message : errorMessage(err);
    return { status: "not-repaired", why };
  } finally {
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  }
}

/** One line for the user about a repair. */
export function describeRepair(clip: ClipRecord, outcome: RepairOutcome): string {
  if (outcome.status === "repaired") {
    const r = outcome.result;
    const dropped =
      r.droppedBytes > 0 ? `; ${r.droppedBytes} bytes at the end left out (${r.stopped})` : "";
    return `repaired ${clip.id}: ${r.path} (${r.frames} frames, ${r.seconds.toFixed(1)} s at ${r.fps} fps, H.264 settings from ${outcome.reference}${dropped})`;
  }
  return `could not repair ${clip.id}: ${outcome.why}`;
}
