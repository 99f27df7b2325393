/**
 * Is this movie finished? Read from the file itself, with a few small ranged reads.
 *
 * motion writes an MP4/MOV (ISO-BMFF) in place: `ftyp`, `free`, then an `mdat` box whose size
 * stays 0 while it records, growing in bursts; at close it writes the `mdat` size and appends
 * the `moov` box (the index without which the movie does not play). So a movie is complete when
 * its top-level boxes account for the whole file and include an `mdat` with its size written
 * and a `moov`. Walking the top-level boxes costs one read at offset 0 (which holds `ftyp`,
 * `free` and the `mdat` header of motion's movies) and one at each box that starts past it:
 * two reads for a finished motion movie, one for a movie still recording.
 *
 * Other containers (AVI, Matroska) say nothing cheap about being finished: UNKNOWN, and the
 * planner falls back to its stability rule for them.
 */
import type { RangeReader } from "../storage/types.js";

/** What the file says about whether its writer is done with it. */
export type Completeness =
  | { state: "complete"; container: "iso-bmff" }
  /** An ISO-BMFF movie that is not finished (yet): still recording, or cut off. */
  | { state: "incomplete"; container: "iso-bmff"; reason: string }
  /** The file cannot be checked: another container, or not what its name says. */
  | { state: "unknown"; reason: string };

export interface CompletenessCheck {
  verdict: Completeness;
  /** Ranged reads made (round trips to the source). */
  reads: number;
  /** Bytes those reads returned. */
  bytes: number;
}

/** Names whose content is checked; any other clip is UNKNOWN without reading it. */
const ISO_BMFF_EXTENSIONS = [".mp4", ".mov", ".m4v"];
/** Bytes read at each new position: the headers of several small boxes in one round trip. */
const WINDOW = 512;
/** Reads per clip at most: a movie with more top-level boxes than this is not motion's. */
const MAX_READS = 8;
/** Box types an ISO-BMFF or QuickTime file may start with. */
const FIRST_BOX_TYPES = new Set(["ftyp", "styp", "moov", "mdat", "free", "skip", "wide", "pnot"]);

export function isCheckable(name: string): boolean {
  const lower = name.toLowerCase();
  return ISO_BMFF_EXTENSIONS.some((ext) => lower.endsWith(ext));
}

/** Box types are four printable characters (QuickTime also uses ©, 0xA9). */
function boxType(b: Buffer, at: number): string | undefined {
  const raw = b.subarray(at, at + 4);
  if (raw.length < 4 || !raw.every((c) => (c >= 0x20 && c <= 0x7e) || c === 0xa9)) return;
  return raw.toString("latin1");
}

/**
 * Checks the file at `path`, taking `size` (from the listing) as its length: a file that grew
 * since is judged as it was listed, and is checked again by a later run.
 */
export async function checkCompleteness(
  reader: RangeReader,
  path: string,
  size: number,
): Promise<CompletenessCheck> {
  const cost = { reads: 0, bytes: 0 };
  const done = (verdict: Completeness): CompletenessCheck => ({ verdict, ...cost });
  const incomplete = (reason: string) =>
    done({ state: "incomplete", container: "iso-bmff", reason });
  const unknown = (reason: string) => done({ state: "unknown", reason });

  if (!isCheckable(path)) return unknown("not an MP4/MOV file");
  if (size === 0) return incomplete("the file is empty");

  let window: Buffer = Buffer.alloc(0);
  let windowAt = 0;
  /** `n` bytes at `offset` (fewer at the end of `size`), from the window or a new read. */
  const bytesAt = async (offset: number, n: number): Promise<Buffer | undefined> => {
    const want = Math.min(n, size - offset);
    if (offset < windowAt || offset + want > windowAt + window.length) {
      if (cost.reads >= MAX_READS) return undefined;
      window = await reader.readRange(path, offset, Math.min(WINDOW, size - offset));
      windowAt = offset;
      cost.reads++;
      cost.bytes += window.length;
    }
    return window.subarray(offset - windowAt, offset - windowAt + want);
  };

  let sawMdat = false;
  let sawMoov = false;
  for (let at = 0; at < size; ) {
    const left = size - at;
    if (at === 0 && left < 8) return unknown(`${size} bytes: too short to be checked`);
    if (left < 8) return incomplete(`${left} bytes after the last box, at offset ${at}`);
    const head = await bytesAt(at, 16);
    if (head === undefined) return unknown(`more than ${MAX_READS} reads to walk its boxes`);
    // The file is shorter than it was listed: it changed under us.
    if (head.length < Math.min(16, left)) return incomplete("the file shrank while it was checked");
    const type = boxType(head, 4);
    if (at === 0 && (type === undefined || !FIRST_BOX_TYPES.has(type))) {
      return unknown("not an ISO-BMFF (MP4/MOV) file");
    }
    if (type === undefined) return unknown(`no box header at offset ${at}`);
    if (type === "moof") return unknown("a fragmented MP4: fragments do not say which is last");

    let boxSize = head.readUInt32BE(0);
    if (boxSize === 1) {
      // 64-bit size after the type (motion's mdat past 4 GiB)
      if (left < 16) return incomplete(`the ${type} box header at offset ${at} is cut short`);
      const large = head.readBigUInt64BE(8);
      if (large > BigInt(Number.MAX_SAFE_INTEGER)) return unknown(`${type} box size too large`);
      boxSize = Number(large);
    } else if (boxSize === 0) {
      // "to the end of the file": how a movie still recording has its mdat
      if (type === "mdat") return incomplete("mdat size not written yet (still recording)");
      boxSize = left;
    }
    if (boxSize < 8) return unknown(`a ${type} box of ${boxSize} bytes at offset ${at}`);
    if (boxSize > left) {
      return incomplete(
        `the ${type} box at offset ${at} runs past the end of the file (${boxSize} bytes, ${left} left)`,
      );
    }
    if (type === "mdat") sawMdat = true;
    if (type === "moov") sawMoov = true;
    at += boxSize;
  }
  if (!sawMoov) return incomplete("no moov box (the movie was not closed)");
  if (!sawMdat) return incomplete("no mdat box");
  return done({ state: "complete", container: "iso-bmff" });
}
