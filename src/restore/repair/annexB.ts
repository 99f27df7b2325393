/**
 * Turns the movie data of a cut-off MP4 (length-prefixed "AVCC" H.264 NAL units in its `mdat`)
 * into an Annex-B H.264 stream (start codes), the raw form ffmpeg can read without an index:
 * the reference's SPS/PPS first, then every whole NAL unit. A NAL unit cut short by the end of
 * the data, and anything after bytes that are no NAL unit, is left out.
 */
import type { FileHandle } from "node:fs/promises";
import { RepairError } from "./reference.js";

const START_CODE = Buffer.from([0, 0, 0, 1]);
const CHUNK = 1024 * 1024;
/** A NAL unit larger than this is not a frame of a camera's movie: the data is not what we think. */
const MAX_NAL_BYTES = 64 * 1024 * 1024;

export interface WalkStats {
  /** Whole NAL units written. */
  nals: number;
  /** Pictures among them (slices that start a picture). */
  frames: number;
  /** Key frames (IDR pictures). */
  keyFrames: number;
  /** Bytes of movie data kept, and left out at the end (a cut-short NAL unit or unreadable data). */
  keptBytes: number;
  droppedBytes: number;
  /** Why the walk stopped before the end of the data, when it did. */
  stopped?: string;
}

/** nal_unit_type values a camera's H.264 stream carries (1..23; 0 and 24..31 are unspecified). */
function looksLikeNal(first: number): boolean {
  const type = first & 0x1f;
  return (first & 0x80) === 0 && type >= 1 && type <= 23;
}

/**
 * Yields the Annex-B stream of the NAL units in `file[from, to)`, each prefixed by
 * `lengthSize` bytes; `stats` is filled as it goes. Throws RepairError when the very first
 * unit is not H.264 as the reference describes it.
 */
export async function* annexBStream(
  file: FileHandle,
  from: number,
  to: number,
  params: { sps: readonly Buffer[]; pps: readonly Buffer[]; lengthSize: number },
  stats: WalkStats,
): AsyncGenerator<Buffer> {
  const { lengthSize } = params;
  for (const set of [...params.sps, ...params.pps]) yield Buffer.concat([START_CODE, set]);
  let pending = Buffer.alloc(0);
  let pendingAt = from; // file offset of pending[0]
  let readAt = from;
  const fill = async (need: number): Promise<boolean> => {
    while (pending.length < need && readAt < to) {
      const buf = Buffer.alloc(Math.min(CHUNK, to - readAt));
      const { bytesRead } = await file.read(buf, 0, buf.length, readAt);
      if (bytesRead === 0) break;
      readAt += bytesRead;
      pending =
        pending.length === 0
          ? buf.subarray(0, bytesRead)
          : Buffer.concat([pending, buf.subarray(0, bytesRead)]);
    }
    return pending.length >= need;
  };
  while (await fill(lengthSize)) {
    const length = pending.readUIntBE(0, lengthSize);
    const firstByte = pending.length > lengthSize ? (pending[lengthSize] as number) : undefined;
    if (
      length === 0 ||
      length > MAX_NAL_BYTES ||
      (firstByte !== undefined && !looksLikeNal(firstByte))
    ) {
      if (stats.nals === 0) {
        throw new RepairError(
          "its movie data does not start with an H.264 NAL unit like the reference's (another codec or container layout)",
        );
      }
      stats.stopped = `bytes at offset ${pendingAt} are no H.264 NAL unit`;
      break;
    }
    if (!(await fill(lengthSize + length))) {
      stats.stopped = `the last NAL unit (${length} bytes at offset ${pendingAt}) was cut short by the end of the data`;
      break;
    }
    const nal = pending.subarray(lengthSize, lengthSize + length);
    const type = (nal[0] as number) & 0x1f;
    // first_mb_in_slice, ue(v), is 0 (a single 1 bit) for the first slice of a picture
    if ((type === 1 || type === 5) && nal.length > 1 && ((nal[1] as number) & 0x80) !== 0) {
      stats.frames++;
      if (type === 5) stats.keyFrames++;
    }
    stats.nals++;
    stats.keptBytes += lengthSize + length;
    yield Buffer.concat([START_CODE, nal]);
    pending = pending.subarray(lengthSize + length);
    pendingAt += lengthSize + length;
  }
  stats.droppedBytes = to - pendingAt;
}
