/**
 * What a repair takes from a complete movie of the same camera: the H.264 parameter sets
 * (SPS/PPS, from the `avcC` box of its video track) without which the cut-off movie's frames
 * cannot be decoded, the size of its NAL length prefixes, and its frame rate.
 */
import { open } from "node:fs/promises";
import { type Box, childBoxes, findBox, topLevelBoxes } from "./boxes.js";

export interface ReferenceStream {
  /** Sample entry type of the video track: avc1/avc3 are H.264 in AVCC form. */
  codec: string;
  sps: Buffer[];
  pps: Buffer[];
  /** Bytes of each NAL unit's length prefix in the movie data (1, 2 or 4). */
  lengthSize: number;
  /** Frames per second, from the track's sample durations. */
  fps: number;
  width: number;
  height: number;
}

/** Why a file cannot serve as a reference (or a movie cannot be repaired): said to the user. */
export class RepairError extends Error {}

/** A moov larger than this is not a camera's movie index worth loading. */
const MAX_MOOV_BYTES = 64 * 1024 * 1024;

/** Reads the reference movie at `path`: only its `moov` box is loaded. */
export async function readReference(path: string): Promise<ReferenceStream> {
  const file = await open(path, "r");
  try {
    const size = (await file.stat()).size;
    const moovBox = (await topLevelBoxes(file, size)).find((b) => b.type === "moov" && !b.open);
    if (moovBox === undefined) {
      throw new RepairError(`${path} has no moov box: it is no complete MP4 movie`);
    }
    const length = moovBox.end - moovBox.body;
    if (length > MAX_MOOV_BYTES) throw new RepairError(`${path}: its moov box is too large`);
    const moov = Buffer.alloc(length);
    await file.read(moov, 0, length, moovBox.body);
    return referenceFromMoov(moov, path);
  } finally {
    await file.close();
  }
}

/** The stream description of the first video track in a `moov` payload. */
export function referenceFromMoov(moov: Buffer, name: string): ReferenceStream {
  const video = childBoxes(moov, 0, moov.length)
    .filter((b) => b.type === "trak")
    .find((trak) => handlerOf(moov, trak) === "vide");
  if (video === undefined) throw new RepairError(`${name} has no video track`);
  const mdia = findBox(moov, ["mdia"], video.body, video.end) as Box;
  const stbl = findBox(moov, ["minf", "stbl"], mdia.body, mdia.end);
  const stsd = stbl && findBox(moov, ["stsd"], stbl.body, stbl.end);
  // stsd: version+flags, entry count, then the sample entries
  const entry = stsd && childBoxes(moov, stsd.body + 8, stsd.end)[0];
  if (stbl === undefined || entry === undefined) {
    throw new RepairError(`${name}: its video track has no sample description`);
  }
  if (entry.type !== "avc1" && entry.type !== "avc3") {
    throw new RepairError(
      `${name} holds ${entry.type} video, not H.264 (avc1): only H.264 movies can be repaired`,
    );
  }
  // A VisualSampleEntry has 78 bytes of fields (width and height at 24 and 26) before its boxes.
  const width = moov.readUInt16BE(entry.body + 24);
  const height = moov.readUInt16BE(entry.body + 26);
  const avcC = childBoxes(moov, entry.body + 78, entry.end).find((b) => b.type === "avcC");
  if (avcC === undefined) throw new RepairError(`${name}: its H.264 track has no avcC box`);
  const { sps, pps, lengthSize } = parseAvcC(moov.subarray(avcC.body, avcC.end), name);
  return {
    codec: entry.type,
    sps,
    pps,
    lengthSize,
    fps: frameRate(moov, mdia, stbl, name),
    width,
    height,
  };
}

function handlerOf(moov: Buffer, trak: Box): string | undefined {
  const hdlr = findBox(moov, ["mdia", "hdlr"], trak.body, trak.end);
  // hdlr: version+flags (4), pre_defined (4), handler type (4)
  return hdlr && moov.subarray(hdlr.body + 8, hdlr.body + 12).toString("latin1");
}

/** AVCDecoderConfigurationRecord (ISO/IEC 14496-15): the parameter sets and the prefix size. */
export function parseAvcC(
  rec: Buffer,
  name: string,
): { sps: Buffer[]; pps: Buffer[]; lengthSize: number } {
  const bad = () => new RepairError(`${name}: its avcC box cannot be read`);
  if (rec.length < 7 || rec[0] !== 1) throw bad();
  const lengthSize = ((rec[4] as number) & 0x03) + 1;
  let at = 5;
  const sets = (count: number): Buffer[] => {
    const out: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      if (at + 2 > rec.length) throw bad();
      const n = rec.readUInt16BE(at);
      if (at + 2 + n > rec.length) throw bad();
      out.push(Buffer.from(rec.subarray(at + 2, at + 2 + n)));
      at += 2 + n;
    }
    return out;
  };
  const sps = sets((rec[at++] as number) & 0x1f);
  if (at >= rec.length) throw bad();
  const pps = sets(rec[at++] as number);
  if (sps.length === 0 || pps.length === 0) {
    throw new RepairError(`${name}: its avcC box holds no SPS/PPS`);
  }
  if (lengthSize === 3) throw bad();
  return { sps, pps, lengthSize };
}

/**
 * Frames per second from the media timescale and the sample durations (stts). The last sample
 * of motion's movies has duration 0, so only samples with a duration count.
 */
function frameRate(moov: Buffer, mdia: Box, stbl: Box, name: string): number {
  const mdhd = findBox(moov, ["mdhd"], mdia.body, mdia.end);
  const stts = findBox(moov, ["stts"], stbl.body, stbl.end);
  if (mdhd === undefined || stts === undefined) {
    throw new RepairError(`${name}: its video track has no timing (mdhd/stts)`);
  }
  const version = moov[mdhd.body];
  const timescale = moov.readUInt32BE(mdhd.body + (version === 1 ? 20 : 12));
  let frames = 0;
  let ticks = 0;
  const entries = moov.readUInt32BE(stts.body + 4);
  for (let i = 0; i < entries; i++) {
    const at = stts.body + 8 + 8 * i;
    if (at + 8 > stts.end) break;
    const count = moov.readUInt32BE(at);
    const delta = moov.readUInt32BE(at + 4);
    if (delta === 0) continue;
    frames += count;
    ticks += count * delta;
  }
  if (timescale === 0 || ticks === 0) {
    throw new RepairError(`${name}: its video track has no frame durations`);
  }
  const fps = (frames * timescale) / ticks;
  // motion records at a whole frame rate; a few ticks of jitter should not show in the copy
  const whole = Math.round(fps);
  return Math.abs(fps - whole) < 0.02 * whole ? whole : Math.round(fps * 1000) / 1000;
}
