/**
 * Telegram `/restore` of a 60 MiB H.264 clip, over the cloud Bot API's 50 MB: from the command
 * to the last part's upload done at the (fake) Bot API, through the real compiled `serve`, with
 * the camera on vsftpd and the vault on the real sshd. Next to it, same run: `motioneye-vault
 * restore` of the same clip (download, decrypt, verify: the work every restore must do). Also
 * serve's peak RSS through a 20 MiB clip, the 60 MiB one and one four times as big (flat: the
 * clip streams through a file, ffmpeg cuts it in its own process), and `telegram.oversize:
 * shrink` on the same clip.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { chown, copyFile, mkdir, rm, stat, utimes } from "node:fs/promises";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { type Call, type FakeTelegram, startFakeTelegram } from "../test/harness/fakeTelegram.js";
import { writeConfig } from "../test/harness/files.js";
import { ensureFtpAccount } from "../test/harness/ftp.js";
import { freePort } from "../test/harness/ports.js";
import { stopProcess } from "../test/harness/processes.js";
import { concatCopies, makeH264Clip, probe } from "../test/harness/video.js";
import { builtCli } from "./lib/build.js";
import { MiB, median, round, vmHwm } from "./lib/measure.js";
import type { BenchRow } from "./lib/types.js";
import { type BenchServers, runCliMeasured, startServers, vaultConfig } from "./lib/vault.js";

const CHAT = 4343;
const SAMPLES = 3;
const BIG = "Camera1/2024-05-01/12-00-00.mp4";
/** Four times the big one: serve's peak through it shows whether memory grows with the clip. */
const HUGE = "Camera1/2024-05-01/13-00-00.mp4";
const SMALL = "Camera1/2024-05-01/11-00-00.mp4";
/** A camera's 720p at 15 fps and about 4 Mbit/s: 12 s pieces, joined without re-encoding. */
const PIECE = { seconds: 12, width: 1280, height: 720, fps: 15, kbps: 4000, keyframeSeconds: 2 };

/** Copies a file into the camera's FTP tree, owned by the FTP user, settled an hour ago. */
async function placeOnCamera(s: BenchServers, from: string, id: string): Promise<number> {
  const { uid, gid } = await ensureFtpAccount(s.ftp.user, s.ftp.password);
  let dir = s.ftp.localRoot;
  for (const part of id.split("/").slice(0, -1)) {
    dir = join(dir, part);
    await mkdir(dir, { recursive: true });
    await chown(dir, uid, gid);
  }
  const to = join(s.ftp.localRoot, id);
  await copyFile(from, to);
  await chown(to, uid, gid);
  const settled = new Date(Date.now() - 3600_000);
  await utimes(to, settled, settled);
  return (await stat(to)).size;
}

/**
 * Serve's peak RSS through one restore alone: VmHWM is reset first (writing 5 to clear_refs), so
 * the figure for each clip is not the high-water mark of everything serve did before it.
 */
async function peakThrough<T>(pid: number, work: () => Promise<T>): Promise<[T, number]> {
  writeFileSync(`/proc/${pid}/clear_refs`, "5");
  const result = await work();
  return [result, vmHwm(pid) ?? Number.NaN];
}

/** Peak RSS (VmHWM) of the process's children and theirs, e.g. the ffmpeg serve runs. */
function childPeakSampler(pid: number): { stop(): number } {
  let peak = 0;
  const children = (p: number): number[] => {
    try {
      return readdirSync(`/proc/${p}/task`).flatMap((t) =>
        readFileSync(`/proc/${p}/task/${t}/children`, "utf8")
          .trim()
          .split(/\s+/)
          .filter(Boolean)
          .map(Number),
      );
    } catch {
      return [];
    }
  };
  const sample = () => {
    const walk = (p: number) => {
      for (const c of children(p)) {
        peak = Math.max(peak, vmHwm(c) ?? 0);
        walk(c);
      }
    };
    walk(pid);
  };
  const timer = setInterval(sample, 20);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}

interface Serve {
  child: ChildProcess;
  stop(): Promise<void>;
}

async function startServe(file: string, tg: FakeTelegram): Promise<Serve> {
  const child = spawn(process.execPath, [await builtCli(), "serve", "--config", file], {
    env: { ...process.env, CI: "true" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  child.stderr?.on("data", (d: Buffer) => {
    log = (log + d.toString()).slice(-2000);
  });
  const since = (tg.calls.at(-1)?.seq ?? -1) + 1;
  await tg.waitForCall("setMyCommands", undefined, 30_000, { since }).catch((err: Error) => {
    process.stderr.write(`serve said: ${log}\n`);
    throw err;
  });
  return { child, stop: () => stopProcess(child, 10_000) };
}

/**
 * Sends `/restore id` and resolves when the clip is all out (the call `method` matching `done`),
 * with the time from the command to the last video's upload answered, and the videos sent.
 */
async function restoreInChat(
  tg: FakeTelegram,
  id: string,
  method: "sendVideo" | "editMessageText",
  done: (c: Call) => boolean,
): Promise<{ ms: number; videos: Call[] }> {
  const since = (tg.calls.at(-1)?.seq ?? -1) + 1;
  const toChat = (c: Call) => c.params.chat_id === CHAT;
  const end = tg.waitForCall(method, (c) => toChat(c) && done(c), 600_000, { since });
  const failed = tg
    .waitForCall("sendMessage", (c) => toChat(c) && /^Could not/.test(text(c)), 600_000, { since })
    .then((c) => Promise.reject(new Error(text(c))));
  failed.catch(() => {});
  const t0 = Date.now();
  tg.sendText(CHAT, `/restore ${id}`);
  await Promise.race([end, failed]);
  const videos = tg.calls.filter((c) => c.seq >= since && c.method === "sendVideo" && c.ok);
  return { ms: (videos.at(-1)?.answeredAt ?? Number.NaN) - t0, videos };
}

const text = (c: Call) => String(c.params.text ?? c.params.caption ?? "");
const isVideoOf = (id: string) => (c: Call) => c.ok && text(c).includes(id);
const allPartsSent = (c: Call) => /sent in \d+ parts/.test(text(c));

export async function run(): Promise<BenchRow[]> {
  const servers = await startServers();
  const tg = await startFakeTelegram({ maxUploadBytes: 50 * MiB });
  try {
    const videos = join(servers.work, "videos");
    await mkdir(videos, { recursive: true });
    const piece = join(videos, "piece.mp4");
    await makeH264Clip(piece, PIECE);
    const pieceSize = (await stat(piece)).size;
    const copies = (target: number) => Math.max(1, Math.round(target / pieceSize));
    await concatCopies(piece, copies(60 * MiB), join(videos, "big.mp4"));
    await concatCopies(piece, copies(20 * MiB), join(videos, "small.mp4"));
    const bigSize = await placeOnCamera(servers, join(videos, "big.mp4"), BIG);
    const smallSize = await placeOnCamera(servers, join(videos, "small.mp4"), SMALL);
    await concatCopies(piece, 4 * copies(60 * MiB), join(videos, "huge.mp4"));
    const hugeSize = await placeOnCamera(servers, join(videos, "huge.mp4"), HUGE);
    const bigSeconds = (await probe(join(videos, "big.mp4"))).duration;

    const telegram = { token: tg.token, apiRoot: tg.apiRoot, allowedChatIds: [CHAT] };
    const sections = {
      mqtt: { embeddedBroker: { port: await freePort() }, homeassistant: { enabled: false } },
      schedule: { sync: "" },
      telegram,
    };
    const { file } = await vaultConfig(servers, "telegram-split", {
      sections,
    });
    const synced = await runCliMeasured(["sync", "--config", file]);
    if (synced.code !== 0) throw new Error(`sync failed: ${synced.stderr.slice(-500)}`);

    // The reference: the same clip restored by the CLI (download, decrypt, verify), same run.
    const alone: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const out = join(servers.work, `restored-${i}`);
      const r = await runCliMeasured(["restore", BIG, "--config", file, "--out", out]);
      if (r.code !== 0) throw new Error(`restore failed: ${r.stderr.slice(-500)}`);
      alone.push(r.wallMs);
      await rm(out, { recursive: true, force: true });
    }

    const serve = await startServe(file, tg);
    const pid = serve.child.pid;
    if (pid === undefined) throw new Error("serve did not start");
    const ffmpegPeak = childPeakSampler(pid);
    const rssAtStart = vmHwm(pid) ?? Number.NaN;
    let rssSmall = 0;
    let rssBig = 0;
    let rssHuge = 0;
    let hugeParts = 0;
    const split: number[] = [];
    let parts = 0;
    let partSizes: number[] = [];
    try {
      [, rssSmall] = await peakThrough(pid, () =>
        restoreInChat(tg, SMALL, "sendVideo", isVideoOf(SMALL)),
      );
      for (let i = 0; i < SAMPLES; i++) {
        const [r, peak] = await peakThrough(pid, () =>
          restoreInChat(tg, BIG, "editMessageText", allPartsSent),
        );
        rssBig = Math.max(rssBig, peak);
        split.push(r.ms);
        parts = r.videos.length;
        partSizes = r.videos.map((c) => c.files.find((f) => f.param === "video")?.size ?? 0);
      }
      const [huge, peak] = await peakThrough(pid, () =>
        restoreInChat(tg, HUGE, "editMessageText", allPartsSent),
      );
      rssHuge = peak;
      hugeParts = huge.videos.length;
    } finally {
      await serve.stop();
    }
    const ffmpegRss = ffmpegPeak.stop();

    // telegram.oversize: shrink, same vault and clip.
    const shrinkDir = join(servers.work, "telegram-shrink");
    await mkdir(shrinkDir, { recursive: true });
    const shrinkConfig = await writeConfig(shrinkDir, {
      ...(parseYaml(readFileSync(file, "utf8")) as Record<string, unknown>),
      telegram: { ...telegram, oversize: "shrink" },
    });
    const shrinkServe = await startServe(shrinkConfig, tg);
    let shrink: { ms: number; videos: Call[] };
    try {
      shrink = await restoreInChat(tg, BIG, "sendVideo", isVideoOf(BIG));
    } finally {
      await shrinkServe.stop();
    }
    const shrunk = shrink.videos.at(-1)?.files.find((f) => f.param === "video");
    const shrunkSeconds = shrunk?.path ? (await probe(shrunk.path)).duration : Number.NaN;

    const mb = (n: number) => round(n / MiB);
    return [
      {
        name: `Telegram /restore of a ${mb(bigSize)} MiB H.264 clip (${round(bigSeconds)} s, 720p) over the 50 MB limit -> all ${parts} parts sent, median of ${SAMPLES}`,
        value: round(median(split)),
        unit: "ms",
        lowerIsBetter: true,
        reference: {
          name: "`motioneye-vault restore` of the same clip (download, decrypt, verify)",
          value: round(median(alone)),
          unit: "ms",
        },
        target: "<= 2.5x the restore alone",
        met: median(split) <= 2.5 * median(alone),
        note: `samples (ms): ${split.map(round).join(", ")}; restore alone: ${alone.map(round).join(", ")}; part sizes (MiB): ${partSizes.map(mb).join(", ")}`,
      },
      {
        name: `serve peak RSS (VmHWM) through the /restore of a ${mb(hugeSize)} MiB clip (${hugeParts} parts)`,
        value: mb(rssHuge),
        unit: "MiB",
        lowerIsBetter: true,
        reference: {
          name: `through the ${mb(bigSize)} MiB clip's (highest of ${SAMPLES})`,
          value: mb(rssBig),
          unit: "MiB",
        },
        target: "flat: <= +16 MiB for 4x the clip",
        met: rssHuge <= rssBig + 16 * MiB,
        note: `each peak measured alone (VmHWM reset before each restore); through the ${mb(smallSize)} MiB clip's (sent whole): ${mb(rssSmall)} MiB; serve once started: ${mb(rssAtStart)} MiB; ffmpeg's own peak RSS (a separate process): ${mb(ffmpegRss)} MiB`,
      },
      {
        name: `telegram.oversize: shrink: /restore of the ${mb(bigSize)} MiB clip -> one re-encoded video sent`,
        value: round(shrink.ms),
        unit: "ms",
        lowerIsBetter: true,
        reference: { name: "split (median above)", value: round(median(split)), unit: "ms" },
        note: `sent ${mb(shrunk?.size ?? 0)} MiB for ${round(shrunkSeconds)} s of the clip's ${round(bigSeconds)} s (x264 veryfast; the CPU-bound step is the re-encode)`,
      },
    ];
  } finally {
    await tg.stop();
    await servers.close();
  }
}
