import { join } from "node:path";
import type { VideoInfo } from "./probe.js";
import { runTool } from "./tools.js";

/** A preview plays for at most this long: the whole clip, sped up when it is longer. */
const PREVIEW_SECONDS = 6;
const PREVIEW_FPS = 8;

/**
 * A short, small, silent H.264 MP4 of a clip for sendAnimation (Telegram plays it as a GIF):
 * the whole clip squeezed into a few seconds, 320 px wide, a few frames a second, so a glance
 * shows what happened. Written into `dir`; returns its path.
 */
export async function makePreview(
  video: string,
  info: VideoInfo | undefined,
  dir: string,
  signal?: AbortSignal,
): Promise<string> {
  const out = join(dir, "preview.mp4");
  const speedUp = info ? Math.max(1, info.duration / PREVIEW_SECONDS) : 1;
  const filters = [
    `setpts=PTS/${speedUp.toFixed(4)}`,
    `fps=${PREVIEW_FPS}`,
    "scale=w='min(320,iw)':h=-2",
  ].join(",");
  await runTool(
    "ffmpeg",
    [
      ...["-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", video],
      ...["-map", "0:v:0", "-an", "-vf", filters, "-t", String(PREVIEW_SECONDS)],
      ...["-c:v", "libx264", "-preset", "veryfast", "-crf", "30", "-pix_fmt", "yuv420p"],
      ...["-movflags", "+faststart", out],
    ],
    { signal },
  );
  return out;
}
