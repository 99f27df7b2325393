/**
 * Movies laid out as motion writes them, for tests that need clips the completeness check can
 * judge: `ftyp` (motion's own 32 bytes), `free`, `mdat`, `moov` (see test/fixtures/motion).
 *
 * - `movieChunks`: a finished movie of any size around payload bytes (the harness's clips).
 * - `GrowingMovie`: writes a real motion movie to a file the way motion does: its 48-byte header
 *   with the mdat size 0, then the payload in bursts, then at close the mdat size and the moov.
 */
import { appendFile, mkdir, open, writeFile } from "node:fs/promises";
import { dirname } from "node:path";

/** motion's `ftyp` box: isom, minor 512, brands isom iso2 avc1 mp41. */
const FTYP = Buffer.from(
  "00000020667479706973" + "6f6d0000020069736f6d69736f32617663316d703431",
  "hex",
);
const FREE = Buffer.from("0000000866726565", "hex");
const MOOV_SIZE = 64;
/** Where motion's mdat box starts: after ftyp and free. */
export const MDAT_AT = 40;
/** The smallest movie `movieChunks` can frame: header, empty mdat, moov. */
export const MIN_MOVIE_SIZE = MDAT_AT + 8 + MOOV_SIZE;

function box(type: string, size: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(size, 0);
  b.write(type, 4, "latin1");
  return b;
}

export function isMovieName(name: string): boolean {
  return /\.(mp4|mov)$/i.test(name);
}

/**
 * A finished movie of exactly `size` (>= MIN_MOVIE_SIZE) bytes: `payload(n)` yields the n bytes
 * of its mdat; the moov is `MOOV_SIZE` bytes (its content does not matter to the check).
 */
export function* movieChunks(
  size: number,
  payload: (n: number) => Iterable<Buffer>,
): Generator<Buffer> {
  if (size < MIN_MOVIE_SIZE) throw new Error(`a movie needs at least ${MIN_MOVIE_SIZE} bytes`);
  const mdatPayload = size - MDAT_AT - 8 - MOOV_SIZE;
  yield Buffer.concat([FTYP, FREE, box("mdat", mdatPayload + 8)]);
  yield* payload(mdatPayload);
  yield Buffer.concat([box("moov", MOOV_SIZE), Buffer.alloc(MOOV_SIZE - 8, 0x6d)]);
}

/**
 * Writes `movie` (a finished motion movie: ftyp, free, mdat, moov) to `path` as motion writes
 * it. After `start()` the file is motion's 48-byte header; each `burst(n)` appends n more bytes
 * of the mdat; `close()` writes the rest, the mdat size and the moov: the file is then `movie`.
 */
export class GrowingMovie {
  private written = 0;
  private readonly moovAt: number;

  constructor(
    readonly path: string,
    readonly movie: Buffer,
  ) {
    if (movie.toString("latin1", MDAT_AT + 4, MDAT_AT + 8) !== "mdat") {
      throw new Error("not a motion movie: no mdat at offset 40");
    }
    this.moovAt = MDAT_AT + movie.readUInt32BE(MDAT_AT);
  }

  /** The header, with the mdat size 0 as motion leaves it while recording. */
  async start(): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o755 });
    const header = Buffer.from(this.movie.subarray(0, MDAT_AT + 8));
    header.writeUInt32BE(0, MDAT_AT);
    await writeFile(this.path, header, { mode: 0o644 });
    this.written = header.length;
  }

  /** Appends up to `n` more bytes of the mdat (never the moov); returns the new file size. */
  async burst(n: number): Promise<number> {
    const end = Math.min(this.moovAt, this.written + n);
    await appendFile(this.path, this.movie.subarray(this.written, end));
    this.written = end;
    return end;
  }

  /** The rest of the mdat, then the mdat size, then the moov, as motion closes a movie. */
  async close(): Promise<void> {
    await this.burst(this.moovAt);
    const file = await open(this.path, "r+");
    try {
      await file.write(this.movie.subarray(MDAT_AT, MDAT_AT + 4), 0, 4, MDAT_AT);
    } finally {
      await file.close();
    }
    await appendFile(this.path, this.movie.subarray(this.moovAt));
    this.written = this.movie.length;
  }
}
