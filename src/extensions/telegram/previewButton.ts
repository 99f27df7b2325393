import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { extname, join } from "node:path";
import { type Api, Composer, type Context, InlineKeyboard, InputFile } from "grammy";
import type { ClipRecord } from "../../manifest/manifest.js";
import { ClipRestoreError } from "../../restore/open.js";
import { restoreClip } from "../../restore/restore.js";
import { clipTime } from "../../util/format.js";
import { apiSignal, type BotDeps, clipKey, clipOfButton, quote, restoreData } from "./common.js";
import { makePreview } from "./video/preview.js";
import { probeVideo } from "./video/probe.js";
import { haveFfmpeg } from "./video/tools.js";

/** The "Preview" button of a clip notification: date and a short hash, as for Restore. */
export const PREVIEW_DATA = /^p:(\d{4}-\d{2}-\d{2}):([A-Za-z0-9_-]{10})$/;

export function previewData(clip: Pick<ClipRecord, "id" | "date">): string {
  return `p:${clip.date}:${clipKey(clip.id)}`;
}

/**
 * Makes a few-second, low-resolution animation of the clip (ffmpeg) and sends it with
 * sendAnimation, with a Restore button for the real thing. It queues like a restore: it needs
 * the clip decrypted first.
 */
async function sendPreview(
  deps: BotDeps,
  api: Api,
  chatId: number,
  clip: ClipRecord,
  signal: AbortSignal,
): Promise<void> {
  if (signal.aborted) return;
  const log = deps.log.child({ clip: clip.id, chatId });
  const dir = await mkdtemp(join(tmpdir(), "motioneye-vault-telegram-"));
  try {
    api.sendChatAction(chatId, "upload_video", {}, apiSignal(signal)).catch(() => undefined);
    const file = join(dir, `clip${extname(clip.name).replace(/[^.A-Za-z0-9]/g, "")}`);
    await restoreClip(deps.vault, clip, file, { signal });
    const info = await probeVideo(file, signal).catch(() => undefined);
    const preview = await makePreview(file, info, dir, signal);
    await api.sendAnimation(
      chatId,
      new InputFile(preview, "preview.mp4"),
      {
        caption: `Preview: ${clip.id}`,
        reply_markup: new InlineKeyboard().text("Restore", restoreData(clip)),
      },
      apiSignal(signal),
    );
    log.info("telegram: preview sent");
  } catch (err) {
    if (signal.aborted) return;
    log.warn({ err: deps.describe(err) }, "telegram: preview failed");
    const why = err instanceof ClipRestoreError ? err.reason : deps.describe(err);
    await api
      .sendMessage(chatId, `Could not make a preview of ${clip.id}: ${quote(why, 300)}`)
      .catch(() => undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function previewComposer(deps: BotDeps): Composer<Context> {
  const composer = new Composer<Context>();
  composer.callbackQuery(PREVIEW_DATA, async (ctx) => {
    const tapped = await clipOfButton(ctx, deps.manifest);
    if (!tapped) return;
    const { clip, chatId } = tapped;
    if (!(await haveFfmpeg())) {
      await ctx.answerCallbackQuery({
        text: "A preview is made with ffmpeg, which is not installed on the vault's machine (sudo apt install ffmpeg). Restore sends the clip.",
        show_alert: true,
      });
      return;
    }
    const admission = deps.restores.admission(chatId);
    if (!admission.accepted) {
      await ctx.answerCallbackQuery({ text: admission.reason, show_alert: true });
      return;
    }
    await ctx.answerCallbackQuery({
      text: `Making a preview of ${clip.camera} ${clipTime(clip.name)}…`,
    });
    deps.tasks.spawn(`preview ${clip.id}`, (signal) =>
      deps.restores.run(chatId, () => sendPreview(deps, ctx.api, chatId, clip, signal)),
    );
  });
  return composer;
}
