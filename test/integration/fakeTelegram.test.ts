/**
 * The fake Telegram Bot API server (test/harness/fakeTelegram.ts) against a real grammY Bot.
 */
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { autoRetry } from "@grammyjs/auto-retry";
import { run, sequentialize } from "@grammyjs/runner";
import { Bot, GrammyError, HttpError, InlineKeyboard, InputFile } from "grammy";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type FakeTelegram, startFakeTelegram } from "../harness/fakeTelegram.js";

const TOKEN = "424242:fake-token-for-tests";
const CHAT = 777001;

let dir: string;

/** Writes `size` pseudo-random bytes to a file (streamed) and returns its path and sha256. */
async function makeFile(name: string, size: number): Promise<{ path: string; sha256: string }> {
  const path = join(dir, name);
  const hash = createHash("sha256");
  const out = createWriteStream(path);
  const block = randomBytes(1 << 20);
  for (let written = 0; written < size; ) {
    const n = Math.min(block.length, size - written);
    const chunk = block.subarray(0, n);
    block[0] = (block[0] ?? 0) ^ 0x5a; // vary the blocks a little
    hash.update(chunk);
    if (!out.write(Buffer.from(chunk)))
      await new Promise<void>((r) => out.once("drain", () => r()));
    written += n;
  }
  await new Promise<void>((resolve, reject) =>
    out.end((err?: Error | null) => (err ? reject(err) : resolve())),
  );
  return { path, sha256: hash.digest("hex") };
}

function sha256File(path: string): Promise<string> {
  return readFile(path).then((b) => createHash("sha256").update(b).digest("hex"));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "fake-telegram-test-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("fake Telegram with a long-polling grammY bot", () => {
  let tg: FakeTelegram;
  let bot: Bot;
  let running: Promise<void>;

  beforeAll(async () => {
    tg = await startFakeTelegram({ token: TOKEN });
    bot = new Bot(tg.token, { client: { apiRoot: tg.apiRoot } });
    bot.command("start", (ctx) =>
      ctx.reply(`Hello ${ctx.from?.first_name}, this is ${ctx.me.username}`),
    );
    bot.command("menu", (ctx) =>
      ctx.reply("Pick one", { reply_markup: new InlineKeyboard().text("Sync now", "sync") }),
    );
    bot.command("md", (ctx) => ctx.reply(ctx.match, { parse_mode: "MarkdownV2" }));
    bot.callbackQuery("sync", async (ctx) => {
      await ctx.answerCallbackQuery({ text: "Syncing" });
      await ctx.editMessageText("Sync started");
    });
    bot.catch(() => {
      // errors of the md command are asserted through the recorded calls
    });
    await new Promise<void>((resolve) => {
      running = bot.start({ onStart: () => resolve() });
    });
  });

  afterAll(async () => {
    await bot.stop();
    await running;
    await tg.stop();
  });

  it("answers /start with sendMessage", async () => {
    const update = tg.sendText(CHAT, "/start");
    const message = update.message;
    expect(message?.entities).toEqual([{ type: "bot_command", offset: 0, length: 6 }]);
    expect(message?.chat).toMatchObject({ id: CHAT, type: "private" });
    const reply = await tg.waitForCall("sendMessage", (c) => c.params.chat_id === CHAT);
    expect(reply.ok).toBe(true);
    expect(reply.params.text).toBe("Hello Test, this is vault_test_bot");
    expect(reply.result).toMatchObject({ chat: { id: CHAT }, from: { id: 424242, is_bot: true } });
    expect(tg.textsTo(CHAT)).toEqual(["Hello Test, this is vault_test_bot"]);
    expect(tg.calls.some((c) => c.method === "getMe")).toBe(true);
    expect(tg.calls.some((c) => c.method === "deleteWebhook")).toBe(true);
  });

  it("delivers button presses and edits; a second identical edit is 'not modified'", async () => {
    const since = tg.calls.length ? (tg.calls[tg.calls.length - 1]?.seq ?? 0) + 1 : 0;
    tg.sendText(CHAT, "/menu");
    const menu = await tg.waitForCall("sendMessage", (c) => c.params.text === "Pick one", 5000, {
      since,
    });
    const sent = menu.result as { message_id: number; reply_markup?: unknown };
    expect(sent.reply_markup).toEqual({
      inline_keyboard: [[{ text: "Sync now", callback_data: "sync" }]],
    });
    tg.pressButton(CHAT, sent.message_id, "sync");
    const answered = await tg.nextCall("answerCallbackQuery");
    expect(answered.ok).toBe(true);
    const edit = await tg.waitForCall("editMessageText", undefined, 5000, { since });
    expect(edit.ok).toBe(true);
    expect(edit.result).toMatchObject({ message_id: sent.message_id, text: "Sync started" });
    await expect(
      bot.api.editMessageText(CHAT, sent.message_id, "Sync started"),
    ).rejects.toMatchObject({
      error_code: 400,
      description: expect.stringContaining("message is not modified"),
    });
  });

  it("rejects unescaped MarkdownV2 like Telegram does", async () => {
    tg.sendText(CHAT, "/md Camera1/2024-05-01/12-00-00.mp4");
    const bad = await tg.nextCall("sendMessage");
    expect(bad.ok).toBe(false);
    expect(bad.errorCode).toBe(400);
    expect(bad.description).toContain("can't parse entities");
    tg.sendText(CHAT, "/md *ok* 2024\\-05\\-01");
    const good = await tg.nextCall("sendMessage");
    expect(good.ok).toBe(true);
    expect((good.result as { text: string }).text).toBe("ok 2024-05-01");
  });
});

describe("uploads", () => {
  let tg: FakeTelegram;
  let bot: Bot;

  afterEach(async () => {
    await tg?.stop();
  });

  it("records a ~5 MB sendDocument and sendVideo of InputFile(path) with the right sha256", async () => {
    tg = await startFakeTelegram({ token: TOKEN });
    bot = new Bot(tg.token, { client: { apiRoot: tg.apiRoot } });
    await bot.init();
    const clip = await makeFile("12-00-00.mp4", 5 * 1024 * 1024 + 123);

    const doc = await bot.api.sendDocument(CHAT, new InputFile(clip.path), {
      caption: "Camera1 12:00",
    });
    expect(doc.document?.file_size).toBe(5 * 1024 * 1024 + 123);
    expect(doc.document?.file_name).toBe("12-00-00.mp4");
    expect(doc.caption).toBe("Camera1 12:00");
    const docCall = await tg.waitForCall("sendDocument");
    expect(docCall.body).toBe("multipart");
    expect(docCall.params.chat_id).toBe(CHAT);
    expect(docCall.params.caption).toBe("Camera1 12:00");
    expect(docCall.files).toHaveLength(1);
    const up = docCall.files[0];
    expect(up).toMatchObject({
      param: "document",
      filename: "12-00-00.mp4",
      size: 5 * 1024 * 1024 + 123,
    });
    expect(up?.sha256).toBe(clip.sha256);
    expect(docCall.params.document).toBe(`attach://${up?.field}`);
    expect(await sha256File(up?.path ?? "")).toBe(clip.sha256);

    const video = await bot.api.sendVideo(CHAT, new InputFile(clip.path, "clip.mp4"), {
      supports_streaming: true,
    });
    expect(video.video?.file_size).toBe(5 * 1024 * 1024 + 123);
    const videoCall = await tg.waitForCall("sendVideo");
    expect(videoCall.params.supports_streaming).toBe(true);
    expect(videoCall.files[0]).toMatchObject({
      param: "video",
      filename: "clip.mp4",
      sha256: clip.sha256,
    });
    expect(tg.uploads).toHaveLength(2);
    expect(tg.messagesTo(CHAT).map((c) => c.method)).toEqual(["sendDocument", "sendVideo"]);

    // stop() removes its own upload dir
    const uploadDir = tg.uploadDir;
    await tg.stop();
    await expect(stat(uploadDir)).rejects.toThrow();
  });

  it("answers 413 above maxUploadBytes, surfacing as a GrammyError", async () => {
    tg = await startFakeTelegram({ token: TOKEN, maxUploadBytes: 1024 * 1024 });
    bot = new Bot(tg.token, { client: { apiRoot: tg.apiRoot } });
    await bot.init();
    const big = await makeFile("big.mp4", 3 * 1024 * 1024);
    const err = await bot.api.sendVideo(CHAT, new InputFile(big.path)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GrammyError);
    expect(err).toMatchObject({ error_code: 413, description: "Request Entity Too Large" });
    const call = await tg.waitForCall("sendVideo");
    expect(call).toMatchObject({ ok: false, status: 413 });
    expect(call.files[0]).toMatchObject({
      size: 3 * 1024 * 1024,
      tooLarge: true,
      sha256: big.sha256,
    });
    expect(call.files[0]?.path).toBeUndefined();
    expect(tg.messagesTo(CHAT)).toEqual([]);

    // small enough still works on the same server (the connection was not left broken)
    const small = await makeFile("small.mp4", 1000);
    const ok = await bot.api.sendDocument(CHAT, new InputFile(small.path));
    expect(ok.document?.file_size).toBe(1000);
  });

  it("records a video's duration, size and thumbnail; sendAnimation; refuses a thumbnail that is not uploaded", async () => {
    tg = await startFakeTelegram({ token: TOKEN });
    bot = new Bot(tg.token, { client: { apiRoot: tg.apiRoot } });
    await bot.init();
    const clip = await makeFile("clip.mp4", 4000);
    const thumb = await makeFile("thumb.jpg", 1500);
    const video = await bot.api.sendVideo(CHAT, new InputFile(clip.path), {
      duration: 31,
      width: 640,
      height: 360,
      supports_streaming: true,
      thumbnail: new InputFile(thumb.path),
    });
    expect(video.video).toMatchObject({ duration: 31, width: 640, height: 360 });
    expect(video.video?.thumbnail?.file_size).toBe(1500);
    const call = await tg.waitForCall("sendVideo");
    expect(call.params).toMatchObject({ duration: 31, width: 640, height: 360 });
    const sent = Object.fromEntries(call.files.map((f) => [f.param, f.sha256]));
    expect(sent).toEqual({ video: clip.sha256, thumbnail: thumb.sha256 });

    const animation = await bot.api.sendAnimation(CHAT, new InputFile(clip.path), {
      caption: "preview",
    });
    expect(animation.animation?.file_size).toBe(4000);
    expect((await tg.waitForCall("sendAnimation")).files[0]?.param).toBe("animation");

    // grammY's types allow only an InputFile here; a bot in another language could send a URL.
    const err = await bot.api.raw
      .sendVideo({
        chat_id: CHAT,
        video: new InputFile(clip.path),
        thumbnail: "https://example.com/x.jpg" as unknown as InputFile,
      })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ error_code: 400 });
    expect(tg.messagesTo(CHAT).map((c) => c.method)).toEqual(["sendVideo", "sendAnimation"]);
  });

  it("streams a 60 MB upload to disk without holding it in memory", async () => {
    tg = await startFakeTelegram({ token: TOKEN, maxUploadBytes: Number.POSITIVE_INFINITY });
    bot = new Bot(tg.token, { client: { apiRoot: tg.apiRoot } });
    await bot.init();
    const huge = await makeFile("huge.mp4", 60 * 1024 * 1024);
    globalThis.gc?.();
    const base = process.memoryUsage();
    let peak = 0;
    const sampler = setInterval(() => {
      const m = process.memoryUsage();
      peak = Math.max(peak, m.arrayBuffers - base.arrayBuffers);
    }, 5);
    try {
      const msg = await bot.api.sendVideo(CHAT, new InputFile(huge.path));
      expect(msg.video?.file_size).toBe(60 * 1024 * 1024);
    } finally {
      clearInterval(sampler);
    }
    const call = await tg.waitForCall("sendVideo");
    expect(call.files[0]?.sha256).toBe(huge.sha256);
    expect((await stat(call.files[0]?.path ?? "")).size).toBe(60 * 1024 * 1024);
    // a buffering server would hold all 60 MB at once
    expect(peak).toBeLessThan(30 * 1024 * 1024);
  }, 60_000);

  it("the default limit is the cloud Bot API's 50 MB", async () => {
    tg = await startFakeTelegram({ token: TOKEN });
    bot = new Bot(tg.token, { client: { apiRoot: tg.apiRoot } });
    const file = await makeFile("fifty-one.mp4", 50 * 1024 * 1024 + 1);
    await expect(bot.api.sendDocument(CHAT, new InputFile(file.path))).rejects.toMatchObject({
      error_code: 413,
    });
  }, 60_000);
});

describe("faults, protocol details and shutdown", () => {
  let tg: FakeTelegram;

  afterEach(async () => {
    await tg?.stop();
  });

  it("fails a method once on request: 429 with retry_after, 500, a dropped connection", async () => {
    tg = await startFakeTelegram({ token: TOKEN });
    const plain = new Bot(tg.token, { client: { apiRoot: tg.apiRoot } });

    tg.failNext("sendMessage", { errorCode: 429, retryAfter: 1 });
    const tooMany = await plain.api.sendMessage(CHAT, "a").catch((e: unknown) => e);
    expect(tooMany).toBeInstanceOf(GrammyError);
    expect(tooMany).toMatchObject({
      error_code: 429,
      description: "Too Many Requests: retry after 1",
      parameters: { retry_after: 1 },
    });
    await expect(plain.api.sendMessage(CHAT, "b")).resolves.toMatchObject({ text: "b" });

    tg.failNext("sendMessage", { errorCode: 500 });
    await expect(plain.api.sendMessage(CHAT, "c")).rejects.toMatchObject({ error_code: 500 });

    tg.failNext("sendMessage", { disconnect: true });
    await expect(plain.api.sendMessage(CHAT, "d")).rejects.toBeInstanceOf(HttpError);

    // @grammyjs/auto-retry waits retry_after and repeats the same (multipart) request
    const retrying = new Bot(tg.token, { client: { apiRoot: tg.apiRoot } });
    retrying.api.config.use(autoRetry({ maxRetryAttempts: 2, maxDelaySeconds: 5 }));
    const small = await makeFile("retry.mp4", 200_000);
    tg.failNext("sendVideo", { errorCode: 429, retryAfter: 1 });
    const t0 = Date.now();
    const msg = await retrying.api.sendVideo(CHAT, new InputFile(small.path));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(msg.video?.file_size).toBe(200_000);
    const videoCalls = tg.calls.filter((c) => c.method === "sendVideo");
    expect(videoCalls.map((c) => c.status)).toEqual([429, 200]);
    expect(videoCalls[1]?.files[0]?.sha256).toBe(small.sha256);
    expect(tg.textsTo(CHAT)).toEqual(["b", ""]);
  });

  it("answers like Telegram to a wrong token, unknown methods, GET, urlencoded and JSON", async () => {
    tg = await startFakeTelegram({ token: TOKEN });
    const wrong = new Bot("999:wrong", { client: { apiRoot: tg.apiRoot } });
    await expect(wrong.init()).rejects.toMatchObject({
      error_code: 401,
      description: "Unauthorized",
    });

    const unknown = await fetch(`${tg.apiRoot}/bot${TOKEN}/sendTelepathy`, { method: "POST" });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({
      ok: false,
      error_code: 404,
      description: "Not Found: method not found",
    });

    const get = await fetch(`${tg.apiRoot}/bot${TOKEN}/sendmessage?chat_id=${CHAT}&text=via%20GET`);
    expect(await get.json()).toMatchObject({
      ok: true,
      result: { text: "via GET", chat: { id: CHAT } },
    });

    const form = await fetch(`${tg.apiRoot}/bot${TOKEN}/sendMessage`, {
      method: "POST",
      body: new URLSearchParams({
        chat_id: String(CHAT),
        text: "via form",
        reply_markup: JSON.stringify({ inline_keyboard: [[{ text: "x", callback_data: "y" }]] }),
      }),
    });
    expect(await form.json()).toMatchObject({
      ok: true,
      result: { text: "via form", reply_markup: { inline_keyboard: [[{ callback_data: "y" }]] } },
    });
    const formCall = await tg.waitForCall("sendMessage", (c) => c.params.text === "via form");
    expect(formCall.body).toBe("urlencoded");
    expect(formCall.params.chat_id).toBe(CHAT);

    const long = await fetch(`${tg.apiRoot}/bot${TOKEN}/sendMessage`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ chat_id: CHAT, text: "x".repeat(4097) }),
    });
    expect(long.status).toBe(400);
    expect(await long.json()).toMatchObject({ description: "Bad Request: message is too long" });

    const bot = new Bot(tg.token, { client: { apiRoot: tg.apiRoot } });
    await bot.api.setMyCommands([
      { command: "status", description: "Backup status" },
      { command: "restore", description: "Restore a clip" },
    ]);
    expect(await bot.api.getMyCommands()).toEqual([
      { command: "status", description: "Backup status" },
      { command: "restore", description: "Restore a clip" },
    ]);
    await expect(
      bot.api.setMyCommands([{ command: "Bad Command", description: "x" }]),
    ).rejects.toMatchObject({
      error_code: 400,
    });
    await expect(bot.api.sendChatAction(CHAT, "upload_video")).resolves.toBe(true);
    const m = await bot.api.sendMessage(CHAT, "<b>bold</b> &amp; <i>more</i>", {
      parse_mode: "HTML",
    });
    expect(m.text).toBe("bold & more");
    await expect(
      bot.api.sendMessage(CHAT, "a <clip> b", { parse_mode: "HTML" }),
    ).rejects.toMatchObject({
      error_code: 400,
      description: expect.stringContaining("Unsupported start tag"),
    });
    await expect(
      bot.api.sendMessage(CHAT, "k", {
        reply_markup: new InlineKeyboard().text("restore", `restore:${"x".repeat(60)}`),
      }),
    ).rejects.toMatchObject({ description: "Bad Request: BUTTON_DATA_INVALID" });
    await expect(bot.api.deleteMessage(CHAT, m.message_id)).resolves.toBe(true);
    await expect(bot.api.deleteMessage(CHAT, m.message_id)).rejects.toMatchObject({
      error_code: 400,
    });
    await expect(bot.api.editMessageText(CHAT, 99999, "x")).rejects.toMatchObject({
      description: "Bad Request: message to edit not found",
    });
  });

  it("getUpdates: long polls, confirms by offset, wakes up at once for a new update", async () => {
    tg = await startFakeTelegram({ token: TOKEN });
    const bot = new Bot(tg.token, { client: { apiRoot: tg.apiRoot } });
    const t0 = Date.now();
    expect(await bot.api.getUpdates({ timeout: 1 })).toEqual([]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);

    const waiting = bot.api.getUpdates({ timeout: 30 });
    setTimeout(() => tg.sendText(CHAT, "hello"), 50);
    const t1 = Date.now();
    const [first] = await waiting;
    expect(Date.now() - t1).toBeLessThan(1000);
    expect(first?.message?.text).toBe("hello");
    expect(first?.message?.entities).toBeUndefined();

    tg.sendText(CHAT, "/restore 2024-05-01/12-00-00.mp4");
    const both = await bot.api.getUpdates({ offset: first?.update_id });
    expect(both.map((u) => u.message?.text)).toEqual(["hello", "/restore 2024-05-01/12-00-00.mp4"]);
    expect(both[1]?.message?.entities).toEqual([{ type: "bot_command", offset: 0, length: 8 }]);
    const last = both[1]?.update_id ?? 0;
    expect(await bot.api.getUpdates({ offset: last + 1 })).toEqual([]);
    expect(tg.pendingUpdates()).toEqual([]);
  });

  it("bot.stop() then stop(): both finish promptly", async () => {
    tg = await startFakeTelegram({ token: TOKEN });
    const bot = new Bot(tg.token, { client: { apiRoot: tg.apiRoot } });
    bot.on("message", () => {});
    let running!: Promise<void>;
    await new Promise<void>((resolve) => {
      running = bot.start({ onStart: () => resolve() });
    });
    await tg.waitForCall("getMe");
    await new Promise((r) => setTimeout(r, 100)); // let the long poll get held
    const t0 = Date.now();
    await bot.stop();
    await running;
    await tg.stop();
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it("stop() with a long poll held ends at once; a later bot.stop() does not hang", async () => {
    tg = await startFakeTelegram({ token: TOKEN });
    const bot = new Bot(tg.token, { client: { apiRoot: tg.apiRoot } });
    let running!: Promise<void>;
    await new Promise<void>((resolve) => {
      running = bot.start({ onStart: () => resolve() });
    });
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    await tg.stop();
    expect(Date.now() - t0).toBeLessThan(500);
    const t1 = Date.now();
    // the server is gone: grammY's final getUpdates fails (callers must catch bot.stop())
    await expect(bot.stop()).rejects.toBeInstanceOf(HttpError);
    expect(Date.now() - t1).toBeLessThan(1000);
    await running; // grammY finishes its 3 s back-off after the failed poll, then returns
  }, 10_000);

  it("works without polling: bot.init() + handleUpdate(update)", async () => {
    tg = await startFakeTelegram({ token: TOKEN });
    const bot = new Bot(tg.token, { client: { apiRoot: tg.apiRoot } });
    bot.command("help", (ctx) => ctx.reply("/status /list /restore /sync /help"));
    await bot.init();
    await bot.handleUpdate(tg.sendText(CHAT, "/help"));
    expect(tg.textsTo(CHAT)).toEqual(["/status /list /restore /sync /help"]);
  });

  it("works with @grammyjs/runner (concurrent updates, per-chat order), which stops promptly", async () => {
    tg = await startFakeTelegram({ token: TOKEN });
    const bot = new Bot(tg.token, { client: { apiRoot: tg.apiRoot } });
    bot.use(sequentialize((ctx) => String(ctx.chat?.id)));
    bot.command("slow", async (ctx) => {
      await new Promise((r) => setTimeout(r, 300));
      await ctx.reply("slow done");
    });
    bot.command("fast", (ctx) => ctx.reply("fast done"));
    await bot.init();
    const runner = run(bot);
    tg.sendText(CHAT, "/slow");
    tg.sendText(CHAT + 1, "/fast");
    const fast = await tg.waitForCall("sendMessage", (c) => c.params.text === "fast done");
    const slow = await tg.waitForCall("sendMessage", (c) => c.params.text === "slow done");
    expect(fast.seq).toBeLessThan(slow.seq); // the other chat was not held up
    const t0 = Date.now();
    await runner.stop();
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it("a second concurrent getUpdates gets 409 Conflict, like a second bot instance would", async () => {
    tg = await startFakeTelegram({ token: TOKEN });
    const bot = new Bot(tg.token, { client: { apiRoot: tg.apiRoot } });
    const first = bot.api.getUpdates({ timeout: 30 }).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 100));
    const second = bot.api.getUpdates({ timeout: 0 });
    expect(await first).toMatchObject({ error_code: 409 });
    expect(await second).toEqual([]);
  });
});
