import { Composer, type Context } from "grammy";
import { InvalidClipIdError, tryParseClipId } from "../../clips/clipId.js";
import type { ClipRecord } from "../../manifest/manifest.js";
import { AmbiguousClipError, ClipNotFoundError, findClip } from "../../restore/select.js";
import { clipTime } from "../../util/format.js";
import { type BotDeps, clipOfButton, quote, RESTORE_DATA } from "./common.js";
import { deliverClip } from "./delivery.js";

const USAGE =
  "usage: /restore <clip id>, e.g. /restore Camera1/2024-05-01/12-00-00.mp4 (or 2024-05-01/12-00-00.mp4 when the name is unique). /list shows a day's clips.";

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
    const tapped = await clipOfButton(ctx, deps.manifest);
    if (!tapped) return;
    const { clip, chatId } = tapped;
    await ctx.answerCallbackQuery({ text: `Sending ${clip.camera} ${clipTime(clip.name)}…` });
    await deliverClip(deps, ctx.api, chatId, clip);
  });

  return composer;
}
