import { Composer, type Context, GrammyError, InlineKeyboard } from "grammy";
import { isDate } from "../../clips/clipId.js";
import type { ClipRecord } from "../../manifest/manifest.js";
import { clipTime, formatBytes } from "../../util/format.js";
import { type BotDeps, quote, restoreData, today } from "./common.js";

/** Clips per page: a phone screen of buttons. */
export const PAGE_SIZE = 10;

const PAGE_DATA = /^l:(\d{4}-\d{2}-\d{2}):(\d{1,5})$/;
/** The "page n/m" label button: answered, nothing else. */
const NOOP = "noop";

export interface ListView {
  text: string;
  keyboard?: InlineKeyboard;
}

/**
 * One page of a day's clips: a per-camera summary (cameras as `<source>/<camera>` with several
 * sources), and one button per clip that restores it.
 */
export async function listView(
  deps: Pick<BotDeps, "manifest" | "sources">,
  date: string,
  page: number,
): Promise<ListView> {
  const clips = await deps.manifest.listDate(date);
  if (clips.length === 0) return { text: `No clips backed up on ${date}.` };

  const cameraOf = (c: ClipRecord) => deps.sources.cameraOf(c.id, c.camera);
  const cameras = new Map<string, ClipRecord[]>();
  for (const c of clips) cameras.set(cameraOf(c), [...(cameras.get(cameraOf(c)) ?? []), c]);
  const sum = (cs: ClipRecord[]) => formatBytes(cs.reduce((n, c) => n + c.size, 0));
  const pages = Math.ceil(clips.length / PAGE_SIZE);
  const p = Math.min(Math.max(page, 0), pages - 1);

  const lines = [`Clips on ${date}: ${clips.length} (${sum(clips)})`];
  for (const [camera, cs] of cameras) lines.push(`${camera}: ${cs.length} clip(s), ${sum(cs)}`);
  lines.push("", `${pages > 1 ? `Page ${p + 1}/${pages}. ` : ""}Tap a clip to get it here.`);

  const keyboard = new InlineKeyboard();
  const withCamera = cameras.size > 1;
  for (const c of clips.slice(p * PAGE_SIZE, (p + 1) * PAGE_SIZE)) {
    const label = `${withCamera ? `${cameraOf(c)} ` : ""}${clipTime(c.name)}`;
    keyboard.text(`${quote(label, 48)} · ${formatBytes(c.size)}`, restoreData(c)).row();
  }
  if (pages > 1) {
    if (p > 0) keyboard.text("« prev", `l:${date}:${p - 1}`);
    keyboard.text(`${p + 1}/${pages}`, NOOP);
    if (p < pages - 1) keyboard.text("next »", `l:${date}:${p + 1}`);
  }
  return { text: lines.join("\n"), keyboard };
}

export function listComposer(deps: BotDeps): Composer<Context> {
  const composer = new Composer<Context>();

  composer.command("list", async (ctx) => {
    const arg = ctx.match.trim();
    const date = arg === "" ? today() : arg;
    if (!isDate(date)) {
      await ctx.reply(`"${quote(arg)}" is not a date: use YYYY-MM-DD, e.g. /list ${today()}`);
      return;
    }
    const view = await listView(deps, date, 0);
    await ctx.reply(view.text, view.keyboard ? { reply_markup: view.keyboard } : {});
  });

  composer.callbackQuery(PAGE_DATA, async (ctx) => {
    const [, date = "", page = "0"] = ctx.match;
    if (!isDate(date)) {
      await ctx.answerCallbackQuery({ text: "that list is out of date: send /list again" });
      return;
    }
    const view = await listView(deps, date, Number(page));
    await ctx.answerCallbackQuery();
    try {
      await ctx.editMessageText(view.text, view.keyboard ? { reply_markup: view.keyboard } : {});
    } catch (err) {
      // A double tap asks for the page already shown.
      if (!(err instanceof GrammyError && err.description.includes("not modified"))) throw err;
    }
  });

  composer.callbackQuery(NOOP, (ctx) => ctx.answerCallbackQuery());
  return composer;
}
