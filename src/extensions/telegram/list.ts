import { Composer, type Context, GrammyError, InlineKeyboard } from "grammy";
import { isDate } from "../../clips/clipId.js";
import type { ClipRecord } from "../../manifest/manifest.js";
import { clipTime, formatBytes } from "../../util/format.js";
import { type BotDeps, quote, restoreData, today } from "./common.js";
import {
  CAMERA_KEY,
  cameraKey,
  cameraLabel,
  type ListDeps,
  neighbourDays,
  ofCamera,
} from "./listNav.js";

/** Clips per page: a phone screen of buttons. */
export const PAGE_SIZE = 10;

/** A page of a day's list, optionally of one camera: `l:<date>:<page>[:<camera key>]`. */
const PAGE_DATA = new RegExp(`^l:(\\d{4}-\\d{2}-\\d{2}):(\\d{1,5})(?::(${CAMERA_KEY}))?$`);
/** The "page n/m" label button: answered, nothing else. */
const NOOP = "noop";
/** Camera filter buttons per row, and at most this many cameras get one. */
const CAMERAS_PER_ROW = 3;
const MAX_CAMERA_BUTTONS = 12;

const listData = (date: string, page: number, key?: string) =>
  `l:${date}:${page}${key ? `:${key}` : ""}`;

export interface ListView {
  text: string;
  keyboard?: InlineKeyboard;
}

/**
 * One page of a day's clips: a per-camera summary (cameras as `<source>/<camera>` with several
 * sources) and one button per clip that restores it; below, buttons to the previous and next
 * day that has clips and, when the day has several cameras, to show one camera only (`key`,
 * see listNav.ts).
 */
export async function listView(
  deps: ListDeps,
  date: string,
  page: number,
  key?: string,
): Promise<ListView> {
  const all = await deps.manifest.listDate(date);
  let camera = key;
  let clips = ofCamera(deps, all, camera);
  if (clips.length === 0 && camera) {
    // A button from an older list, for a camera without clips that day: show them all.
    camera = undefined;
    clips = all;
  }
  const button = InlineKeyboard.text;
  const { prev, next } = await neighbourDays(deps, date, camera);
  const days = [
    ...(prev ? [button(`« ${prev}`, listData(prev, 0, camera))] : []),
    ...(next ? [button(`${next} »`, listData(next, 0, camera))] : []),
  ];
  if (clips.length === 0) {
    return {
      text: `No clips backed up on ${date}.${days.length ? " The buttons go to the nearest days with clips." : ""}`,
      ...(days.length ? { keyboard: new InlineKeyboard([days]) } : {}),
    };
  }

  const cameraOf = (c: ClipRecord) => cameraLabel(deps, c);
  const cameras = new Map<string, ClipRecord[]>();
  for (const c of all) cameras.set(cameraOf(c), [...(cameras.get(cameraOf(c)) ?? []), c]);
  const sum = (cs: ClipRecord[]) => formatBytes(cs.reduce((n, c) => n + c.size, 0));
  const pages = Math.ceil(clips.length / PAGE_SIZE);
  const p = Math.min(Math.max(page, 0), pages - 1);

  const lines = [`Clips on ${date}: ${all.length} (${sum(all)})`];
  for (const [name, cs] of cameras) {
    const cut = cs.filter((c) => c.incomplete).length;
    lines.push(
      `${name}: ${cs.length} clip(s), ${sum(cs)}${cut ? `, ${cut} incomplete (cut off)` : ""}`,
    );
  }
  if (camera) lines.push("", `Showing ${quote(clips[0] ? cameraOf(clips[0]) : "", 60)} only.`);
  lines.push("", `${pages > 1 ? `Page ${p + 1}/${pages}. ` : ""}Tap a clip to get it here.`);

  const withCamera = cameras.size > 1 && !camera;
  const rows = clips.slice(p * PAGE_SIZE, (p + 1) * PAGE_SIZE).map((c) => {
    const label = `${withCamera ? `${cameraOf(c)} ` : ""}${clipTime(c.name)}${c.incomplete ? " (incomplete)" : ""}`;
    return [button(`${quote(label, 48)} · ${formatBytes(c.size)}`, restoreData(c))];
  });
  if (pages > 1) {
    rows.push([
      ...(p > 0 ? [button("« prev", listData(date, p - 1, camera))] : []),
      button(`${p + 1}/${pages}`, NOOP),
      ...(p < pages - 1 ? [button("next »", listData(date, p + 1, camera))] : []),
    ]);
  }
  if (days.length) rows.push(days);
  if (cameras.size > 1) {
    const choices = [
      button(camera ? "All cameras" : "• All cameras", listData(date, 0)),
      ...[...cameras.keys()].slice(0, MAX_CAMERA_BUTTONS).map((name) => {
        const k = cameraKey(name);
        return button(`${k === camera ? "• " : ""}${quote(name, 24)}`, listData(date, 0, k));
      }),
    ];
    for (let i = 0; i < choices.length; i += CAMERAS_PER_ROW) {
      rows.push(choices.slice(i, i + CAMERAS_PER_ROW));
    }
  }
  const keyboard = new InlineKeyboard(rows);
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
    const [, date = "", page = "0", key] = ctx.match;
    if (!isDate(date)) {
      await ctx.answerCallbackQuery({ text: "that list is out of date: send /list again" });
      return;
    }
    const view = await listView(deps, date, Number(page), key);
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
