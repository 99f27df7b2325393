/**
 * The repair of a cut-off movie, on real motion output (test/fixtures/motion): motion writes a
 * movie in place and only writes the mdat size and the moov at close, so a movie cut off
 * (motion killed, power lost) is a closed movie's bytes up to some point with the mdat size 0.
 * make-fixtures.ts checked exactly that on motion's own snapshots.
 */
import { execFile } from "node:child_process";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { readReference } from "../../src/restore/repair/reference.js";
import { RepairError, repairedName, repairMovie } from "../../src/restore/repair/repairMovie.js";
import { sha256File, tempDir } from "../harness/files.js";

const run = promisify(execFile);
const FIXTURES = join(import.meta.dirname, "../fixtures/motion");
const fixture = (name: string) => join(FIXTURES, name);

/** What ffprobe (decoding every frame) says of a movie. */
async function probe(file: string) {
  const { stdout } = await run("ffprobe", [
    "-v",
    "error",
    "-count_frames",
    "-print_format",
    "json",
    "-show_format",
    "-show_streams",
    file,
  ]);
  const doc = JSON.parse(stdout) as {
    streams: {
      codec_type: string;
      codec_name: string;
      width: number;
      height: number;
      nb_read_frames: string;
    }[];
    format: { duration: string };
  };
  const video = doc.streams.find((s) => s.codec_type === "video");
  return { video, frames: Number(video?.nb_read_frames), duration: Number(doc.format.duration) };
}

/** Decoding errors ffmpeg reports for the whole movie (none for a playable one). */
async function decodeErrors(file: string): Promise<string> {
  const { stderr } = await run("ffmpeg", ["-v", "error", "-i", file, "-f", "null", "-"]);
  return stderr.trim();
}

/** The closed movie's bytes up to `length`, with the mdat size motion writes only at close zeroed. */
async function cutOff(dir: string, name: string, length?: number): Promise<string> {
  const movie = await readFile(fixture("finished.mp4"));
  const moovAt = movie.indexOf("moov") - 4;
  const cut = Buffer.from(movie.subarray(0, length ?? moovAt));
  expect(cut.toString("latin1", 44, 48)).toBe("mdat");
  cut.writeUInt32BE(0, 40);
  const path = join(dir, name);
  await writeFile(path, cut);
  return path;
}

describe("repairing a cut-off motion movie", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir("mev-repair-");
  });

  it("the cut-off movie does not play; its repaired copy is H.264 video of every frame", async () => {
    const movie = await cutOff(dir, "12-00-00.mp4");
    await expect(run("ffprobe", ["-v", "error", movie])).rejects.toThrow(/moov atom not found/);
    const before = await sha256File(movie);
    const out = repairedName(movie);
    expect(out).toBe(join(dir, "12-00-00.repaired.mp4"));

    const result = await repairMovie(movie, fixture("finished-2.mp4"), out);

    const original = await probe(fixture("finished.mp4"));
    const repaired = await probe(out);
    expect(repaired.video).toMatchObject({ codec_name: "h264", width: 320, height: 240 });
    expect(repaired.frames).toBe(original.frames);
    expect(result).toMatchObject({ frames: original.frames, fps: 2, droppedBytes: 0 });
    // 2 fps like the camera: about as long as the closed movie
    expect(repaired.duration).toBeGreaterThan(original.duration * 0.8);
    expect(repaired.duration).toBeLessThan(original.duration * 1.5);
    expect(await decodeErrors(out)).toBe("");
    expect(await sha256File(movie)).toBe(before); // the cut-off file is only read
  });

  it("a movie motion left when it was killed (SIGKILL) mid-event: its whole frames play", async () => {
    const killed = join(FIXTURES, "../motion-killed/killed.mp4");
    await expect(run("ffprobe", ["-v", "error", killed])).rejects.toThrow(/moov atom not found/);
    const before = await sha256File(killed);
    const out = join(dir, "killed.repaired.mp4");
    const result = await repairMovie(killed, fixture("finished.mp4"), out);
    const repaired = await probe(out);
    expect(repaired.video).toMatchObject({ codec_name: "h264", width: 320, height: 240 });
    expect(repaired.frames).toBe(result.frames);
    // 256 KiB of motion's H.264 at 2 fps: seconds of video, not a frame or two
    expect(result.frames).toBeGreaterThanOrEqual(10);
    expect(repaired.duration).toBeGreaterThan(result.frames / 2 - 1);
    expect(repaired.duration).toBeLessThan(result.frames / 2 + 1);
    // the burst ends inside a frame: that frame is left out, and said
    expect(result.droppedBytes).toBeGreaterThan(0);
    expect(result.stopped).toMatch(/cut short by the end of the data/);
    expect(await decodeErrors(out)).toBe("");
    expect(await sha256File(killed)).toBe(before);
  });

  it("data cut short in the middle of a frame: the whole frames are kept, the rest is said", async () => {
    const movie = await cutOff(dir, "short.mp4", 60_000);
    const result = await repairMovie(movie, fixture("finished-3.mp4"), repairedName(movie));
    const repaired = await probe(result.path);
    expect(repaired.video?.codec_name).toBe("h264");
    expect(repaired.frames).toBe(result.frames);
    expect(result.frames).toBeGreaterThan(0);
    expect(result.frames).toBeLessThan((await probe(fixture("finished.mp4"))).frames);
    expect(result.droppedBytes).toBeGreaterThan(0);
    expect(result.stopped).toMatch(/cut short by the end of the data/);
    expect(await decodeErrors(result.path)).toBe("");
  });

  it("takes SPS/PPS and the frame rate from a complete movie of the camera", async () => {
    const ref = await readReference(fixture("finished-4.mp4"));
    expect(ref).toMatchObject({ codec: "avc1", lengthSize: 4, fps: 2, width: 320, height: 240 });
    expect((ref.sps[0]?.[0] ?? 0) & 0x1f).toBe(7);
    expect((ref.pps[0]?.[0] ?? 0) & 0x1f).toBe(8);
  });

  it("says why when the data cannot be saved, and leaves no file", async () => {
    const out = join(dir, "nothing.repaired.mp4");
    const noFrames = fixture("header-only.mp4");
    await expect(repairMovie(noFrames, fixture("finished.mp4"), out)).rejects.toThrow(
      /holds no video data: the recording was cut off before the camera wrote its first frames/,
    );
    const cut = await cutOff(dir, "ref-cut.mp4");
    await expect(repairMovie(cut, cut, out)).rejects.toThrow(
      /has no moov box: it is no complete MP4 movie/,
    );
    await expect(
      repairMovie(fixture("finished.mp4"), fixture("finished-2.mp4"), out),
    ).rejects.toThrow(/it has its index \(moov\): it is no cut-off movie/);
    await expect(
      repairMovie(cut, fixture("finished-2.mp4"), out, { ffmpeg: join(dir, "no-ffmpeg") }),
    ).rejects.toThrow(/no-ffmpeg was not found: install ffmpeg to repair movies/);
    await expect(stat(out)).rejects.toThrow(/ENOENT/);
  });

  it("a reference of another codec is refused by name", async () => {
    const mpeg4 = join(dir, "mpeg4.mp4");
    await run("ffmpeg", [
      "-v",
      "error",
      "-f",
      "lavfi",
      "-i",
      "testsrc=size=320x240:rate=2",
      "-frames:v",
      "4",
      "-c:v",
      "mpeg4",
      "-y",
      mpeg4,
    ]);
    const cut = await cutOff(dir, "other-codec.mp4");
    const err = await repairMovie(cut, mpeg4, join(dir, "x.mp4")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RepairError);
    expect((err as Error).message).toMatch(
      /holds mp4v video, not H.264 \(avc1\): only H.264 movies can be repaired/,
    );
  });
});
