/**
 * Real videos made by ffmpeg for the Telegram tests and benchmarks, and ffprobe's view of what
 * came out the other side (a part the fake Bot API received must play on its own).
 */
import { rm, writeFile } from "node:fs/promises";
import { runCommand } from "./processes.js";

export interface ClipSpec {
  seconds: number;
  width?: number;
  height?: number;
  fps?: number;
  /** Video bitrate: noise in the picture keeps the encoder at it, so size ≈ seconds × kbps / 8. */
  kbps?: number;
  /** A keyframe every this many seconds (cameras use 1-10 s). */
  keyframeSeconds?: number;
}

/**
 * An H.264 MP4 as a camera makes it: moving test pattern plus noise (so it is not tiny),
 * constant bitrate, a keyframe every `keyframeSeconds`.
 */
export async function makeH264Clip(path: string, spec: ClipSpec): Promise<void> {
  const { seconds, width = 640, height = 360, fps = 25, kbps = 1200 } = spec;
  const gop = String(Math.round(fps * (spec.keyframeSeconds ?? 2)));
  await runCommand(
    "ffmpeg",
    [
      ...["-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi"],
      ...["-i", `testsrc2=size=${width}x${height}:rate=${fps}`, "-t", String(seconds)],
      ...["-vf", "noise=alls=30:allf=t", "-c:v", "libx264", "-preset", "ultrafast"],
      ...["-b:v", `${kbps}k`, "-maxrate", `${kbps}k`, "-bufsize", `${kbps * 2}k`],
      ...["-g", gop, "-keyint_min", gop, "-sc_threshold", "0", "-pix_fmt", "yuv420p", path],
    ],
    { timeoutMs: 120_000 },
  );
}

/** A JPEG frame of a video, full size, as motionEye writes `<movie>.thumb`. */
export async function makeJpegFrame(video: string, out: string): Promise<void> {
  await runCommand("ffmpeg", [
    ...["-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", video],
    ...["-frames:v", "1", "-f", "mjpeg", out],
  ]);
}

/** A JPEG of a test pattern of the given size (a thumbnail that can be told apart by its size). */
export async function makeJpegImage(out: string, width: number, height: number): Promise<void> {
  await runCommand("ffmpeg", [
    ...["-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi"],
    ...["-i", `testsrc2=size=${width}x${height}:rate=1`, "-frames:v", "1", "-f", "mjpeg", out],
  ]);
}

/** Joins copies of a video without re-encoding (the concat demuxer): a long clip made fast. */
export async function concatCopies(video: string, copies: number, out: string): Promise<void> {
  const list = `${out}.list.txt`;
  const line = `file '${video.replace(/'/g, "'\\''")}'`;
  await writeFile(list, `${Array.from({ length: copies }, () => line).join("\n")}\n`);
  try {
    await runCommand(
      "ffmpeg",
      [
        ...["-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0"],
        ...["-i", list, "-c", "copy", out],
      ],
      { timeoutMs: 120_000 },
    );
  } finally {
    await rm(list, { force: true });
  }
}

export interface Probed {
  /** Container duration in seconds. */
  duration: number;
  /** The first video stream's codec and size. */
  codec: string;
  width: number;
  height: number;
  /** Frames decoded from it (not read from the header). */
  frames: number;
}

/**
 * ffprobe's reading of a file (rejects when ffprobe cannot read it), with its frames counted by
 * decoding every one (`-count_frames`): a part that does not play has none.
 */
export async function probe(path: string): Promise<Probed> {
  const { stdout } = await runCommand("ffprobe", [
    ...["-v", "error", "-count_frames", "-select_streams", "v:0", "-print_format", "json"],
    ...["-show_entries", "format=duration:stream=codec_name,width,height,nb_read_frames", path],
  ]);
  const json = JSON.parse(stdout) as {
    format?: { duration?: string };
    streams?: Array<{
      codec_name?: string;
      width?: number;
      height?: number;
      nb_read_frames?: string;
    }>;
  };
  const stream = json.streams?.[0];
  if (!stream) throw new Error(`${path}: no video stream`);
  return {
    duration: Number(json.format?.duration),
    codec: stream.codec_name ?? "",
    width: stream.width ?? 0,
    height: stream.height ?? 0,
    frames: Number(stream.nb_read_frames ?? 0),
  };
}
