import type { ChildProcess } from "node:child_process";
import { copyFile, mkdir, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { App } from "../../src/app/compose.js";
import { loadConfig } from "../../src/config/load.js";
import type { Extension } from "../../src/extensions/contract.js";
import { createTelegramExtension } from "../../src/extensions/telegram/index.js";
import { spawnCli } from "../harness/cli.js";
import { type Call, type FakeTelegram, startFakeTelegram } from "../harness/fakeTelegram.js";
import { sha256, tempDir, writeConfig } from "../harness/files.js";
import { pseudoRandomBytes } from "../harness/ftp.js";
import { stopProcess, track } from "../harness/processes.js";
import { botContext, directQueue } from "../harness/telegramBot.js";
import { makeH264Clip, makeJpegFrame, makeJpegImage, probe } from "../harness/video.js";

/**
 * Clips as videos that play on a phone: real H.264 movies made by ffmpeg, restored through the
 * real `serve` (and the bot in-process for the `shrink` option) to the fake Bot API, which
 * refuses any upload over the limit with a 413 as the cloud one does.
 */

const TOKEN = "7700112233:AAF-telegram-video-test-token";
const OWNER = 111;
const LONG_WAIT = 30_000;
const MAX_UPLOAD_MB = 1.5;
const LIMIT = MAX_UPLOAD_MB * 1024 * 1024;

const BIG = "Camera1/2024-05-01/10-00-00.mp4"; // 36 s, about 5.5 MB
const BIG_SECONDS = 36;
const WITH_THUMB = "Camera1/2024-05-01/09-00-00.mp4"; // 4 s, 640x360, motionEye's .thumb beside it
const NO_THUMB = "Camera2/2024-05-01/09-30-00.mp4"; // 3 s, 480x270
const NOT_A_VIDEO = "Camera1/2024-05-01/11-00-00.mp4"; // 2 MB of noise named .mp4

const textOf = (c: Call) => String(c.params.text ?? c.params.caption ?? "");
const toOwner = (c: Call) => c.params.chat_id === OWNER;
const buttonsOf = (c: Call) =>
  (
    c.params.reply_markup as {
      inline_keyboard?: Array<Array<{ text: string; callback_data: string }>>;
    }
  )?.inline_keyboard?.flat() ?? [];
const press = (tg: FakeTelegram, c: Call, label: string) => {
  const button = buttonsOf(c).find((b) => b.text === label);
  if (!button) throw new Error(`no button "${label}" in ${JSON.stringify(buttonsOf(c))}`);
  const edited = tg.nextCall("editMessageText", toOwner, LONG_WAIT);
  tg.pressButton(OWNER, (c.result as { message_id: number }).message_id, button.callback_data);
  return edited;
};
const fileOf = (c: Call, param: string) => {
  const file = c.files.find((f) => f.param === param);
  if (!file?.path) throw new Error(`${c.method} carried no ${param}`);
  return file;
};

function ask(tg: FakeTelegram, text: string, method: string, match: (c: Call) => boolean) {
  const answer = tg.nextCall(method, (c) => toOwner(c) && match(c), LONG_WAIT);
  tg.sendText(OWNER, text);
  return answer;
}

/** Files this program left in the temp dir. */
const leftovers = async (tmp: string) =>
  (await readdir(tmp)).filter((n) => n.startsWith("motioneye-vault"));

let videos: string;

beforeAll(async () => {
  videos = await tempDir("mev-videos-");
  await Promise.all([
    makeH264Clip(join(videos, "big.mp4"), { seconds: BIG_SECONDS, kbps: 1200 }),
    makeH264Clip(join(videos, "short.mp4"), { seconds: 4 }),
    makeH264Clip(join(videos, "small.mp4"), { seconds: 3, width: 480, height: 270 }),
  ]);
  await makeJpegFrame(join(videos, "short.mp4"), join(videos, "short.thumb"));
});

afterAll(async () => {
  if (videos) await rm(videos, { recursive: true, force: true });
});

/** Puts a file at `<root>/<id>`, settled an hour ago (so a sync takes it at once). */
async function place(root: string, id: string, from: string | Buffer): Promise<void> {
  const file = join(root, id);
  await mkdir(dirname(file), { recursive: true });
  if (typeof from === "string") await copyFile(from, file);
  else await writeFile(file, from);
  const old = new Date(Date.now() - 3600_000);
  await utimes(file, old, old);
}

interface Served {
  tg: FakeTelegram;
  serve: ChildProcess;
  work: string;
  tmp: string;
  output: () => string;
}

/** The real `serve` with a local camera folder and vault, the fake Bot API, and clips placed. */
async function startServe(opts: { env?: Record<string, string> } = {}): Promise<Served> {
  const [tg, work] = await Promise.all([
    startFakeTelegram({ token: TOKEN, maxUploadBytes: LIMIT }),
    tempDir(),
  ]);
  const source = join(work, "motioneye");
  const tmp = join(work, "tmp");
  await mkdir(tmp);
  await place(source, BIG, join(videos, "big.mp4"));
  await place(source, WITH_THUMB, join(videos, "short.mp4"));
  await place(source, `${WITH_THUMB}.thumb`, join(videos, "short.thumb"));
  await place(source, NO_THUMB, join(videos, "small.mp4"));
  await place(source, NOT_A_VIDEO, pseudoRandomBytes(2 * 1024 * 1024, "noise"));
  await place(source, "Camera1/2024-05-02/08-00-00.mp4", pseudoRandomBytes(3000, "d2"));
  await place(source, "Camera2/2024-05-03/08-00-00.mp4", pseudoRandomBytes(4000, "d3"));
  const cfg = await writeConfig(work, {
    source: { type: "local", path: source, stableSeconds: 0 },
    destination: { type: "local", path: join(work, "vault") },
    state: { dir: join(work, "state") },
    sync: { retries: 0 },
    schedule: { sync: "" },
    mqtt: { embeddedBroker: { enabled: false } },
    telegram: {
      token: TOKEN,
      apiRoot: tg.apiRoot,
      allowedChatIds: [OWNER],
      maxUploadMB: MAX_UPLOAD_MB,
      notify: { clips: true },
    },
  });
  let output = "";
  const serve = track(spawnCli(["serve", "--config", cfg], { env: { TMPDIR: tmp, ...opts.env } }), {
    name: "serve",
  });
  serve.stdout?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  serve.stderr?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  await tg.waitForCall("setMyCommands", undefined, LONG_WAIT).catch((err: Error) => {
    throw new Error(`${err.message}\nserve output:\n${output}`);
  });
  // serve syncs when it starts; a /sync runs after that one, so its answer means all are in.
  await ask(tg, "/sync", "sendMessage", (c) => /^Sync done/.test(textOf(c)));
  const status = await ask(tg, "/status", "sendMessage", (c) => /^motionEye Vault/.test(textOf(c)));
  expect(textOf(status)).toContain("backed up: 6 clip(s)");
  return { tg, serve, work, tmp, output: () => output };
}

async function stopServe(s: Served | undefined): Promise<void> {
  if (!s) return;
  await stopProcess(s.serve);
  await Promise.allSettled([s.tg.stop(), rm(s.work, { recursive: true, force: true })]);
}

describe("telegram videos through serve, with ffmpeg", () => {
  let s: Served;
  beforeAll(async () => {
    s = await startServe();
  });
  afterAll(() => stopServe(s));

  it("a clip over maxUploadMB arrives as playable parts under the limit, captioned part i/n, in order; the next restore of the chat waits its turn", async () => {
    const { tg } = s;
    const since = (tg.calls.at(-1)?.seq ?? 0) + 1;
    const done = tg.nextCall(
      "editMessageText",
      (c) => toOwner(c) && /sent in \d+ parts/.test(textOf(c)),
      LONG_WAIT,
    );
    const queued = tg.nextCall("sendMessage", (c) => toOwner(c) && /queued/.test(textOf(c)));
    const after = tg.nextCall(
      "sendVideo",
      (c) => toOwner(c) && textOf(c).includes(NO_THUMB),
      LONG_WAIT,
    );
    tg.sendText(OWNER, `/restore ${BIG}`);
    tg.sendText(OWNER, `/restore ${NO_THUMB}`);
    const final = await done;
    expect(textOf(final)).toMatch(
      new RegExp(`^${BIG}: sent in \\d+ parts \\(sha256 verified; cut at keyframes`),
    );

    const parts = tg.calls.filter((c) => c.seq >= since && c.method === "sendVideo" && c.ok);
    const bigParts = parts.filter((c) => textOf(c).includes(BIG));
    const n = bigParts.length;
    expect(n).toBeGreaterThanOrEqual(2);
    expect(bigParts.map((c) => textOf(c).split(" · ")[0])).toEqual(
      Array.from({ length: n }, (_, i) => `part ${i + 1}/${n}`),
    );
    expect(tg.calls.filter((c) => c.seq >= since && c.status === 413)).toEqual([]);
    let total = 0;
    for (const part of bigParts) {
      const video = fileOf(part, "video");
      expect(video.size).toBeLessThanOrEqual(LIMIT);
      const seen = await probe(video.path ?? "");
      expect(seen).toMatchObject({ codec: "h264", width: 640, height: 360 });
      expect(seen.frames).toBeGreaterThan(0);
      expect(part.params).toMatchObject({ width: 640, height: 360, supports_streaming: true });
      expect(part.params.duration).toBe(Math.max(1, Math.round(seen.duration)));
      total += seen.duration;
    }
    expect(Math.abs(total - BIG_SECONDS)).toBeLessThanOrEqual(2);

    // The progress message said how far it got, part by part.
    const progress = tg.calls
      .filter((c) => c.seq >= since && c.method === "editMessageText" && toOwner(c))
      .map(textOf);
    for (let i = 1; i <= n; i++) expect(progress).toContain(`${BIG}: sending part ${i}/${n}…`);

    // The second restore of the same chat was told it waits, and went after the last part.
    expect(textOf(await queued)).toBe(
      `${NO_THUMB}: queued behind 1 earlier restore(s) of this chat.`,
    );
    const second = await after;
    expect(second.seq).toBeGreaterThan(bigParts.at(-1)?.seq ?? Number.POSITIVE_INFINITY);
    await expect.poll(() => leftovers(s.tmp), { timeout: 10_000 }).toEqual([]);
  }, 90_000);

  it("sendVideo carries duration, width, height and a thumbnail: motionEye's .thumb scaled, else a frame", async () => {
    const { tg } = s;
    const withThumb = await ask(tg, `/restore ${WITH_THUMB}`, "sendVideo", () => true);
    expect(withThumb.params).toMatchObject({
      duration: 4,
      width: 640,
      height: 360,
      supports_streaming: true,
    });
    const original = await readFile(join(videos, "short.thumb"));
    const thumb = fileOf(withThumb, "thumbnail");
    expect(thumb.size).toBeLessThanOrEqual(200 * 1000);
    expect(thumb.sha256).not.toBe(sha256(original)); // 640 px wide: scaled to Telegram's 320
    expect(await probe(thumb.path ?? "")).toMatchObject({
      codec: "mjpeg",
      width: 320,
      height: 180,
    });
    expect(fileOf(withThumb, "video").sha256).toBe(
      sha256(await readFile(join(videos, "short.mp4"))),
    );

    const noThumb = await ask(tg, `/restore ${NO_THUMB}`, "sendVideo", () => true);
    expect(noThumb.params).toMatchObject({ duration: 3, width: 480, height: 270 });
    const frame = await probe(fileOf(noThumb, "thumbnail").path ?? "");
    expect(frame).toMatchObject({ codec: "mjpeg", width: 320, height: 180 });
  }, 60_000);

  it("announces a new clip with its thumbnail, Restore and Preview; Preview sends a short small animation", async () => {
    const { tg } = s;
    const notice = await tg.waitForCall(
      "sendPhoto",
      (c) => toOwner(c) && textOf(c).includes(WITH_THUMB),
      LONG_WAIT,
    );
    expect(fileOf(notice, "photo").sha256).toBe(
      sha256(await readFile(join(videos, "short.thumb"))),
    );
    expect(buttonsOf(notice).map((b) => b.text)).toEqual(["Restore", "Preview"]);
    const preview = buttonsOf(notice)[1]?.callback_data ?? "";
    expect(Buffer.byteLength(preview)).toBeLessThanOrEqual(64);

    const animation = tg.nextCall("sendAnimation", toOwner, LONG_WAIT);
    tg.pressButton(OWNER, (notice.result as { message_id: number }).message_id, preview);
    const sent = await animation;
    expect(textOf(sent)).toContain(WITH_THUMB);
    expect(buttonsOf(sent).map((b) => b.text)).toEqual(["Restore"]);
    const seen = await probe(fileOf(sent, "animation").path ?? "");
    expect(seen.codec).toBe("h264");
    expect(seen.width).toBeLessThanOrEqual(320);
    expect(seen.duration).toBeLessThanOrEqual(6.5);
    expect(seen.frames).toBeGreaterThan(0);
  }, 60_000);

  it("a clip over the limit that ffmpeg cannot read as a video: a clear message with the CLI command; nothing uploaded or left", async () => {
    const { tg } = s;
    const uploads = tg.uploads.length;
    const reply = await ask(tg, `/restore ${NOT_A_VIDEO}`, "sendMessage", (c) =>
      textOf(c).startsWith("Could not"),
    );
    expect(textOf(reply)).toMatch(
      new RegExp(
        `^Could not cut ${NOT_A_VIDEO} \\(2\\.0 MiB\\) into parts under the ${MAX_UPLOAD_MB} MB a bot may upload: ffprobe cannot read it \\(.+\\)\\.\nRestore it with: motioneye-vault restore ${NOT_A_VIDEO}$`,
      ),
    );
    expect(textOf(reply)).not.toContain("/tmp");
    expect(tg.uploads.length).toBe(uploads);
    await expect.poll(() => leftovers(s.tmp), { timeout: 10_000 }).toEqual([]);
  });

  it("/list: today by default, buttons to the previous and next day with clips, a camera filter", async () => {
    const { tg } = s;
    const list = (text: string) => ask(tg, text, "sendMessage", (c) => /clips/i.test(textOf(c)));
    // Real videos' sizes vary with the encoder's version: only the random clips' are fixed.
    const labels = (c: Call) => buttonsOf(c).map((b) => b.text.replace(/ · \d+ KiB$/, " · (size)"));

    const today = await list("/list");
    expect(textOf(today)).toMatch(/^No clips backed up on \d{4}-\d\d-\d\d\./);
    expect(labels(today)).toEqual(["« 2024-05-03"]);

    const d2 = await list("/list 2024-05-02");
    expect(labels(d2)).toEqual(["08:00:00 · 2.9 KiB", "« 2024-05-01", "2024-05-03 »"]);
    const d3 = await press(tg, d2, "2024-05-03 »");
    expect(textOf(d3)).toMatch(/^Clips on 2024-05-03: 1 /);
    expect(labels(d3)).toEqual(["08:00:00 · 3.9 KiB", "« 2024-05-02"]);

    const d1 = await list("/list 2024-05-01");
    expect(labels(d1).filter((l) => !/·/.test(l))).toEqual([
      "2024-05-02 »",
      "• All cameras",
      "Camera1",
      "Camera2",
    ]);
    expect(labels(d1).filter((l) => /·/.test(l))).toHaveLength(4);
    const cam2 = await press(tg, d1, "Camera2");
    expect(textOf(cam2)).toContain("Showing Camera2 only.");
    // Camera2's next day with clips is the 3rd: the 2nd has only Camera1's.
    expect(labels(cam2)).toEqual([
      "09:30:00 · (size)",
      "2024-05-03 »",
      "All cameras",
      "Camera1",
      "• Camera2",
    ]);
    const cam2d3 = await press(tg, cam2, "2024-05-03 »");
    expect(textOf(cam2d3)).toContain("Showing Camera2 only.");
    expect(labels(cam2d3)).toEqual(["08:00:00 · 3.9 KiB", "« 2024-05-01"]);

    const all = [today, d2, d3, d1, cam2, cam2d3].flatMap(buttonsOf);
    for (const b of all) expect(Buffer.byteLength(b.callback_data)).toBeLessThanOrEqual(64);
  });
});

describe("telegram videos through serve, without ffmpeg on PATH", () => {
  let s: Served;
  beforeAll(async () => {
    // node itself is run by its full path: an empty PATH only hides ffmpeg and ffprobe.
    const emptyBin = await tempDir("mev-empty-bin-");
    s = await startServe({ env: { PATH: emptyBin } });
  });
  afterAll(() => stopServe(s));

  it("a clip over the limit gets one clear message with how to install ffmpeg; nothing uploaded, nothing left in the temp dir", async () => {
    const { tg } = s;
    const since = (tg.calls.at(-1)?.seq ?? 0) + 1;
    const reply = await ask(tg, `/restore ${BIG}`, "sendMessage", () => true);
    const text = textOf(reply);
    expect(text).toContain(`${BIG} is 5.`);
    expect(text).toContain(`over the ${MAX_UPLOAD_MB} MB a bot may upload, so it was not sent`);
    expect(text).toContain("needs ffmpeg, which is not installed here");
    expect(text).toContain("sudo apt install ffmpeg");
    expect(text).toContain(`motioneye-vault restore ${BIG}`);
    // /status's answer marks the end of anything the restore might still have done.
    await ask(tg, "/status", "sendMessage", (c) => textOf(c).startsWith("motionEye Vault"));
    const toChat = tg.calls.filter(
      (c) => c.seq >= since && toOwner(c) && !["getUpdates"].includes(c.method),
    );
    expect(toChat.map((c) => c.method)).toEqual(["sendMessage", "sendMessage"]);
    expect(tg.uploads.filter((u) => u.param === "video" || u.param === "document")).toEqual([]);
    expect(await leftovers(s.tmp)).toEqual([]);
  });

  it("a clip under the limit still goes as a video, with motionEye's .thumb as it is", async () => {
    const video = await ask(s.tg, `/restore ${WITH_THUMB}`, "sendVideo", () => true);
    expect(video.params.duration).toBeUndefined();
    expect(fileOf(video, "thumbnail").sha256).toBe(
      sha256(await readFile(join(videos, "short.thumb"))),
    );
    await expect.poll(() => leftovers(s.tmp), { timeout: 10_000 }).toEqual([]);
  });
});

describe("telegram videos through serve, several sources (sources:)", () => {
  // The same path on both cameras: only the prefix of the id tells them apart.
  const PATH = "Camera1/2024-05-01/09-00-00.mp4";
  const GARAGE = `garage/${PATH}`;
  const PORCH = `porch/${PATH}`;
  let tg: FakeTelegram;
  let work: string;
  let serve: ChildProcess;
  let output = "";

  beforeAll(async () => {
    [tg, work] = await Promise.all([
      startFakeTelegram({ token: TOKEN, maxUploadBytes: LIMIT }),
      tempDir(),
    ]);
    const garage = join(work, "garage");
    const porch = join(work, "porch");
    // Each source's .thumb has a size of its own: the thumbnail that arrives says whose it is.
    await Promise.all([
      makeJpegImage(join(work, "garage.thumb"), 300, 100),
      makeJpegImage(join(work, "porch.thumb"), 200, 200),
    ]);
    await place(garage, PATH, join(videos, "short.mp4"));
    await place(garage, `${PATH}.thumb`, join(work, "garage.thumb"));
    await place(porch, PATH, join(videos, "small.mp4"));
    await place(porch, `${PATH}.thumb`, join(work, "porch.thumb"));
    await place(porch, "Camera2/2024-05-02/08-00-00.mp4", pseudoRandomBytes(3000, "p2"));
    const cfg = await writeConfig(work, {
      sources: [
        { name: "garage", type: "local", path: garage, stableSeconds: 0 },
        { name: "porch", type: "local", path: porch, stableSeconds: 0 },
      ],
      destination: { type: "local", path: join(work, "vault") },
      state: { dir: join(work, "state") },
      sync: { retries: 0 },
      schedule: { sync: "" },
      mqtt: { embeddedBroker: { enabled: false } },
      telegram: {
        token: TOKEN,
        apiRoot: tg.apiRoot,
        allowedChatIds: [OWNER],
        maxUploadMB: MAX_UPLOAD_MB,
        notify: { clips: true },
      },
    });
    serve = track(spawnCli(["serve", "--config", cfg]), { name: "serve" });
    const collect = (d: Buffer) => {
      output += d.toString();
    };
    serve.stdout?.on("data", collect);
    serve.stderr?.on("data", collect);
    await tg.waitForCall("setMyCommands", undefined, LONG_WAIT).catch((err: Error) => {
      throw new Error(`${err.message}\nserve output:\n${output}`);
    });
    await ask(tg, "/sync", "sendMessage", (c) => /^Sync done/.test(textOf(c)));
  });

  afterAll(async () => {
    if (serve) await stopProcess(serve);
    await Promise.allSettled([tg?.stop(), rm(work, { recursive: true, force: true })]);
  });

  it("/status has a line per source", async () => {
    const status = await ask(tg, "/status", "sendMessage", (c) =>
      textOf(c).startsWith("motionEye Vault"),
    );
    expect(textOf(status)).toContain("backed up: 3 clip(s)");
    expect(textOf(status)).toMatch(/^garage: ok, 0 pending, last success /m);
    expect(textOf(status)).toMatch(/^porch: ok, 0 pending, last success /m);
  });

  it("a new clip's notice and its video carry the .thumb of the clip's own source", async () => {
    for (const [id, thumb] of [
      [GARAGE, "garage.thumb"],
      [PORCH, "porch.thumb"],
    ] as const) {
      const notice = await tg.waitForCall(
        "sendPhoto",
        (c) => toOwner(c) && textOf(c).includes(id),
        LONG_WAIT,
      );
      expect(fileOf(notice, "photo").sha256).toBe(sha256(await readFile(join(work, thumb))));
    }

    const garage = await ask(tg, `/restore ${GARAGE}`, "sendVideo", () => true);
    expect(fileOf(garage, "video").sha256).toBe(sha256(await readFile(join(videos, "short.mp4"))));
    expect(garage.params).toMatchObject({ width: 640, height: 360 });
    expect(await probe(fileOf(garage, "thumbnail").path ?? "")).toMatchObject({
      codec: "mjpeg",
      width: 300,
      height: 100,
    });
    const porch = await ask(tg, `/restore ${PORCH}`, "sendVideo", () => true);
    expect(fileOf(porch, "video").sha256).toBe(sha256(await readFile(join(videos, "small.mp4"))));
    expect(porch.params).toMatchObject({ width: 480, height: 270 });
    expect(await probe(fileOf(porch, "thumbnail").path ?? "")).toMatchObject({
      codec: "mjpeg",
      width: 200,
      height: 200,
    });
  }, 60_000);

  it("/list names cameras <source>/<camera>; its camera filter and day buttons follow them", async () => {
    const labels = (c: Call) => buttonsOf(c).map((b) => b.text.replace(/ · [\d.]+ [KM]?i?B$/, ""));
    const day = await ask(tg, "/list 2024-05-01", "sendMessage", (c) => /clips/i.test(textOf(c)));
    expect(textOf(day)).toContain("garage/Camera1: 1 clip(s)");
    expect(textOf(day)).toContain("porch/Camera1: 1 clip(s)");
    expect(labels(day)).toEqual([
      "garage/Camera1 09:00:00",
      "porch/Camera1 09:00:00",
      "2024-05-02 »",
      "• All cameras",
      "garage/Camera1",
      "porch/Camera1",
    ]);

    // garage/Camera1 has no clip on a later day: no day button once it is chosen.
    const garage = await press(tg, day, "garage/Camera1");
    expect(textOf(garage)).toContain("Showing garage/Camera1 only.");
    expect(labels(garage)).toEqual([
      "09:00:00",
      "All cameras",
      "• garage/Camera1",
      "porch/Camera1",
    ]);
    const all = await press(tg, garage, "All cameras");
    const next = await press(tg, all, "2024-05-02 »");
    expect(textOf(next)).toMatch(/^Clips on 2024-05-02: 1 /);
    expect(textOf(next)).toContain("porch/Camera2: 1 clip(s)");
    expect(labels(next)).toEqual(["08:00:00", "« 2024-05-01"]);

    for (const b of [day, garage, all, next].flatMap(buttonsOf)) {
      expect(Buffer.byteLength(b.callback_data)).toBeLessThanOrEqual(64);
    }
  });
});

describe("telegram.oversize: shrink (the bot in-process)", () => {
  let tg: FakeTelegram;
  let work: string;
  let app: App;
  let ext: Extension | undefined;

  beforeAll(async () => {
    [tg, work] = await Promise.all([
      startFakeTelegram({ token: TOKEN, maxUploadBytes: LIMIT }),
      tempDir(),
    ]);
    const source = join(work, "motioneye");
    await place(source, BIG, join(videos, "big.mp4"));
    const cfg = await writeConfig(work, {
      source: { type: "local", path: source, stableSeconds: 0 },
      destination: { type: "local", path: join(work, "vault") },
      state: { dir: join(work, "state") },
      telegram: {
        token: TOKEN,
        apiRoot: tg.apiRoot,
        allowedChatIds: [OWNER],
        maxUploadMB: MAX_UPLOAD_MB,
        oversize: "shrink",
      },
    });
    const logger = pino({ level: "silent" });
    app = new App(loadConfig({ file: cfg, env: {} }), logger);
    const engine = await app.engine();
    await engine.run({ trigger: "cli" });
    ext = createTelegramExtension(await botContext(app, directQueue(engine)));
    await ext?.start();
    await tg.waitForCall("setMyCommands", undefined, LONG_WAIT);
  });

  afterAll(async () => {
    await ext?.stop();
    await app?.close();
    await Promise.allSettled([tg?.stop(), rm(work, { recursive: true, force: true })]);
  });

  it("re-encodes a clip over the limit into one video under it, as long as the clip", async () => {
    const video = await ask(tg, `/restore ${BIG}`, "sendVideo", () => true);
    expect(textOf(video)).toMatch(new RegExp(`^re-encoded to fit · ${BIG} · `));
    const file = fileOf(video, "video");
    expect(file.size).toBeLessThanOrEqual(LIMIT);
    const seen = await probe(file.path ?? "");
    expect(seen.codec).toBe("h264");
    expect(Math.abs(seen.duration - BIG_SECONDS)).toBeLessThanOrEqual(1);
    expect(video.params.duration).toBe(Math.round(seen.duration));
    expect(tg.calls.filter((c) => c.method === "sendVideo")).toHaveLength(1);
  }, 90_000);
});
