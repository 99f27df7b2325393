/**
 * Just enough ISO-BMFF (MP4/MOV) box walking for the repair: the top-level boxes of a file read
 * through a handle (a movie can be large: only headers are read), and the boxes nested in a
 * `moov` held in memory (a few KiB for motion's movies).
 */
import type { FileHandle } from "node:fs/promises";

export interface Box {
  type: string;
  /** Offset of the box header. */
  start: number;
  /** Offset of the payload (after the 8- or 16-byte header). */
  body: number;
  /** Offset just past the box; for a box whose size was never written, the end of the data. */
  end: number;
  /** True when the header said "to the end of the file" (size 0): a box its writer never closed. */
  open: boolean;
}

function typeAt(b: Buffer, at: number): string | undefined {
  const raw = b.subarray(at, at + 4);
  if (raw.length < 4 || !raw.every((c) => (c >= 0x20 && c <= 0x7e) || c === 0xa9)) return;
  return raw.toString("latin1");
}

/** The box whose header is at `at` in `head` (which holds at least its 16 first bytes when there are). */
function parseHeader(head: Buffer, at: number, limit: number): Box | undefined {
  if (head.length < 8) return;
  const type = typeAt(head, 4);
  if (type === undefined) return;
  let size = head.readUInt32BE(0);
  let headerSize = 8;
  let open = false;
  if (size === 1) {
    if (head.length < 16) return;
    const large = head.readBigUInt64BE(8);
    if (large > BigInt(Number.MAX_SAFE_INTEGER)) return;
    size = Number(large);
    headerSize = 16;
  } else if (size === 0) {
    size = limit - at;
    open = true;
  }
  if (size < headerSize) return;
  // A box running past the data (the file was cut off): it ends where the data ends.
  return { type, start: at, body: at + headerSize, end: Math.min(at + size, limit), open };
}

/** The top-level boxes of a file of `size` bytes; stops at the first bytes that are no box. */
export async function topLevelBoxes(file: FileHandle, size: number): Promise<Box[]> {
  const boxes: Box[] = [];
  const head = Buffer.alloc(16);
  for (let at = 0; at + 8 <= size; ) {
    const { bytesRead } = await file.read(head, 0, 16, at);
    const box = parseHeader(head.subarray(0, bytesRead), at, size);
    if (box === undefined) break;
    boxes.push(box);
    if (box.end <= at) break;
    at = box.end;
  }
  return boxes;
}

/** The boxes directly inside `buf[from, to)`. */
export function childBoxes(buf: Buffer, from: number, to: number): Box[] {
  const boxes: Box[] = [];
  for (let at = from; at + 8 <= to; ) {
    const box = parseHeader(buf.subarray(at, Math.min(at + 16, to)), at, to);
    if (box === undefined) break;
    boxes.push(box);
    at = box.end;
  }
  return boxes;
}

/** The first box along `path` (types, outermost first) inside `buf[from, to)`. */
export function findBox(
  buf: Buffer,
  path: readonly string[],
  from = 0,
  to = buf.length,
): Box | undefined {
  let found: Box | undefined;
  let [lo, hi] = [from, to];
  for (const type of path) {
    found = childBoxes(buf, lo, hi).find((b) => b.type === type);
    if (found === undefined) return undefined;
    [lo, hi] = [found.body, found.end];
  }
  return found;
}
