import { Composer, type Context } from "grammy";
import type { BotDeps } from "./common.js";

/** One refusal per chat per this long: a stranger cannot make the bot flood itself. */
const REFUSAL_INTERVAL_MS = 60_000;

/**
 * The allow-list, first in the chain: a chat not in telegram.allowedChatIds gets one fixed
 * refusal naming its chat id (so the owner can add it) and nothing else; the attempt is logged.
 */
export function authComposer(
  deps: Pick<BotDeps, "config" | "log" | "describe">,
): Composer<Context> {
  const allowed = new Set(deps.config.allowedChatIds);
  const lastRefusal = new Map<number, number>();
  const composer = new Composer<Context>();

  composer.use(async (ctx, next) => {
    const chatId = ctx.chat?.id;
    if (chatId !== undefined && allowed.has(chatId)) return next();

    deps.log.warn(
      {
        chatId,
        userId: ctx.from?.id,
        username: ctx.from?.username,
        update: ctx.callbackQuery ? "button" : ctx.message ? "message" : "other",
      },
      "telegram: refused a chat that is not in telegram.allowedChatIds",
    );
    if (chatId === undefined || !(ctx.message || ctx.callbackQuery)) return;
    const now = Date.now();
    if (now - (lastRefusal.get(chatId) ?? 0) < REFUSAL_INTERVAL_MS) return;
    if (lastRefusal.size > 1000) lastRefusal.clear();
    lastRefusal.set(chatId, now);

    const text = `not authorized (chat id ${chatId})`;
    try {
      if (ctx.callbackQuery) await ctx.answerCallbackQuery({ text, show_alert: true });
      else await ctx.reply(text);
    } catch (err) {
      deps.log.warn({ chatId, err: deps.describe(err) }, "telegram: could not send the refusal");
    }
  });
  return composer;
}
