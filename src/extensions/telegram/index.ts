import type { Extension, ExtensionContext } from "../contract.js";
import { TelegramBot } from "./bot.js";
import { type BotDeps, describeError, Tasks } from "./common.js";
import { RestoreQueue } from "./restoreQueue.js";

/** Restores at once (over all chats): each holds a decrypted clip, and maybe its parts, on disk. */
const PARALLEL_RESTORES = 2;

/**
 * The Telegram bot as an extension of `serve`; undefined when telegram.token is unset.
 * Starting it never waits for Telegram, and a broken bot never takes the sync down.
 */
export function createTelegramExtension(
  ctx: Pick<
    ExtensionContext,
    | "config"
    | "logger"
    | "events"
    | "state"
    | "queue"
    | "sources"
    | "sourceViews"
    | "manifest"
    | "vault"
  >,
): Extension | undefined {
  const config = ctx.config.telegram;
  const token = config.token;
  if (!token) return undefined;
  const log = ctx.logger.child({ ext: "telegram" });
  const deps: BotDeps = {
    manifest: ctx.manifest,
    vault: ctx.vault,
    state: ctx.state,
    sources: ctx.sources,
    sourceViews: ctx.sourceViews,
    events: ctx.events,
    queue: ctx.queue,
    log,
    config,
    tasks: new Tasks(log),
    restores: new RestoreQueue(PARALLEL_RESTORES),
    describe: (err) => describeError(err, token),
  };
  let bot: TelegramBot | undefined;
  return {
    name: "telegram",
    async start() {
      if (config.allowedChatIds.length === 0) {
        log.warn(
          "telegram.allowedChatIds is empty: the bot refuses every chat (its refusal names the chat id to add)",
        );
      }
      bot = new TelegramBot(deps, token);
      bot.start();
    },
    async stop() {
      await bot?.stop();
    },
  };
}
