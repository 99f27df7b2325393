import { stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isJpeg } from "../../thumbnail.js";
import type { VideoInfo } from "./probe.js";
import { runTool } from "./tools.js";

/** Telegram's rules for a video's thumbnail: JPEG, under 200 kB, at most 320 px a side. */
const THUMB_MAX_BYTES = 200 * 1000;
const FIT_320 = "scale=w='min(320,iw)':h='min(320,ih)':force_original_aspect_ratio=decrease";

async function smallEnough(path: string): Promise<string | undefined> {
  const size = (await stat(path).catch(() => undefined))?.size ?? 0;
  return size > 0 && size <= THUMB_MAX_BYTES ? path : undefined;
}

/**
 * A thumbnail file for sendVideo, written into `dir` as `<name>.jpg`: motionEye's frame scaled to
 * Telegram's limits, else (or when that fails) a frame ffmpeg takes from the video. Without
 * ffmpeg, motionEye's frame as it is when it is a small enough JPEG. Undefined when there is none:
 * a video goes without a thumbnail rather than not at all.
 */
export async function videoThumbnail(opts: {
  video: string;
  info?: VideoInfo;
  /** motionEye's `.thumb` of the clip, read by extensions/thumbnail.ts. */
  sourceThumb?: Buffer;
  dir: string;
  name: string;
  ffmpeg: boolean;
  signal?: AbortSignal;
}): Promise<string | undefined> {
  const out = join(opts.dir, `${opts.name}.jpg`);
  const { sourceThumb, signal } = opts;
  const encode = ["-frames:v", "1", "-vf", FIT_320, "-q:v", "5", "-f", "mjpeg", out];
  if (sourceThumb && isJpeg(sourceThumb)) {
    const original = join(opts.dir, `${opts.name}.source.jpg`);
    await writeFile(original, sourceThumb, { mode: 0o600 });
    if (!opts.ffmpeg) return smallEnough(original);
    const scaled = await runTool(
      "ffmpeg",
      ["-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", original, ...encode],
      { signal },
    ).then(
      () => smallEnough(out),
      () => undefined,
    );
    if (scaled) return scaled;
  }
  if (!opts.ffmpeg) return undefined;
  // A second in: the very first frame of a motion event is often still dark or blurred.
  const at = opts.info ? Math.min(1, opts.info.duration / 2) : 0;
  return runTool(
    "ffmpeg",
    [
      ...["-hide_banner", "-nostdin", "-loglevel", "error", "-y"],
      ...["-ss", at.toFixed(3), "-i", opts.video, ...encode],
    ],
    { signal },
  ).then(
    () => smallEnough(out),
    () => undefined,
  );
}
