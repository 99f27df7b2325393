/** ffprobe's verdict on a movie: playable (with its codec, size, duration) or its error. */
import { runCommand } from "./processes.js";

export interface ProbeResult {
  ok: boolean;
  codec?: string;
  width?: number;
  height?: number;
  durationSeconds?: number;
  error?: string;
}

export async function ffprobe(file: string): Promise<ProbeResult> {
  const r = await runCommand(
    "ffprobe",
    ["-v", "error", "-print_format", "json", "-show_format", "-show_streams", file],
    { allowFailure: true, timeoutMs: 30_000 },
  );
  if (r.code !== 0) return { ok: false, error: r.stderr.trim() || `ffprobe exit ${r.code}` };
  const doc = JSON.parse(r.stdout) as {
    streams?: { codec_type?: string; codec_name?: string; width?: number; height?: number }[];
    format?: { duration?: string };
  };
  const video = doc.streams?.find((s) => s.codec_type === "video");
  const durationSeconds = Number(doc.format?.duration);
  return {
    ok: Boolean(video) && durationSeconds > 0,
    codec: video?.codec_name,
    width: video?.width,
    height: video?.height,
    durationSeconds,
    error: video ? undefined : "no video stream",
  };
}
