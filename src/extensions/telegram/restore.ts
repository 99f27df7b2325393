import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { extname, join } from "node:path";
import { type Api, Composer, type Context, InputFile } from "grammy";
import { InvalidClipIdError, tryParseClipId } from "../../clips/clipId.js";
import type { ClipRecord } from "../../manifest/manifest.js";
import { ClipRestoreError } from "../../restore/open.js";
import { restoreClip } from "../../restore/restore.js";
import { AmbiguousClipError, ClipNotFoundError, findClip } from "../../restore/select.js";
import { clipTime, formatBytes } from "../../util/format.js";
import {
  apiSignal,
  type BotDeps,
  quote,
  RESTORE_DATA,
  resolveRestoreData,
  uploadLimitBytes,
} from "./common.js";

/** Telegram plays these inline; anything else goes as a document. */
const PLAYABLE = /\.(mp4|m4v|mov)$/i;
/** Telegram shows a chat action for 5 s: repeat it a little sooner while working. */
const CHAT_ACTION_EVERY_MS = 4500;

const USAGE =
  "usage: /restore <clip id>, e.g. /restore Camera1/2024-05-01/12-00-00.mp4 (or 2024-05-01/12-00-00.mp4 when the name is unique). /list shows a day's clips.";

/** A clip too big for the Bot API is refused before any work, with what to do instead. */
export function tooBigText(clip: ClipRecord, deps: Pick<BotDeps, "config">): string {
  return [
    `${clip.id} is ${formatBytes(clip.size)}, over the ${deps.config.maxUploadMB} MB a bot may upload, so it was not sent.`,
    `Restore it with: motioneye-vault restore ${clip.id}`,
    "(A local Bot API server takes up to 2000 MB: set telegram.apiRoot and telegram.maxUploadMB.)",
  ].join("\n");
}

/** Finds a clip from user input; a bad or unknown id becomes a reply, never an exception. */
export async function lookUpClip(
  deps: BotDeps,
  input: string,
): Promise<{ clip: ClipRecord } | { error: string }> {
  try {
    return { clip: await findClip(deps.manifest, input) };
  } catch (err) {
    if (err instanceof ClipNotFoundError) {
      // restore.ts names the CLI's `list`; here the hint is the bot's own command.
      const date = tryParseClipId(input)?.date;
      return {
        error: `Clip not found: "${quote(input)}" is not in the vault.\n/list${date ? ` ${date}` : ""} shows that day's clips.`,
      };
    }
    if (err instanceof InvalidClipIdError || err instanceof AmbiguousClipError) {
      return { error: quote(err.message, 300) };
    }
    deps.log.error({ err: deps.describe(err) }, "telegram: clip lookup failed");
    return { error: `Could not look the clip up: ${quote(deps.describe(err), 300)}` };
  }
}

/**
 * Sends a clip to a chat: the size check answers at once; the download, decryption and upload run
 * in the background (a few at a time), so the bot keeps answering while they work.
 */
export async function deliverClip(
  deps: BotDeps,
  api: Api,
  chatId: number,
  clip: ClipRecord,
): Promise<void> {
  if (clip.size > uploadLimitBytes(deps.config)) {
    await api.sendMessage(chatId, tooBigText(clip, deps));
    return;
  }
  const ahead = deps.restores.ahead;
  deps.tasks.spawn(`restore ${clip.id}`, async (signal) => {
    if (ahead > 0) {
      await api.sendMessage(chatId, `${clip.id}: queued behind ${ahead} other restore(s).`);
    }
    await deps.restores.run(() => restoreAndSend(deps, api, chatId, clip, signal));
  });
}

async function restoreAndSend(
  deps: BotDeps,
  api: Api,
  chatId: number,
  clip: ClipRecord,
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
  try {
    const file = join(dir, `clip${extname(clip.name).replace(/[^.A-Za-z0-9]/g, "")}`);
    const result = await restoreClip(deps.vault, clip, file, { signal });
    const caption = `${clip.id} · ${formatBytes(result.size)}${result.verified ? " · sha256 verified" : " · not verified (no checksum recorded)"}`;
    // A path, not a stream: grammY re-reads the file when a request is retried.
    const upload = () => new InputFile(file, clip.id.split("/").join("_"));
    let sent = false;
    if (PLAYABLE.test(clip.name)) {
      try {
        await api.sendVideo(
          chatId,
          upload(),
          { caption, supports_streaming: true },
          apiSignal(signal),
        );
        sent = true;
      } catch (err) {
        if (signal.aborted) throw err;
        log.warn({ err: deps.describe(err) }, "telegram: sendVideo failed, sending as a document");
      }
    }
    if (!sent) await api.sendDocument(chatId, upload(), { caption }, apiSignal(signal));
    log.info({ size: result.size, verified: result.verified }, "telegram: clip sent");
  } catch (err) {
    if (signal.aborted) return;
    // ClipRestoreError already names the clip; its reason says what went wrong.
    const why = err instanceof ClipRestoreError ? err.reason : deps.describe(err);
    log.warn({ err: deps.describe(err) }, "telegram: restore failed");
    await api
      .sendMessage(chatId, `Could not send ${clip.id}: ${quote(why, 300)}`)
      .catch(() => undefined);
  } finally {
    clearInterval(actions);
    await rm(dir, { recursive: true, force: true });
  }
}

export function restoreComposer(deps: BotDeps): Composer<Context> {
  const composer = new Composer<Context>();

  composer.command("restore", async (ctx) => {
    const input = ctx.match.trim();
    if (input === "") {
      await ctx.reply(USAGE);
      return;
    }
    const found = await lookUpClip(deps, input);
    if ("error" in found) {
      await ctx.reply(found.error);
      return;
    }
    await deliverClip(deps, ctx.api, ctx.chat.id, found.clip);
  });

  composer.callbackQuery(RESTORE_DATA, async (ctx) => {
    const [, date = "", key = ""] = ctx.match;
    const clip = await resolveRestoreData(deps.manifest, date, key);
    const chatId = ctx.chat?.id;
    if (!clip || chatId === undefined) {
      await ctx.answerCallbackQuery({
        text: "That clip is no longer in the vault: send /list again.",
        show_alert: true,
      });
      return;
    }
    await ctx.answerCallbackQuery({ text: `Sending ${clip.camera} ${clipTime(clip.name)}…` });
    await deliverClip(deps, ctx.api, chatId, clip);
  });

  return composer;
}
