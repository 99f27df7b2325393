import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { extname, join } from "node:path";
import type { Api } from "grammy";
import type { ClipRecord } from "../../manifest/manifest.js";
import { ClipRestoreError } from "../../restore/open.js";
import { restoreClip } from "../../restore/restore.js";
import { formatBytes } from "../../util/format.js";
import type { Logger } from "../../util/log.js";
import { readThumb } from "../thumbnail.js";
import { apiSignal, type BotDeps, quote, uploadLimitBytes } from "./common.js";
import { ProgressMessage } from "./progress.js";
import { sendIncomplete } from "./restoreIncomplete.js";
import { type OutgoingVideo, sendVideoFile } from "./sendVideo.js";
import { NotAVideoError, probeVideo, type VideoInfo } from "./video/probe.js";
import { shrinkToFit } from "./video/shrink.js";
import { CannotCutError, splitToFit, type VideoPart } from "./video/split.js";
import { videoThumbnail } from "./video/thumbnail.js";
import { haveFfmpeg, INSTALL_FFMPEG, MissingToolError, ToolFailedError } from "./video/tools.js";

/** Telegram shows a chat action for 5 s: repeat it a little sooner while working. */
const CHAT_ACTION_EVERY_MS = 4500;

const restoreHint = (clip: ClipRecord) => `Restore it with: motioneye-vault restore ${clip.id}`;
const LOCAL_API_HINT =
  "(A local Bot API server takes up to 2000 MB: set telegram.apiRoot and telegram.maxUploadMB.)";

/** telegram.oversize: refuse, or a clip too big for the Bot API: what to do instead. */
export function tooBigText(clip: ClipRecord, deps: Pick<BotDeps, "config">): string {
  return [
    `${clip.id} is ${formatBytes(clip.size)}, over the ${deps.config.maxUploadMB} MB a bot may upload, so it was not sent.`,
    restoreHint(clip),
    LOCAL_API_HINT,
  ].join("\n");
}

/** A clip over the limit on a machine without ffmpeg: said before any download. */
export function needsFfmpegText(clip: ClipRecord, deps: Pick<BotDeps, "config">): string {
  return [
    `${clip.id} is ${formatBytes(clip.size)}, over the ${deps.config.maxUploadMB} MB a bot may upload, so it was not sent.`,
    "To send it in parts, the vault needs ffmpeg, which is not installed here.",
    INSTALL_FFMPEG,
    restoreHint(clip),
    LOCAL_API_HINT,
  ].join("\n");
}

function cannotCutText(clip: ClipRecord, deps: Pick<BotDeps, "config">, why: string): string {
  return [
    `Could not cut ${clip.id} (${formatBytes(clip.size)}) into parts under the ${deps.config.maxUploadMB} MB a bot may upload: ${quote(why, 300)}.`,
    restoreHint(clip),
  ].join("\n");
}

/**
 * The most a part may have. Telegram says "50 MB" without saying which megabyte: a part stays
 * under the decimal one (50,000,000 bytes), with room left for its thumbnail and form fields.
 */
export function partBudget(maxUploadMB: number): number {
  const limit = Math.floor(maxUploadMB * 1_000_000);
  return limit - Math.min(256 * 1024, Math.floor(limit / 10));
}

/**
 * Sends a clip to a chat. What can be answered at once is (over the limit with oversize: refuse,
 * or without ffmpeg to cut it); the rest runs in the background, one restore at a time per chat
 * and a few overall, with a progress message, so the bot keeps answering meanwhile.
 */
export async function deliverClip(
  deps: BotDeps,
  api: Api,
  chatId: number,
  clip: ClipRecord,
): Promise<void> {
  if (clip.size > uploadLimitBytes(deps.config)) {
    if (deps.config.oversize === "refuse") {
      await api.sendMessage(chatId, tooBigText(clip, deps));
      return;
    }
    if (!(await haveFfmpeg())) {
      await api.sendMessage(chatId, needsFfmpegText(clip, deps));
      return;
    }
  }
  const admission = deps.restores.admission(chatId);
  if (!admission.accepted) {
    await api.sendMessage(chatId, `${clip.id} was not queued: ${admission.reason}`);
    return;
  }
  deps.tasks.spawn(`restore ${clip.id}`, async (signal) => {
    const progress = new ProgressMessage(
      api,
      chatId,
      `${clip.id}: `,
      deps.log,
      deps.describe,
      signal,
    );
    if (admission.mine > 0) {
      await progress.set(`queued behind ${admission.mine} earlier restore(s) of this chat.`);
    } else if (admission.busy > 0) {
      await progress.set(`queued behind ${admission.busy} other restore(s).`);
    }
    await deps.restores.run(chatId, () =>
      restoreAndSend(deps, api, chatId, clip, progress, signal),
    );
  });
}

interface Job {
  deps: BotDeps;
  api: Api;
  chatId: number;
  clip: ClipRecord;
  progress: ProgressMessage;
  signal: AbortSignal;
  log: Logger;
  dir: string;
}

async function restoreAndSend(
  deps: BotDeps,
  api: Api,
  chatId: number,
  clip: ClipRecord,
  progress: ProgressMessage,
  signal: AbortSignal,
): Promise<void> {
  if (signal.aborted) return;
  const log = deps.log.child({ clip: clip.id, chatId });
  const sendAction = () => {
    api.sendChatAction(chatId, "upload_video", {}, apiSignal(signal)).catch((err: unknown) => {
      log.debug({ err: deps.describe(err) }, "telegram: chat action failed");
    });
  };
  sendAction();
  const actions = setInterval(sendAction, CHAT_ACTION_EVERY_MS);
  // mkdtemp makes the folder 0700: the decrypted clip is never readable by other users.
  const dir = await mkdtemp(join(tmpdir(), "motioneye-vault-telegram-"));
  const job: Job = { deps, api, chatId, clip, progress, signal, log, dir };
  try {
    await progress.set("decrypting…");
    const file = join(dir, `clip${extname(clip.name).replace(/[^.A-Za-z0-9]/g, "")}`);
    let decrypted = 0;
    const result = await restoreClip(deps.vault, clip, file, {
      signal,
      onBytes: (n) => {
        decrypted += n;
        const share = Math.min(99, Math.floor((100 * decrypted) / Math.max(1, clip.size)));
        progress.tick(`decrypting… ${share}%`);
      },
    });
    const checked = result.verified ? "sha256 verified" : "not verified (no checksum recorded)";
    if (clip.incomplete) {
      // Cut off: it does not play as it is; a repaired copy when one can be made, else the file.
      await progress.remove();
      const caption = `${clip.id} · ${formatBytes(result.size)} · ${checked}`;
      await sendIncomplete(deps, api, chatId, clip, file, caption, signal);
      log.info({ size: result.size }, "telegram: incomplete clip sent");
      return;
    }
    const ffmpeg = await haveFfmpeg();
    if (result.size <= uploadLimitBytes(deps.config)) {
      await progress.set("sending…");
      await sendWhole(job, file, `${clip.id} · ${formatBytes(result.size)} · ${checked}`, ffmpeg);
      await progress.remove();
      log.info({ size: result.size, verified: result.verified }, "telegram: clip sent");
      return;
    }
    // ffmpeg was there when the restore was asked for; it may have gone since.
    if (!ffmpeg) throw new MissingToolError("ffmpeg");
    const fitted = await fitParts(job, file, await probeVideo(file, signal));
    if (fitted.kind === "shrunk") {
      await sendPart(job, fitted.part, "re-encoded to fit", "small");
      await progress.remove();
    } else {
      const n = fitted.parts.length;
      for (const [i, part] of fitted.parts.entries()) {
        await progress.set(`sending part ${i + 1}/${n}…`);
        await sendPart(job, part, `part ${i + 1}/${n}`, `part${i + 1}of${n}`);
      }
      await progress.set(`sent in ${n} parts (${checked}; cut at keyframes, not re-encoded).`);
    }
    const parts = fitted.kind === "parts" ? fitted.parts.length : 1;
    log.info({ size: result.size, how: fitted.kind, parts }, "telegram: clip sent over the limit");
  } catch (err) {
    if (signal.aborted) return;
    log.warn({ err: deps.describe(err) }, "telegram: restore failed");
    await progress.remove();
    await api.sendMessage(chatId, failureText(deps, clip, err)).catch(() => undefined);
  } finally {
    clearInterval(actions);
    await rm(dir, { recursive: true, force: true });
  }
}

/** A clip under the limit, as it is: with its numbers and a thumbnail when ffmpeg is here. */
async function sendWhole(job: Job, file: string, caption: string, ffmpeg: boolean): Promise<void> {
  const { clip, dir, signal } = job;
  const info = ffmpeg ? await probeVideo(file, signal).catch(() => undefined) : undefined;
  const sourceThumb = await readThumb(job.deps, clip.id);
  await send(job, {
    path: file,
    filename: clip.id.split("/").join("_"),
    caption,
    info,
    thumbnail: await videoThumbnail({
      video: file,
      info,
      sourceThumb,
      dir,
      name: "thumb",
      ffmpeg,
      signal,
    }),
  });
}

/** One part (or the shrunk clip), with a frame of its own as thumbnail; removed once sent. */
async function sendPart(job: Job, part: VideoPart, label: string, suffix: string): Promise<void> {
  const { clip, dir, signal } = job;
  const base = clip.id
    .split("/")
    .join("_")
    .replace(/\.[^.]*$/, "");
  await send(job, {
    path: part.path,
    filename: `${base}.${suffix}${extname(part.path)}`,
    caption: `${label} · ${clip.id} · ${formatBytes(part.size)}`,
    info: part.info,
    thumbnail: await videoThumbnail({
      video: part.path,
      info: part.info,
      dir,
      name: `${suffix}-thumb`,
      ffmpeg: true,
      signal,
    }),
  });
  await rm(part.path, { force: true });
}

/** The over-the-limit clip as videos under the limit: re-encoded (oversize: shrink) or cut. */
async function fitParts(
  job: Job,
  file: string,
  info: VideoInfo,
): Promise<{ kind: "shrunk"; part: VideoPart } | { kind: "parts"; parts: VideoPart[] }> {
  const { deps, dir, signal, progress } = job;
  const budget = partBudget(deps.config.maxUploadMB);
  if (deps.config.oversize === "shrink") {
    await progress.set("re-encoding to fit…");
    const part = await shrinkToFit(file, info, budget, dir, signal);
    if (part) return { kind: "shrunk", part };
    job.log.info("telegram: re-encoding could not fit the clip; cutting it into parts");
  }
  await progress.set("cutting into parts…");
  const parts = await splitToFit(file, info, budget, dir, signal);
  // The parts hold it all now: the whole clip need not take up the disk while they go out.
  await rm(file, { force: true });
  return { kind: "parts", parts };
}

function send(job: Job, video: OutgoingVideo): Promise<"video" | "document"> {
  return sendVideoFile(job.api, job.chatId, video, {
    signal: job.signal,
    log: job.log,
    describe: job.deps.describe,
    limit: uploadLimitBytes(job.deps.config),
  });
}

function failureText(deps: BotDeps, clip: ClipRecord, err: unknown): string {
  if (err instanceof MissingToolError) return needsFfmpegText(clip, deps);
  if (
    err instanceof NotAVideoError ||
    err instanceof CannotCutError ||
    err instanceof ToolFailedError
  ) {
    return cannotCutText(clip, deps, err.message);
  }
  // ClipRestoreError already names the clip; its reason says what went wrong.
  const why = err instanceof ClipRestoreError ? err.reason : deps.describe(err);
  return `Could not send ${clip.id}: ${quote(why, 300)}`;
}
