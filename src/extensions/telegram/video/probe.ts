import { runTool, ToolFailedError } from "./tools.js";

/** What sendVideo wants to know about a video, and what cutting it needs. */
export interface VideoInfo {
  /** Seconds (fractional). */
  duration: number;
  width: number;
  height: number;
  hasAudio: boolean;
}

/** A file ffprobe cannot read as a video (no video stream, no duration, not a container). */
export class NotAVideoError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = "NotAVideoError";
  }
}

interface ProbeJson {
  format?: { duration?: string };
  streams?: Array<{
    codec_type?: string;
    width?: number;
    height?: number;
    duration?: string;
    disposition?: { attached_pic?: number };
  }>;
}

/** Duration, size and audio of a video file, from ffprobe. */
export async function probeVideo(file: string, signal?: AbortSignal): Promise<VideoInfo> {
  const out = await runTool(
    "ffprobe",
    [
      "-v",
      "error",
      "-print_format",
      "json",
      "-show_entries",
      "format=duration:stream=codec_type,width,height,duration:stream_disposition=attached_pic",
      file,
    ],
    { signal },
  ).catch((err: unknown) => {
    if (!(err instanceof ToolFailedError)) throw err;
    // Its last line names the problem ("moov atom not found", "Invalid data found ...").
    const why =
      err.stderr.trim().split("\n").at(-1)?.replace(`${file}: `, "").split(file).join("clip") ?? "";
    throw new NotAVideoError(`ffprobe cannot read it${why ? ` (${why})` : ""}`);
  });
  let json: ProbeJson;
  try {
    json = JSON.parse(out) as ProbeJson;
  } catch {
    throw new NotAVideoError("ffprobe gave no readable answer");
  }
  const streams = json.streams ?? [];
  const video = streams.find((s) => s.codec_type === "video" && !s.disposition?.attached_pic);
  if (!video?.width || !video.height) throw new NotAVideoError("it holds no video stream");
  const duration = Number(json.format?.duration ?? video.duration);
  if (!Number.isFinite(duration) || duration <= 0) {
    throw new NotAVideoError("ffprobe cannot tell its duration");
  }
  return {
    duration,
    width: video.width,
    height: video.height,
    hasAudio: streams.some((s) => s.codec_type === "audio"),
  };
}
