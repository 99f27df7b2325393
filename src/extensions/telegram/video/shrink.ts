import { rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { probeVideo, type VideoInfo } from "./probe.js";
import type { VideoPart } from "./split.js";
import { runTool } from "./tools.js";

/** Sound, when the clip has any (motion records none by default). */
const AUDIO_BPS = 64_000;
/** Below this a re-encoded picture is mush: cut into parts instead. */
const MIN_VIDEO_BPS = 80_000;
/** The tallest picture worth its bits: [height, least video bits/s for it]. */
const LADDER: ReadonlyArray<readonly [number, number]> = [
  [1080, 3_000_000],
  [720, 1_300_000],
  [540, 750_000],
  [360, 350_000],
  [240, 0],
];
/** Share of the budget to aim at: x264's rate control overshoots a little. */
const FIRST_AIM = 0.9;
const ATTEMPTS = 2;

function heightFor(info: VideoInfo, videoBps: number): number {
  for (const [height, least] of LADDER) {
    if (videoBps >= least) return Math.min(height, info.height);
  }
  return Math.min(240, info.height);
}

/**
 * Re-encodes a video into one H.264 MP4 under `budget` bytes (telegram.oversize: shrink): the
 * bitrate from the budget and the duration, the picture made smaller when the bitrate is low.
 * Undefined when the clip is too long to fit watchably, or two tries both came out too big:
 * the caller then cuts it into parts instead.
 */
export async function shrinkToFit(
  input: string,
  info: VideoInfo,
  budget: number,
  dir: string,
  signal?: AbortSignal,
): Promise<VideoPart | undefined> {
  const audioBps = info.hasAudio ? AUDIO_BPS : 0;
  let aim = FIRST_AIM;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const videoBps = Math.floor((budget * 8 * aim) / info.duration - audioBps);
    if (videoBps < MIN_VIDEO_BPS) return undefined;
    const height = heightFor(info, videoBps);
    const out = join(dir, `shrunk-${attempt}.mp4`);
    await runTool(
      "ffmpeg",
      [
        ...["-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", input],
        ...["-map", "0:v:0", "-map", "0:a?"],
        ...["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"],
        ...["-b:v", String(videoBps), "-maxrate", String(videoBps), "-bufsize", String(videoBps)],
        ...(height < info.height ? ["-vf", `scale=-2:${height}`] : []),
        ...(audioBps > 0 ? ["-c:a", "aac", "-b:a", String(audioBps)] : []),
        ...["-movflags", "+faststart", out],
      ],
      { signal },
    );
    const size = (await stat(out)).size;
    if (size <= budget) return { path: out, size, info: await probeVideo(out, signal) };
    await rm(out, { force: true });
    aim *= (budget / size) * 0.9;
  }
  return undefined;
}
