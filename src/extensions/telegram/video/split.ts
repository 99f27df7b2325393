import { readdir, rm, stat } from "node:fs/promises";
import { extname, join } from "node:path";
import { formatBytes } from "../../../util/format.js";
import { probeVideo, type VideoInfo } from "./probe.js";
import { runTool } from "./tools.js";

/** One playable piece of a clip, ready to upload. */
export interface VideoPart {
  path: string;
  size: number;
  info: VideoInfo;
}

/** The clip cannot be cut into parts under the limit (a single keyframe interval is too big). */
export class CannotCutError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = "CannotCutError";
  }
}

/**
 * Parts are cut by time at the first keyframe after each cut point, so they run a little longer
 * than asked: aim this far under the even share of the budget.
 */
const TIME_MARGIN = 0.85;
/** A part that is still too big is cut again, at most this many times over. */
const MAX_DEPTH = 4;
/** Containers whose parts get their index up front, so phones start playing at once. */
const MP4_LIKE = new Set([".mp4", ".m4v", ".mov"]);

/**
 * Cuts a video without re-encoding (`ffmpeg -f segment -c copy`) into playable parts of at most
 * `budget` bytes each, in order, written into `dir` (which must hold nothing else named `p-*`).
 * A part that comes out too big is cut again, smaller; one that cannot be (a single keyframe
 * interval over the budget) fails the whole cut. Parts left over from a failed cut stay in `dir`
 * for its owner to remove.
 */
export function splitToFit(
  input: string,
  info: VideoInfo,
  budget: number,
  dir: string,
  signal?: AbortSignal,
): Promise<VideoPart[]> {
  return cut(input, info, budget, dir, "p", 0, signal);
}

async function cut(
  input: string,
  info: VideoInfo,
  budget: number,
  dir: string,
  prefix: string,
  depth: number,
  signal: AbortSignal | undefined,
): Promise<VideoPart[]> {
  const size = (await stat(input)).size;
  const ext = MP4_LIKE.has(extname(input).toLowerCase()) ? extname(input).toLowerCase() : ".mkv";
  const seconds = Math.max(0.2, ((info.duration * budget) / size) * TIME_MARGIN);
  await runTool(
    "ffmpeg",
    [
      ...["-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", input],
      // The picture and any sound; motion's data tracks, if any, are not worth a failed cut.
      ...["-map", "0:v:0", "-map", "0:a?", "-c", "copy", "-f", "segment"],
      ...["-segment_time", seconds.toFixed(3), "-reset_timestamps", "1"],
      ...(ext === ".mkv" ? [] : ["-segment_format_options", "movflags=+faststart"]),
      join(dir, `${prefix}-%03d${ext}`),
    ],
    { signal },
  );
  const own = new RegExp(`^${prefix}-\\d{3}\\${ext}$`);
  const names = (await readdir(dir)).filter((n) => own.test(n)).sort();
  if (names.length === 0) throw new CannotCutError("ffmpeg made no parts");

  const parts: VideoPart[] = [];
  for (const [i, name] of names.entries()) {
    const path = join(dir, name);
    const partSize = (await stat(path)).size;
    const partInfo = await probeVideo(path, signal);
    if (partSize <= budget) {
      parts.push({ path, size: partSize, info: partInfo });
      continue;
    }
    if (names.length === 1 || depth >= MAX_DEPTH) {
      throw new CannotCutError(
        `${partInfo.duration.toFixed(1)} s without a keyframe to cut at make ${formatBytes(partSize)}, over the ${formatBytes(budget)} a part may have`,
      );
    }
    parts.push(...(await cut(path, partInfo, budget, dir, `${prefix}_${i}`, depth + 1, signal)));
    await rm(path, { force: true });
  }
  return parts;
}
