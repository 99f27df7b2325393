import type { ChildProcess } from "node:child_process";
import { mkdir, readdir, rm, utimes, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { App } from "../../src/app/compose.js";
import type { SyncEngine } from "../../src/backup/engine.js";
import { loadConfig } from "../../src/config/load.js";
import type { Extension } from "../../src/extensions/contract.js";
import { restoreData } from "../../src/extensions/telegram/common.js";
import { createTelegramExtension } from "../../src/extensions/telegram/index.js";
import { spawnCli } from "../harness/cli.js";
import { sftpDestination } from "../harness/config.js";
import { type Call, type FakeTelegram, startFakeTelegram } from "../harness/fakeTelegram.js";
import { sha256, tempDir, walk, writeConfig } from "../harness/files.js";
import { pseudoRandomBytes } from "../harness/ftp.js";
import { stopProcess, track } from "../harness/processes.js";
import { type FaultProxy, startFaultProxy } from "../harness/proxy.js";
import { type SftpServer, startSftpServer } from "../harness/sshd.js";
import { botContext, directQueue } from "../harness/telegramBot.js";

/**
 * The Telegram bot against a fake Bot API server over real HTTP (grammY talks to it through
 * telegram.apiRoot): what a user in an allowed chat sees, what a stranger sees, and what the
 * clips that arrive look like. Most of it runs through the real `serve`.
 */

const TOKEN = "7700112233:AAF-telegram-test-token-never-logged";
const OWNER = 111;
const SPOUSE = 222;
const STRANGER = 999;
const LONG_WAIT = 20_000;

interface Clip {
  id: string;
  bytes: Buffer;
  sha256: string;
}

/** Writes a clip (and optionally its motionEye thumbnail) under a source root, settled. */
async function writeClip(root: string, id: string, size: number, thumb?: Buffer): Promise<Clip> {
  const bytes = pseudoRandomBytes(size, id);
  const file = join(root, id);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, bytes);
  const old = new Date(Date.now() - 3600_000);
  await utimes(file, old, old);
  if (thumb) await writeFile(`${file}.thumb`, thumb);
  return { id, bytes, sha256: sha256(bytes) };
}

function localToday(): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

const textOf = (c: Call) => String(c.params.text ?? c.params.caption ?? "");
const toChat = (chat: number) => (c: Call) => c.params.chat_id === chat;
const buttonsOf = (c: Call) =>
  (
    (
      c.params.reply_markup as {
        inline_keyboard?: Array<Array<{ text: string; callback_data: string }>>;
      }
    )?.inline_keyboard ?? []
  ).flat();
const messageIdOf = (c: Call) => (c.result as { message_id: number }).message_id;
const uploadOf = (c: Call) => {
  const file = c.files[0];
  if (!file) throw new Error(`${c.method} carried no file`);
  return file;
};

const nextSeq = (tg: FakeTelegram) => (tg.calls.at(-1)?.seq ?? -1) + 1;

/** Notifications arrive on their own: a command's answer is anything else. */
const notNotice = (c: Call) => !/^(New clip|…and|Backup failed)/.test(textOf(c));

/** Sends a text and resolves with the first matching call that follows it. */
function ask(
  tg: FakeTelegram,
  chat: number,
  text: string,
  method = "sendMessage",
  match: (c: Call) => boolean = notNotice,
): Promise<Call> {
  const answer = tg.nextCall(method, (c) => toChat(chat)(c) && match(c), LONG_WAIT);
  tg.sendText(chat, text);
  return answer;
}

describe("telegram bot in serve", () => {
  let tg: FakeTelegram;
  let sftp: SftpServer;
  let proxy: FaultProxy;
  let work: string;
  let source: string;
  let tmp: string;
  let serve: ChildProcess;
  let output = "";
  const clips = new Map<string, Clip>();
  const add = async (id: string, size: number, thumb?: Buffer) => {
    const c = await writeClip(source, id, size, thumb);
    clips.set(id, c);
    return c;
  };
  const clip = (id: string) => {
    const c = clips.get(id);
    if (!c) throw new Error(`no clip ${id}`);
    return c;
  };

  beforeAll(async () => {
    [tg, sftp, work] = await Promise.all([
      startFakeTelegram({ token: TOKEN }),
      startSftpServer(),
      tempDir(),
    ]);
    proxy = await startFaultProxy({ host: sftp.host, port: sftp.port });
    source = join(work, "motioneye");
    tmp = join(work, "tmp");
    await mkdir(tmp);
    await add(`Camera1/${localToday()}/08-00-00.mp4`, 50_000, Buffer.from("today thumb"));
    await add("Camera1/2024-05-01/12-00-00.mp4", 300_000, Buffer.from("thumb 1"));
    await add("Camera1/2024-05-01/12-30-00.mp4", 100_000);
    await add("Camera2/2024-05-01/09-00-00.mp4", 200_000);
    for (let i = 0; i < 12; i++) {
      await add(`Camera1/2024-05-02/10-00-${String(i).padStart(2, "0")}.mp4`, 2_000 + i);
    }
    const cfg = await writeConfig(work, {
      source: { type: "local", path: source, stableSeconds: 0 },
      destination: sftpDestination(sftp, join(sftp.root, "vault"), {
        host: proxy.host,
        port: proxy.port,
        timeoutSeconds: 10,
      }),
      state: { dir: join(work, "state") },
      sync: { retries: 0 },
      schedule: { sync: "" },
      mqtt: { embeddedBroker: { enabled: false } },
      telegram: {
        token: TOKEN,
        apiRoot: tg.apiRoot,
        allowedChatIds: [OWNER, SPOUSE],
        notify: { failures: true, clips: true },
      },
      log: { level: "debug" },
    });
    serve = track(spawnCli(["serve", "--config", cfg], { env: { TMPDIR: tmp } }), {
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
  });

  afterAll(async () => {
    if (serve) await stopProcess(serve);
    await Promise.allSettled([
      tg?.stop(),
      proxy?.close(),
      sftp?.close(),
      rm(work, { recursive: true, force: true }),
    ]);
  });

  it("registers its commands for the menu", async () => {
    const set = await tg.waitForCall("setMyCommands");
    const names = (set.params.commands as Array<{ command: string }>).map((c) => c.command);
    expect(names).toEqual(["status", "list", "restore", "sync", "help"]);
  });

  it("/sync backs the clips up and says what it did", async () => {
    const reply = await ask(
      tg,
      OWNER,
      "/sync",
      "sendMessage",
      (c) => /^Sync /.test(textOf(c)) && !/started|follows/.test(textOf(c)),
    );
    expect(textOf(reply)).toMatch(/^Sync done: \d+ clip\(s\) backed up .*0 failed, 0 pending\.$/);
    const vault = await walk(join(sftp.root, "vault"));
    expect(vault).toEqual([...clips.keys()].map((id) => `${id}.age`).sort());
  });

  it("/status tells the last run, totals, pending, last error and the next run", async () => {
    const reply = await ask(tg, OWNER, "/status");
    const text = textOf(reply);
    expect(text).toContain(`backed up: ${clips.size} clip(s)`);
    expect(text).toMatch(/^pending: 0$/m);
    expect(text).toMatch(/^last run: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/m);
    expect(text).toMatch(/^last error: none$/m);
    expect(text).toMatch(/^next scheduled run: none scheduled$/m);
    expect(textOf(await ask(tg, SPOUSE, "/help"))).toContain("/restore <clip id>");
  });

  it("/list shows the day's clips per camera as buttons; a tap sends the clip", async () => {
    const listed = await ask(tg, OWNER, "/list 2024-05-01");
    expect(textOf(listed)).toContain("Camera1: 2 clip(s)");
    expect(textOf(listed)).toContain("Camera2: 1 clip(s)");
    const buttons = buttonsOf(listed).filter((b) => b.callback_data.startsWith("r:"));
    expect(buttons.map((b) => b.text)).toEqual([
      "Camera1 12:00:00 · 293 KiB",
      "Camera1 12:30:00 · 98 KiB",
      "Camera2 09:00:00 · 195 KiB",
    ]);
    for (const b of buttons) expect(Buffer.byteLength(b.callback_data)).toBeLessThanOrEqual(64);

    const wanted = clip("Camera1/2024-05-01/12-00-00.mp4");
    const tapped = tg.nextCall("sendVideo", toChat(OWNER), LONG_WAIT);
    tg.pressButton(OWNER, messageIdOf(listed), buttons[0]?.callback_data ?? "");
    const video = await tapped;
    expect(uploadOf(video).sha256).toBe(wanted.sha256);
    expect(textOf(video)).toContain(wanted.id);

    const today = await ask(tg, OWNER, "/list");
    const todays = buttonsOf(today).filter((b) => b.callback_data.startsWith("r:"));
    expect(todays.map((b) => b.text)).toEqual(["08:00:00 · 49 KiB"]);
  });

  it("/list pages a long day", async () => {
    const first = await ask(tg, OWNER, "/list 2024-05-02");
    expect(textOf(first)).toContain("Page 1/2");
    const page1 = buttonsOf(first);
    expect(page1.filter((b) => b.callback_data.startsWith("r:"))).toHaveLength(10);
    const next = page1.find((b) => b.text.startsWith("next"));
    expect(next).toBeDefined();
    const edited = tg.nextCall("editMessageText", toChat(OWNER), LONG_WAIT);
    tg.pressButton(OWNER, messageIdOf(first), next?.callback_data ?? "");
    const page2 = buttonsOf(await edited);
    expect(page2.filter((b) => b.callback_data.startsWith("r:")).map((b) => b.text)).toEqual([
      "10:00:10 · 2.0 KiB",
      "10:00:11 · 2.0 KiB",
    ]);
  });

  it("/restore sends the exact bytes, by clip id and by the short date/name form, and leaves no temp file", async () => {
    const wanted = clip("Camera2/2024-05-01/09-00-00.mp4");
    const action = tg.nextCall(
      "sendChatAction",
      (c) => toChat(OWNER)(c) && c.params.action === "upload_video",
      LONG_WAIT,
    );
    const byId = await ask(tg, OWNER, `/restore ${wanted.id}`, "sendVideo");
    await action;
    expect(uploadOf(byId).sha256).toBe(wanted.sha256);
    expect(uploadOf(byId).size).toBe(wanted.bytes.length);
    expect(textOf(byId)).toContain("sha256 verified");

    const short = await ask(tg, OWNER, "/restore 2024-05-01/09-00-00.mp4", "sendVideo");
    expect(uploadOf(short).sha256).toBe(wanted.sha256);

    const ours = async () => (await readdir(tmp)).filter((n) => n.startsWith("motioneye-vault"));
    await expect.poll(ours, { timeout: 5000 }).toEqual([]);
  });

  it("a slow restore does not keep other chats (or strangers) waiting", async () => {
    const wanted = clip("Camera1/2024-05-01/12-30-00.mp4");
    // The vault's SFTP connection goes silent: the restore hangs until the proxy lets go.
    proxy.setMode({ kind: "stall" });
    const started = tg.nextCall(
      "sendChatAction",
      (c) => toChat(OWNER)(c) && c.params.action === "upload_video",
      LONG_WAIT,
    );
    const video = ask(tg, OWNER, `/restore ${wanted.id}`, "sendVideo");
    await started;

    const status = await ask(tg, SPOUSE, "/status");
    expect(textOf(status)).toContain("backed up:");
    const refusal = await ask(tg, STRANGER + 1, "/status");
    expect(textOf(refusal)).toBe(`not authorized (chat id ${STRANGER + 1})`);
    expect(tg.calls.filter((c) => c.method === "sendVideo" && c.seq > status.seq)).toEqual([]);

    proxy.setMode({ kind: "pass" });
    expect(uploadOf(await video).sha256).toBe(wanted.sha256);
  });

  it("refuses a stranger with exactly one reply naming the chat id, and logs it", async () => {
    const since = nextSeq(tg);
    const refusal = await ask(tg, STRANGER, "/status");
    expect(textOf(refusal)).toBe(`not authorized (chat id ${STRANGER})`);
    tg.sendText(STRANGER, "/list 2024-05-01");
    tg.sendText(STRANGER, "/restore Camera1/2024-05-01/12-00-00.mp4");
    tg.pressButton(
      STRANGER,
      1,
      restoreData({ id: "Camera1/2024-05-01/12-00-00.mp4", date: "2024-05-01" }),
    );
    // Each update is handled as it comes; the owner's answer marks the stranger's as done.
    await ask(tg, OWNER, "/status");
    await expect.poll(() => tg.pendingUpdates().length).toBe(0);
    const toStranger = tg.calls.filter(
      (c) => c.seq >= since && (toChat(STRANGER)(c) || c.method === "answerCallbackQuery"),
    );
    expect(toStranger.map((c) => [c.method, textOf(c)])).toEqual([
      ["sendMessage", `not authorized (chat id ${STRANGER})`],
    ]);
    expect(output).toMatch(/refused a chat.*"chatId":999|"chatId":999.*refused a chat/);
  });

  it("answers bad arguments clearly: traversal, unknown and ambiguous clips, bad dates", async () => {
    await add("Camera2/2024-05-01/12-00-00.mp4", 1000); // same name as Camera1's: ambiguous
    await ask(tg, OWNER, "/sync", "sendMessage", (c) => textOf(c).startsWith("Sync done"));
    const uploadsBefore = tg.uploads.length;
    const cases: Array<[string, RegExp]> = [
      ["/restore ../../etc/passwd", /"\.\." is not allowed/],
      ["/restore Camera1/2024-05-01/../../../../etc/shadow.mp4", /"\.\." is not allowed/],
      ["/restore /etc/passwd", /relative/],
      ["/restore Camera1/2024-05-01/23-59-59.mp4", /not found|no clip|not in the vault/i],
      ["/restore 2024-05-01/12-00-00.mp4", /Camera1\/2024-05-01\/12-00-00\.mp4/],
      [
        "/restore Camera1/2024-05-01/12-00-00.mp4\u202Egpj.exe",
        /not found|no clip|not in the vault/i,
      ],
      ["/restore Camera1\u22152024-05-01\u221512-00-00.mp4", /invalid clip id/],
      [`/restore ${"A/".repeat(1500)}x.mp4`, /too long/],
      ["/restore", /^usage: \/restore/],
      ["/list 2024-13-45", /is not a date/],
      ["/list ../../etc", /is not a date/],
    ];
    for (const [text, expected] of cases) {
      const reply = textOf(await ask(tg, OWNER, text));
      expect(reply, text).toMatch(expected);
      expect(reply, text).not.toMatch(/\n\s+at |Error:|\/tmp\/|\u202E/);
      expect(reply.length, text).toBeLessThan(700);
    }
    expect(tg.uploads.length).toBe(uploadsBefore);
  });

  it("notifies each new clip with its thumbnail and a Restore button that works", async () => {
    const thumb = Buffer.concat([
      Buffer.from([0xff, 0xd8, 0xff, 0xe0]),
      pseudoRandomBytes(3000, "t"),
    ]);
    const fresh = await add("Camera1/2024-05-01/14-00-00.mp4", 60_000, thumb);
    const photos = [OWNER, SPOUSE].map((chat) =>
      tg.nextCall("sendPhoto", (c) => toChat(chat)(c) && textOf(c).includes(fresh.id), LONG_WAIT),
    );
    const done = await ask(tg, OWNER, "/sync", "sendMessage", (c) => /^Sync done/.test(textOf(c)));
    expect(textOf(done)).toMatch(/^Sync done: 1 clip\(s\) backed up/);
    const [photo] = await Promise.all(photos);
    if (!photo) throw new Error("no photo");
    expect(uploadOf(photo).sha256).toBe(sha256(thumb));
    const restore = buttonsOf(photo).find((b) => b.text === "Restore");
    expect(restore).toBeDefined();

    const video = tg.nextCall("sendVideo", toChat(OWNER), LONG_WAIT);
    tg.pressButton(OWNER, messageIdOf(photo), restore?.callback_data ?? "");
    expect(uploadOf(await video).sha256).toBe(fresh.sha256);
  });

  it("notifies a failed run once per distinct error", async () => {
    // A file where the camera's folder must go: every run fails the same way until it is gone.
    const blocker = join(sftp.root, "vault", "Camera3");
    await writeFile(blocker, "not a folder");
    await add("Camera3/2024-05-01/15-00-00.mp4", 1000);
    const since = nextSeq(tg);
    const failedRun = (c: Call) => /^Sync (finished with errors|failed)/.test(textOf(c));
    const notice = tg.nextCall(
      "sendMessage",
      (c) => toChat(OWNER)(c) && textOf(c).startsWith("Backup failed"),
      LONG_WAIT,
    );
    await ask(tg, OWNER, "/sync", "sendMessage", failedRun);
    expect(textOf(await notice)).toContain("Camera3/2024-05-01/15-00-00.mp4");
    await ask(tg, OWNER, "/sync", "sendMessage", failedRun);
    await ask(tg, OWNER, "/status"); // lets a second notice, if any, arrive first
    const notices = tg.calls.filter(
      (c) => c.seq >= since && toChat(OWNER)(c) && textOf(c).startsWith("Backup failed"),
    );
    expect(notices).toHaveLength(1);

    await rm(blocker);
    const ok = await ask(tg, OWNER, "/sync", "sendMessage", (c) => /^Sync done/.test(textOf(c)));
    expect(textOf(ok)).toMatch(/^Sync done: 1 clip\(s\) backed up/);
  });

  it("survives a Bot API outage and never logs the token", async () => {
    tg.failNext("getUpdates", { disconnect: true, times: 2 });
    await ask(tg, OWNER, "/status"); // ends the held poll: the next two polls are cut
    await expect.poll(() => output, { timeout: LONG_WAIT }).toContain("cannot reach the Bot API");
    expect(textOf(await ask(tg, SPOUSE, "/status"))).toContain("backed up:");
    expect(output).toContain("polling works again");

    await stopProcess(serve);
    expect(serve.exitCode).toBe(0);
    expect(output).not.toContain(TOKEN);
    expect(output).not.toContain(TOKEN.split(":")[1]);
  });
});

describe("telegram extension in-process: limits", () => {
  let tg: FakeTelegram;
  let work: string;
  let app: App;
  let engine: SyncEngine;
  let ext: Extension | undefined;
  const logs: string[] = [];

  beforeAll(async () => {
    [tg, work] = await Promise.all([startFakeTelegram({ token: TOKEN }), tempDir()]);
    const source = join(work, "motioneye");
    await writeClip(source, "2024-05-01/12-00-00.mp4", 1_200_000);
    await writeClip(source, "2024-05-01/12-10-00.mp4", 20_000);
    const cfg = await writeConfig(work, {
      source: { type: "local", path: source, stableSeconds: 0 },
      destination: { type: "local", path: join(work, "vault") },
      state: { dir: join(work, "state") },
      sync: { retries: 0 },
      telegram: {
        token: TOKEN,
        apiRoot: tg.apiRoot,
        allowedChatIds: [OWNER],
        maxUploadMB: 1,
        oversize: "refuse",
      },
    });
    const logger = pino({ level: "debug" }, { write: (line: string) => void logs.push(line) });
    app = new App(loadConfig({ file: cfg, env: {} }), logger);
    engine = await app.engine();
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

  it("is off without a token", async () => {
    const loaded = loadConfig({ env: {}, cwd: work, file: join(work, "config.yml") });
    loaded.config.telegram.token = undefined;
    const off = createTelegramExtension({
      ...(await botContext(app, directQueue(engine))),
      config: loaded.config,
    });
    expect(off).toBeUndefined();
  });

  it("with oversize: refuse, refuses a clip over telegram.maxUploadMB before any work, with a clear message", async () => {
    const reply = await ask(tg, OWNER, "/restore 2024-05-01/12-00-00.mp4");
    expect(textOf(reply)).toMatch(
      /is 1\.1 MiB, over the 1 MB a bot may upload, so it was not sent/,
    );
    expect(textOf(reply)).toContain("motioneye-vault restore 2024-05-01/12-00-00.mp4");
    const small = await ask(tg, OWNER, "/restore 2024-05-01/12-10-00.mp4", "sendVideo");
    expect(uploadOf(small).size).toBe(20_000);
    expect(tg.calls.filter((c) => c.method === "sendChatAction" && c.seq < reply.seq)).toEqual([]);
    expect(tg.uploads).toHaveLength(1);
  });

  it("falls back to sendDocument when sendVideo is refused, and logs why without the token", async () => {
    tg.failNext("sendVideo", { errorCode: 400, description: "Bad Request: wrong file type" });
    const doc = await ask(tg, OWNER, "/restore 2024-05-01/12-10-00.mp4", "sendDocument");
    expect(uploadOf(doc).sha256).toBe(sha256(pseudoRandomBytes(20_000, "2024-05-01/12-10-00.mp4")));
    const log = logs.join("");
    expect(log).toContain("sendVideo: 400 Bad Request: wrong file type");
    expect(log).not.toContain(TOKEN.split(":")[1]);
  });
});
