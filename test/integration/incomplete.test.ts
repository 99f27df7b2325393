/**
 * Issue 17's must-show, with the real `motion` daemon (test/harness/motion.ts): motion killed
 * with SIGKILL in the middle of a long event leaves a movie that is never closed (mdat size 0,
 * no moov). `serve` backs it up as it is once it stopped changing (`incompleteAfterSeconds`),
 * marks it incomplete in the manifest, `list --json`, `status` and its Telegram notification
 * (a fake Bot API server), never marks motion's finished movie so, backs the cut-off movie up
 * again when it changes, and `restore --repair` makes a copy ffprobe plays.
 */
import { execFile } from "node:child_process";
import { appendFile, readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ageCliDecrypt } from "../harness/age.js";
import { runCli } from "../harness/cli.js";
import { type FakeTelegram, startFakeTelegram } from "../harness/fakeTelegram.js";
import { tempDir, writeConfig } from "../harness/files.js";
import {
  type Broker,
  type MosquittoSubscription,
  mosquittoSub,
  startMosquitto,
} from "../harness/mosquitto.js";
import { type MotionCamera, startMotion } from "../harness/motion.js";
import { ServeProcess, waitFor } from "../harness/serve.js";

const run = promisify(execFile);
const TOKEN = "123456:incomplete-test";
const OWNER = 4242;
/** Long waits: motion, ffmpeg and serve share a loaded 2-core machine. */
const LONG = 120_000;

interface Listed {
  id: string;
  size: number;
  sha256: string;
  remotePath: string;
  incomplete?: boolean;
}

describe("a recording cut off by SIGKILL is backed up, marked incomplete, and repaired", () => {
  let work: string;
  let media: string;
  let vault: string;
  let identityFile: string;
  let cfg: string;
  let cam: MotionCamera;
  let tg: FakeTelegram;
  let broker: Broker;
  /** Home Assistant's event entity: the first two clip events. */
  let haEvents: MosquittoSubscription;
  let serve: ServeProcess;
  let finishedId: string;
  let cutId: string;
  let cutPath: string;

  const list = async (): Promise<Listed[]> => {
    const r = await runCli(["list", "--json", "--config", cfg]);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as Listed[];
  };
  const listed = async (id: string) => (await list()).find((c) => c.id === id);
  const notes = () => tg.textsTo(OWNER);

  beforeAll(async () => {
    work = await tempDir("mev-incomplete-");
    media = join(work, "media");
    vault = join(work, "vault");
    identityFile = join(work, "identity.txt");
    [tg, broker, cam] = await Promise.all([
      startFakeTelegram({ token: TOKEN }),
      startMosquitto(),
      startMotion({ root: media, camera: "Camera1", eventGap: 2 }),
    ]);
    // A short event motion closes, then a long one cut off by SIGKILL once motion has written
    // its first burst of frames (it writes 256 KiB at a time).
    const finished = await cam.recordEvent(2);
    finishedId = finished.relPath;
    await cam.startEvent();
    const day = join(cam.cameraDir, finishedId.split("/")[1] as string);
    cutPath = await (async () => {
      const deadline = Date.now() + LONG;
      while (Date.now() < deadline) {
        for (const name of await readdir(day)) {
          const path = join(day, name);
          if (name.endsWith(".mp4") && path !== finished.path && (await stat(path)).size > 48) {
            return path;
          }
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new Error(`motion wrote no burst of the long event\n${cam.output().slice(-3000)}`);
    })();
    await cam.kill();
    cutId = `Camera1/${cutPath.slice(cam.cameraDir.length + 1)}`;

    cfg = await writeConfig(work, {
      source: { type: "local", path: media, stableSeconds: 1, incompleteAfterSeconds: 3 },
      destination: { type: "local", path: vault },
      encryption: { identityFile },
      state: { dir: join(work, "state") },
      sync: { retries: 0 },
      schedule: { sync: "*/2 * * * * *" },
      mqtt: {
        url: broker.url,
        embeddedBroker: { enabled: false },
        homeassistant: { enabled: true },
      },
      http: { port: 0 },
      telegram: {
        token: TOKEN,
        apiRoot: tg.apiRoot,
        allowedChatIds: [OWNER],
        notify: { failures: true, clips: true },
      },
    });
    haEvents = mosquittoSub(broker.url, "motioneye-vault/event", { count: 2, timeoutMs: 4 * LONG });
    await haEvents.ready;
    serve = new ServeProcess(cfg);
  }, 4 * LONG);

  afterAll(async () => {
    await serve?.stop();
    await Promise.allSettled([cam?.close(), tg?.stop(), haEvents?.stop(), broker?.close()]);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it(
    "is on the destination as the camera has it, listed and announced as incomplete",
    async () => {
      await expect(run("ffprobe", ["-v", "error", cutPath])).rejects.toThrow(/moov atom not found/);
      await waitFor(
        () => notes().some((t) => t.includes(cutId) && /INCOMPLETE/.test(t)),
        "the incomplete clip's notification",
        serve,
        LONG,
      );
      const cut = await listed(cutId);
      expect(cut).toMatchObject({ incomplete: true, size: (await stat(cutPath)).size });
      const plain = await ageCliDecrypt(join(vault, cut?.remotePath ?? ""), identityFile);
      expect(plain.equals(await readFile(cutPath))).toBe(true);

      // motion's finished movie: backed up, announced and listed as a plain new clip
      await waitFor(
        async () => (await listed(finishedId)) !== undefined,
        "the finished movie",
        serve,
        LONG,
      );
      expect((await listed(finishedId))?.incomplete).toBeUndefined();
      const finishedNotes = notes().filter((t) => t.includes(finishedId));
      expect(finishedNotes.length).toBeGreaterThan(0);
      expect(finishedNotes.every((t) => t.startsWith("New clip:"))).toBe(true);

      // Home Assistant's event entity: its own event type for the cut-off movie
      const fired = (await haEvents).map((m) => JSON.parse(m.payload) as Record<string, unknown>);
      expect(fired.find((e) => e.id === cutId)).toMatchObject({
        event_type: "clip_incomplete",
        incomplete: true,
      });
      expect(fired.find((e) => e.id === finishedId)).toMatchObject({
        event_type: "clip_backed_up",
        incomplete: false,
      });

      const status = await runCli(["status", "--json", "--config", cfg]);
      expect(JSON.parse(status.stdout).totals).toMatchObject({ clips: 2, incomplete: 1 });
      const text = await runCli(["list", "--config", cfg]);
      expect(text.stdout.split("\n").find((l) => l.includes(cutId))).toMatch(/incomplete/);
      expect(text.stdout.split("\n").find((l) => l.includes(finishedId))).not.toMatch(/incomplete/);
      // the restore shell's ls and info
      const dayOf = (id: string) => id.slice(0, id.lastIndexOf("/"));
      const shell = await runCli(["shell", "--config", cfg], {
        input: `ls /${dayOf(cutId)} /${dayOf(finishedId)}\ninfo /${cutId}\n`,
      });
      const lines = shell.stdout.split("\n");
      const nameOf = (id: string) => id.slice(id.lastIndexOf("/") + 1);
      expect(lines.find((l) => l.includes(nameOf(cutId)))).toMatch(/incomplete \(cut off\)/);
      expect(lines.find((l) => l.includes(nameOf(finishedId)))).not.toMatch(/incomplete/);
      expect(shell.stdout).toMatch(/state\s+incomplete: its recording was cut off/);
    },
    2 * LONG,
  );

  it(
    "restore --repair writes a copy ffprobe reads as video; the restored file is the backup",
    async () => {
      const out = join(work, "restored");
      const r = await runCli([
        "restore",
        cutId,
        "--repair",
        "--out",
        out,
        "--json",
        "--config",
        cfg,
      ]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/is incomplete: its recording was cut off/);
      const doc = JSON.parse(r.stdout) as { clips: Array<Record<string, unknown>> };
      const repaired = doc.clips[0]?.repaired as string;
      expect(doc.clips[0]).toMatchObject({ id: cutId, status: "restored", incomplete: true });
      expect(repaired).toBe(join(out, cutId.replace(/\.mp4$/, ".repaired.mp4")));
      expect((await readFile(join(out, cutId))).equals(await readFile(cutPath))).toBe(true);
      const { stdout } = await run("ffprobe", [
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
        repaired,
      ]);
      const probe = JSON.parse(stdout) as {
        streams: Array<{ codec_type: string; codec_name: string; width: number }>;
        format: { duration: string };
      };
      expect(probe.streams[0]).toMatchObject({
        codec_type: "video",
        codec_name: "h264",
        width: 320,
      });
      // at motion's 2 fps, the first 256 KiB burst holds seconds of video
      expect(Number(probe.format.duration)).toBeGreaterThan(1);
      expect(Number(probe.format.duration)).toBeLessThan(600);

      // without --repair: a hint, for the cut-off movie only
      const plain = await runCli(["restore", "all", "--out", join(work, "plain"), "--config", cfg]);
      expect(plain.code, plain.stderr).toBe(0);
      const said = plain.stdout.split("\n").filter((l) => l.includes(" is incomplete: "));
      expect(said).toEqual([
        `${cutId} is incomplete: its recording was cut off (no index), so it does not play as it is; --repair makes a playable copy next to it`,
      ]);
      // a reference that is no complete movie: a clear message, and the restore itself is fine
      const bad = await runCli([
        "restore",
        cutId,
        "--repair",
        "--reference",
        cutPath,
        "--out",
        join(work, "bad-reference"),
        "--config",
        cfg,
      ]);
      expect(bad.code, bad.stderr).toBe(0);
      expect(bad.stdout).toContain(
        `could not repair ${cutId}: ${cutPath} has no moov box: it is no complete MP4 movie`,
      );
    },
    LONG,
  );

  it(
    "the bot's /restore says it is incomplete, sends a playable repaired copy and the raw file",
    async () => {
      const since = (tg.calls.at(-1)?.seq ?? -1) + 1;
      tg.sendText(OWNER, `/restore ${cutId}`);
      const toOwner = (c: { params: Record<string, unknown> }) => c.params.chat_id === OWNER;
      const said = await tg.waitForCall(
        "sendMessage",
        (c) => toOwner(c) && String(c.params.text).includes("is incomplete"),
        LONG,
        { since },
      );
      expect(said.params.text).toMatch(/its recording was cut off/);
      const video = await tg.waitForCall("sendVideo", toOwner, LONG, { since });
      expect(video.params.caption).toMatch(/repaired copy: \d+ frames/);
      const playable = video.files[0]?.path ?? "";
      const { stdout } = await run("ffprobe", [
        "-v",
        "error",
        "-show_entries",
        "stream=codec_name",
        "-of",
        "csv=p=0",
        playable,
      ]);
      expect(stdout.trim()).toBe("h264");
      const raw = await tg.waitForCall("sendDocument", toOwner, LONG, { since });
      expect(raw.params.caption).toMatch(/incomplete, as backed up/);
      const sent = await readFile(raw.files[0]?.path ?? "");
      expect(sent.equals(await readFile(cutPath))).toBe(true);
    },
    LONG,
  );

  it(
    "a cut-off movie that changes after its backup is backed up again, replacing the copy",
    async () => {
      const before = await listed(cutId);
      const notesBefore = notes().length;
      // the camera comes back and goes on writing the same file (more frames' bytes)
      await appendFile(cutPath, (await readFile(cutPath)).subarray(48, 48 + 10_000));
      const grown = await readFile(cutPath);
      await waitFor(
        async () => (await listed(cutId))?.size === grown.length,
        "the changed movie to be backed up again",
        serve,
        LONG,
      );
      const after = await listed(cutId);
      expect(after).toMatchObject({ incomplete: true, remotePath: before?.remotePath });
      expect(after?.sha256).not.toBe(before?.sha256);
      const plain = await ageCliDecrypt(join(vault, after?.remotePath ?? ""), identityFile);
      expect(plain.equals(grown)).toBe(true);
      await waitFor(
        () =>
          notes()
            .slice(notesBefore)
            .some((t) => t.includes(cutId) && /INCOMPLETE/.test(t)),
        "the notification of the new copy",
        serve,
        LONG,
      );
      // one copy at its final name, nothing partial left
      const names = await readdir(join(vault, cutId, ".."));
      expect(names.filter((n) => n.startsWith(cutId.split("/").pop() as string))).toEqual([
        `${cutId.split("/").pop()}.age`,
      ]);
    },
    2 * LONG,
  );
});
