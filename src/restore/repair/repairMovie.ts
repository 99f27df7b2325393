/**
 * Makes a playable copy of a movie whose recording was cut off (motion killed, power lost):
 * its `mdat` holds whole H.264 frames but the file has no `moov` (the index written at close)
 * and no SPS/PPS. Like the `untrunc` tool, the missing parts come from a complete movie of the
 * same camera; the frames are rewrapped as an Annex-B stream and ffmpeg muxes them into a new
 * MP4. The cut-off file itself is only read.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { open, rename, rm } from "node:fs/promises";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { partName } from "../../storage/types.js";
import { annexBStream, type WalkStats } from "./annexB.js";
import { topLevelBoxes } from "./boxes.js";
import { type ReferenceStream, RepairError, readReference } from "./reference.js";

export { RepairError } from "./reference.js";

export interface RepairResult {
  path: string;
  frames: number;
  keyFrames: number;
  fps: number;
  /** Seconds of video at the reference's frame rate. */
  seconds: number;
  /** Movie data left out at the end (a frame cut short), and why, when any was. */
  droppedBytes: number;
  stopped?: string;
}

/** The name of the playable copy of a restored movie: `<name>.repaired.mp4` next to it. */
export function repairedName(restoredFile: string): string {
  return `${restoredFile.replace(/\.(mp4|mov|m4v)$/i, "")}.repaired.mp4`;
}

/** Whether `ffmpeg` runs here; the message says why not. */
export async function ffmpegAvailable(ffmpeg = "ffmpeg"): Promise<true | string> {
  return new Promise((resolve) => {
    const child = spawn(ffmpeg, ["-hide_banner", "-version"], { stdio: "ignore" });
    child.once("error", () => resolve(`${ffmpeg} was not found: install ffmpeg to repair movies`));
    child.once("exit", (code) =>
      resolve(code === 0 ? true : `${ffmpeg} -version failed (exit ${code})`),
    );
  });
}

/**
 * Writes a playable MP4 of `cutOff` to `outFile` (through a temporary name: nothing partial
 * ever has the final name), with the parameter sets and frame rate of `reference` (a
 * complete movie of the same camera, a path or already read). Throws RepairError with the
 * reason when the data cannot be saved.
 */
export async function repairMovie(
  cutOff: string,
  reference: string | ReferenceStream,
  outFile: string,
  opts: { ffmpeg?: string; signal?: AbortSignal } = {},
): Promise<RepairResult> {
  const ref = typeof reference === "string" ? await readReference(reference) : reference;
  const file = await open(cutOff, "r");
  const temp = partName(outFile, randomBytes(6).toString("hex"));
  try {
    const size = (await file.stat()).size;
    const boxes = await topLevelBoxes(file, size);
    if (boxes.length === 0) throw new RepairError("it is no MP4 movie (no box at its start)");
    if (boxes.some((b) => b.type === "moov")) {
      throw new RepairError("it has its index (moov): it is no cut-off movie");
    }
    const mdat = boxes.find((b) => b.type === "mdat");
    if (mdat === undefined || mdat.end <= mdat.body) {
      throw new RepairError(
        "it holds no video data: the recording was cut off before the camera wrote its first frames",
      );
    }
    const stats: WalkStats = { nals: 0, frames: 0, keyFrames: 0, keptBytes: 0, droppedBytes: 0 };
    const stream = annexBStream(file, mdat.body, mdat.end, ref, stats);
    await muxWithFfmpeg(stream, ref.fps, temp, opts);
    if (stats.frames === 0 || stats.keyFrames === 0) {
      throw new RepairError(
        stats.frames === 0
          ? "it holds no whole video frame"
          : "it holds no key frame: its frames cannot be decoded",
      );
    }
    await rename(temp, outFile);
    return {
      path: outFile,
      frames: stats.frames,
      keyFrames: stats.keyFrames,
      fps: ref.fps,
      seconds: stats.frames / ref.fps,
      droppedBytes: stats.droppedBytes,
      ...(stats.stopped === undefined ? {} : { stopped: stats.stopped }),
    };
  } finally {
    await file.close();
    await rm(temp, { force: true });
  }
}

/** `ffmpeg -f h264 -r FPS -i - -c copy OUT`: no re-encoding, the frames are kept as they are. */
async function muxWithFfmpeg(
  stream: AsyncIterable<Buffer>,
  fps: number,
  out: string,
  opts: { ffmpeg?: string; signal?: AbortSignal },
): Promise<void> {
  const ffmpeg = opts.ffmpeg ?? "ffmpeg";
  const args = ["-hide_banner", "-loglevel", "error", "-f", "h264", "-r", String(fps)];
  args.push("-i", "pipe:0", "-c", "copy", "-f", "mp4", "-y", out);
  const child = spawn(ffmpeg, args, { stdio: ["pipe", "ignore", "pipe"], signal: opts.signal });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    if (stderr.length < 4000) stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once("error", (err: NodeJS.ErrnoException) =>
      reject(
        err.code === "ENOENT"
          ? new RepairError(`${ffmpeg} was not found: install ffmpeg to repair movies`)
          : err,
      ),
    );
    child.once("close", (code) => resolve(code));
  });
  // ffmpeg closing its input early (it failed) shows in its exit status, not as EPIPE here
  const fed = pipeline(Readable.from(stream), child.stdin).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE" && err.code !== "ERR_STREAM_PREMATURE_CLOSE") throw err;
  });
  const [code] = await Promise.all([exited, fed]);
  if (code !== 0) {
    throw new RepairError(`ffmpeg could not mux the frames (exit ${code}): ${stderr.trim()}`);
  }
}
