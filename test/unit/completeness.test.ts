/**
 * The completeness check on real motion output (test/fixtures/motion: made by the real motion
 * daemon, see its README), and on those movies cut or extended the ways a writer leaves them.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { checkCompleteness, isCheckable } from "../../src/clips/completeness.js";
import { createLocalSource } from "../../src/storage/source/local.js";
import type { RangeReader } from "../../src/storage/types.js";
import { REPO } from "../harness/cli.js";

const FIXTURES = join(REPO, "test/fixtures/motion");
const fixture = (name: string) => readFile(join(FIXTURES, name));
const info = JSON.parse(await readFile(join(FIXTURES, "fixtures.json"), "utf8")) as {
  files: Record<string, { size: number }>;
};
const FINISHED = ["finished.mp4", "finished-2.mp4", "finished-3.mp4", "finished-4.mp4"];

/** Serves `bytes` as the start of a file; a read past them fails the test. Counts reads. */
function memoryReader(bytes: Buffer, known = bytes.length) {
  const reads: Array<[number, number]> = [];
  const reader: RangeReader = {
    async readRange(_path, offset, length) {
      reads.push([offset, length]);
      const end = Math.min(offset + length, known);
      if (end > bytes.length) throw new Error(`read ${offset}+${length} past the stored bytes`);
      return bytes.subarray(offset, end);
    },
  };
  return { reader, reads };
}

/** Top-level boxes of a finished motion movie: [offset, size, type]. */
function boxes(movie: Buffer): Array<[number, number, string]> {
  const out: Array<[number, number, string]> = [];
  for (let at = 0; at < movie.length; ) {
    const size = movie.readUInt32BE(at);
    out.push([at, size, movie.toString("latin1", at + 4, at + 8)]);
    at += size;
  }
  return out;
}

describe("completeness of real motion movies", () => {
  it("calls a movie at its 48-byte header incomplete, in one small read", async () => {
    const header = await fixture("header-only.mp4");
    expect(header.length).toBe(48);
    const local = createLocalSource(FIXTURES);
    const check = await checkCompleteness(local, "header-only.mp4", header.length);
    expect(check.verdict).toEqual({
      state: "incomplete",
      container: "iso-bmff",
      reason: "mdat size not written yet (still recording)",
    });
    expect(check).toMatchObject({ reads: 1, bytes: 48 });
  });

  it("calls a movie still recording incomplete after its first burst, reading 512 bytes", async () => {
    const size = info.files["mid-recording.mp4"]?.size ?? 0;
    expect(size).toBeGreaterThan(256 * 1024); // motion's first burst
    const { reader, reads } = memoryReader(await fixture("mid-recording.head.mp4"), size);
    const check = await checkCompleteness(reader, "Camera1/2024-05-01/mid.mp4", size);
    expect(check.verdict).toMatchObject({ state: "incomplete", reason: /mdat size not written/ });
    expect(reads).toEqual([[0, 512]]);
  });

  it("calls every finished movie complete in two reads: the head and the moov box", async () => {
    const local = createLocalSource(FIXTURES);
    for (const name of FINISHED) {
      const movie = await fixture(name);
      expect(boxes(movie).map((b) => b[2])).toEqual(["ftyp", "free", "mdat", "moov"]);
      const check = await checkCompleteness(local, name, movie.length);
      expect(check.verdict, name).toEqual({ state: "complete", container: "iso-bmff" });
      expect(check.reads, name).toBe(2);
      expect(check.bytes, name).toBeLessThanOrEqual(1024);
    }
  });

  it("is a prefix of the finished movie while recording: motion writes only the mdat size at close", async () => {
    const header = await fixture("header-only.mp4");
    const finished = await fixture("finished.mp4");
    const asRecorded = Buffer.from(finished.subarray(0, header.length));
    asRecorded.writeUInt32BE(0, 40);
    expect(asRecorded.equals(header)).toBe(true);
  });

  it("calls a finished movie cut short anywhere incomplete", async () => {
    const movie = await fixture("finished.mp4");
    const [, , mdat, moov] = boxes(movie);
    if (!mdat || !moov) throw new Error("fixture layout");
    const cuts: Array<[number, RegExp]> = [
      [40, /no moov box/], // ftyp and free only
      [mdat[0] + 8 + 1000, /mdat box at offset 40 runs past the end/],
      [moov[0], /no moov box/], // mdat size written, moov not yet
      [moov[0] + 4, /4 bytes after the last box/],
      [moov[0] + 8, /moov box at offset \d+ runs past the end/],
      [movie.length - 1, /moov box at offset \d+ runs past the end/],
    ];
    for (const [at, reason] of cuts) {
      const { reader } = memoryReader(movie.subarray(0, at));
      const check = await checkCompleteness(reader, "x.mp4", at);
      expect(check.verdict, `cut at ${at}`).toMatchObject({ state: "incomplete", reason });
    }
  });

  it("judges the file by its boxes: bytes after moov make it incomplete, a whole box does not", async () => {
    const movie = await fixture("finished-2.mp4");
    const trailing = Buffer.concat([movie, Buffer.from([0, 0, 0])]);
    expect(
      (await checkCompleteness(memoryReader(trailing).reader, "a.mov", trailing.length)).verdict,
    ).toMatchObject({ state: "incomplete", reason: /3 bytes after the last box/ });
    const free = Buffer.alloc(16);
    free.writeUInt32BE(16, 0);
    free.write("free", 4, "latin1");
    const padded = Buffer.concat([movie, free]);
    expect(
      (await checkCompleteness(memoryReader(padded).reader, "a.mp4", padded.length)).verdict.state,
    ).toBe("complete");
  });

  it("reads a 64-bit mdat size, as motion writes it past 4 GiB", async () => {
    const movie = await fixture("finished-3.mp4");
    const [, free, mdat] = boxes(movie);
    if (!free || !mdat) throw new Error("fixture layout");
    // libavformat turns `free` + 32-bit `mdat` into one mdat with a 64-bit size at close
    const large = Buffer.from(movie);
    large.writeUInt32BE(1, free[0]);
    large.write("mdat", free[0] + 4, "latin1");
    large.writeBigUInt64BE(BigInt(mdat[1] + 8), free[0] + 8);
    const check = await checkCompleteness(memoryReader(large).reader, "big.mp4", large.length);
    expect(check.verdict.state).toBe("complete");
    // and a 64-bit size that points past the end is caught
    large.writeBigUInt64BE(BigInt(large.length - free[0] + 1), free[0] + 8);
    expect(
      (await checkCompleteness(memoryReader(large).reader, "big.mp4", large.length)).verdict,
    ).toMatchObject({ state: "incomplete", reason: /runs past the end/ });
  });

  it("calls a file that shrank since it was listed incomplete", async () => {
    const movie = await fixture("finished.mp4");
    const { reader } = memoryReader(movie.subarray(0, 300), 300);
    const check = await checkCompleteness(reader, "a.mp4", movie.length);
    expect(check.verdict).toMatchObject({ state: "incomplete" });
  });
});

describe("what the check cannot judge", () => {
  it("does not read AVI or Matroska movies, or other files", async () => {
    for (const name of ["a.avi", "a.mkv", "a.jpg"]) {
      const { reader, reads } = memoryReader(Buffer.alloc(0));
      expect(isCheckable(name)).toBe(false);
      const check = await checkCompleteness(reader, name, 1000);
      expect(check).toMatchObject({ verdict: { state: "unknown" }, reads: 0, bytes: 0 });
      expect(reads).toEqual([]);
    }
    expect(isCheckable("A.MP4") && isCheckable("b.mov") && isCheckable("c.m4v")).toBe(true);
  });

  it("calls bytes that are not ISO-BMFF unknown, and an empty MP4 incomplete", async () => {
    const random = Buffer.from("e9cf202e47877e8523d8a6fd9eeb2f2c78a762833", "latin1");
    expect(
      (await checkCompleteness(memoryReader(random).reader, "a.mp4", random.length)).verdict,
    ).toEqual({ state: "unknown", reason: "not an ISO-BMFF (MP4/MOV) file" });
    const short = Buffer.from("hello");
    expect(
      (await checkCompleteness(memoryReader(short).reader, "a.mp4", short.length)).verdict.state,
    ).toBe("unknown");
    const empty = memoryReader(Buffer.alloc(0));
    const check = await checkCompleteness(empty.reader, "a.mp4", 0);
    expect(check.verdict.state).toBe("incomplete");
    expect(empty.reads).toEqual([]);
  });

  it("calls a fragmented MP4 unknown, and gives up on a file of many boxes after 8 reads", async () => {
    const box = (type: string, size: number) => {
      const b = Buffer.alloc(size);
      b.writeUInt32BE(size, 0);
      b.write(type, 4, "latin1");
      return b;
    };
    const fragmented = Buffer.concat([box("ftyp", 24), box("moov", 100), box("moof", 50)]);
    expect(
      (await checkCompleteness(memoryReader(fragmented).reader, "f.mp4", fragmented.length))
        .verdict,
    ).toMatchObject({ state: "unknown", reason: /fragmented/ });

    const many = Buffer.concat([
      box("ftyp", 24),
      ...Array.from({ length: 20 }, () => box("skip", 1000)),
      box("mdat", 100),
      box("moov", 100),
    ]);
    const { reader, reads } = memoryReader(many);
    const check = await checkCompleteness(reader, "m.mp4", many.length);
    expect(check.verdict).toMatchObject({ state: "unknown", reason: /more than 8 reads/ });
    expect(reads).toHaveLength(8);
  });
});
