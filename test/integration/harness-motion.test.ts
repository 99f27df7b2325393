/**
 * The camera harness itself: the real motion daemon records real movies from the loopback
 * network camera into a motionEye layout, runs motionEye's hooks in the right order with the
 * right arguments, writes the half-finished movie the vault must never take for a clip, and
 * ProFTPD (configured as on motionEyeOS) serves it all read-only as /sdcard.
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ageCliDecrypt } from "../harness/age.js";
import { runCli } from "../harness/cli.js";
import { ffprobe } from "../harness/ffprobe.js";
import { tempDir, walk, writeConfig } from "../harness/files.js";
import {
  type HookCall,
  MEYECTL,
  type MotionCamera,
  type RecordedMovie,
  startMotion,
} from "../harness/motion.js";
import { runCommand } from "../harness/processes.js";
import { type ProftpdServer, startProftpd } from "../harness/proftpd.js";

const relayed = (calls: HookCall[], event: string) =>
  calls.filter((c) => c.hook === "relayevent" && c.event === event);
const recorded = (calls: HookCall[], event: string) =>
  calls.filter((c) => c.hook === "record" && c.event === event);

describe("motion + ProFTPD harness", () => {
  let ftp: ProftpdServer;
  let motion: MotionCamera;
  let work: string;
  const movies: RecordedMovie[] = [];
  let midRecording: { size: number; probe: Awaited<ReturnType<typeof ffprobe>> } | undefined;

  const ftpUrl = (path: string) =>
    `ftp://${ftp.user}:${ftp.password}@${ftp.host}:${ftp.port}${path}`;

  beforeAll(async () => {
    [ftp, work] = await Promise.all([startProftpd(), tempDir()]);
    motion = await startMotion({
      root: ftp.localRoot,
      storageCommand: `${MEYECTL} record storage %$ %f`,
      endCommand: `${MEYECTL} record end %$`,
      thumbnailDelaySeconds: 1,
    });
    movies.push(await motion.recordEvent(2));
    // A second, longer event: look at the movie while motion is still writing it.
    await motion.startEvent();
    const known = new Set(movies.map((m) => m.path));
    const day = movies[0]?.relPath.split("/")[1] as string;
    let inProgress: string | undefined;
    for (let i = 0; i < 50 && !inProgress; i++) {
      const names = await readdir(join(motion.cameraDir, day)).catch(() => [] as string[]);
      inProgress = names
        .filter((n) => n.endsWith(".mp4"))
        .map((n) => join(motion.cameraDir, day, n))
        .find((p) => !known.has(p));
      if (!inProgress) await new Promise((r) => setTimeout(r, 100));
    }
    if (inProgress) {
      await new Promise((r) => setTimeout(r, 2000));
      midRecording = { size: (await stat(inProgress)).size, probe: await ffprobe(inProgress) };
    }
    movies.push(await motion.endEvent());
    await Promise.all(movies.map((m) => m.thumbnailReady));
  }, 120_000);

  afterAll(async () => {
    await motion?.close();
    await ftp?.close();
    if (work) await runCommand("rm", ["-rf", work]);
  });

  it("records movies ffprobe accepts, in <camera>/<date>/<time>.mp4, with a picture and a .thumb", async () => {
    expect(movies).toHaveLength(2);
    for (const movie of movies) {
      expect(movie.relPath).toMatch(/^Camera1\/\d{4}-\d\d-\d\d\/\d\d-\d\d-\d\d\.mp4$/);
      const probe = await ffprobe(movie.path);
      expect(probe, movie.path).toMatchObject({ ok: true, codec: "h264", width: 320, height: 240 });
      expect(movie.picture).toMatch(/^.*\/Camera1\/\d{4}-\d\d-\d\d\/\d\d-\d\d-\d\d\.jpg$/);
      const jpeg = await readFile(movie.picture as string);
      expect(jpeg.subarray(0, 2).toString("hex")).toBe("ffd8");
      const thumb = await readFile(movie.thumb);
      expect(thumb.subarray(0, 2).toString("hex")).toBe("ffd8");
    }
  });

  it("a movie being recorded is not one yet: no moov box, ffprobe refuses it", () => {
    expect(midRecording, "the second event's movie was not seen while recording").toBeDefined();
    expect(midRecording?.probe.ok).toBe(false);
    expect(midRecording?.probe.error).toMatch(/moov atom not found|Invalid data/);
  });

  it("runs motionEye's hooks in order: start, picture, end command, movie_end + storage command", () => {
    const calls = motion.hooks();
    expect(relayed(calls, "start")).toHaveLength(2);
    expect(relayed(calls, "stop")).toHaveLength(2);
    const movieEnds = relayed(calls, "movie_end");
    expect(movieEnds.map((c) => c.args)).toEqual(movies.map((m) => ["1", m.path]));
    expect(relayed(calls, "picture_save").map((c) => c.args)).toEqual(
      movies.map((m) => ["1", m.picture]),
    );
    // File Storage's command runs for the movie and for the picture, with the camera name.
    const storage = recorded(calls, "storage").map((c) => c.args);
    expect(storage).toEqual(
      expect.arrayContaining(
        movies.flatMap((m) => [
          ["Camera1", m.path],
          ["Camera1", m.picture],
        ]),
      ),
    );
    expect(storage).toHaveLength(4);
    expect(recorded(calls, "end").map((c) => c.args)).toEqual([["Camera1"], ["Camera1"]]);
    // Per event: its picture (at the start), then its movie closed; then the next event. (The
    // hooks of one moment race each other: each is its own process.)
    const index = (c: HookCall | undefined) => calls.indexOf(c as HookCall);
    const starts = relayed(calls, "start");
    const pictures = relayed(calls, "picture_save");
    for (let i = 0; i < 2; i++) {
      expect(index(pictures[i])).toBeLessThan(index(movieEnds[i]));
      expect(index(starts[i])).toBeLessThan(index(movieEnds[i]));
      if (i > 0) expect(index(movieEnds[i - 1])).toBeLessThan(index(starts[i]));
    }
  });

  it("ProFTPD serves the media root read-only as /sdcard, with MLSD", async () => {
    const movie = movies[0] as RecordedMovie;
    const [camera, day, name] = movie.relPath.split("/");
    const listing = await runCommand("curl", [
      "-sS",
      "-X",
      "MLSD",
      ftpUrl(`/sdcard/${camera}/${day}/`),
    ]);
    const line = listing.stdout.split(/\r?\n/).find((l) => l.endsWith(` ${name}`));
    expect(line, listing.stdout).toMatch(/(^|;)type=file;/);
    expect(line).toMatch(new RegExp(`(^|;)size=${(await stat(movie.path)).size};`));
    const download = await runCommand("curl", [
      "-sS",
      "-o",
      join(work, "got.mp4"),
      ftpUrl(`/sdcard/${movie.relPath}`),
    ]);
    expect(download.code).toBe(0);
    expect((await readFile(join(work, "got.mp4"))).equals(await readFile(movie.path))).toBe(true);
    const upload = await runCommand(
      "curl",
      ["-sS", "-T", join(work, "got.mp4"), ftpUrl(`/sdcard/${camera}/${day}/new.mp4`)],
      { allowFailure: true },
    );
    expect(upload.code).not.toBe(0);
    expect(upload.stderr).toMatch(/550|denied/i);
  });

  it("the vault's FTP source (path /sdcard) finds every movie and backs them up whole", async () => {
    const dest = join(work, "vault");
    const identityFile = join(work, "identity.txt");
    const config = await writeConfig(work, {
      source: {
        type: "ftp",
        host: ftp.host,
        port: ftp.port,
        user: ftp.user,
        password: ftp.password,
        path: ftp.path,
        stableSeconds: 1,
      },
      destination: { type: "local", path: dest },
      encryption: { identityFile },
      state: { dir: join(work, "state") },
    });
    const run = await runCli(["sync", "--config", config, "--json"]);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ uploaded: movies.length, failed: 0 });
    expect(await walk(dest)).toEqual(movies.map((m) => `${m.relPath}.age`).sort());
    for (const movie of movies) {
      const plain = await ageCliDecrypt(join(dest, `${movie.relPath}.age`), identityFile);
      expect(plain.equals(await readFile(movie.path))).toBe(true);
    }
  });

  it("kill(): motion dies mid-recording like a power cut, leaving a movie without its moov box", async () => {
    await motion.startEvent();
    const day = movies[0]?.relPath.split("/")[1] as string;
    const dir = join(motion.cameraDir, day);
    const known = new Set(movies.map((m) => m.path));
    let cutOff: string | undefined;
    for (let i = 0; i < 100 && !cutOff; i++) {
      const names = await readdir(dir);
      cutOff = names
        .filter((n) => n.endsWith(".mp4"))
        .map((n) => join(dir, n))
        .find((p) => !known.has(p));
      if (!cutOff) await new Promise((r) => setTimeout(r, 100));
    }
    expect(cutOff).toBeDefined();
    await motion.kill();
    expect(motion.pid).toBeNull();
    const probe = await ffprobe(cutOff as string);
    expect(probe.ok).toBe(false);
    expect(probe.error).toMatch(/moov atom not found|Invalid data/);
    expect(relayed(motion.hooks(), "movie_end")).toHaveLength(movies.length);
  });
});
