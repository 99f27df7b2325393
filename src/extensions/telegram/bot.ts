import { setTimeout as sleep } from "node:timers/promises";
import { autoRetry } from "@grammyjs/auto-retry";
import { type RunnerHandle, run, sequentialize } from "@grammyjs/runner";
import { Bot, GrammyError, HttpError, type Transformer } from "grammy";
import { errorMessage } from "../../util/log.js";
import { withRetry } from "../../util/retry.js";
import { authComposer } from "./auth.js";
import { apiSignal, type BotDeps, redact } from "./common.js";
import { listComposer } from "./list.js";
import { startNotifications } from "./notify.js";
import { previewComposer } from "./previewButton.js";
import { restoreComposer } from "./restore.js";
import { COMMANDS, statusComposer } from "./status.js";
import { syncComposer } from "./sync.js";

/** Network failures of a call (not of the long poll) are tried again this often. */
const NETWORK_RETRIES = 3;
const RECONNECT_MAX_MS = 60_000;
const POLL_RETRY_MAX_MS = 30_000;

/**
 * Keeps the token out of every error: grammY's HttpError wraps the fetch error, whose message
 * holds the request URL, token included. Installed outermost, so nothing else sees the original.
 */
function scrubErrors(token: string): Transformer {
  return async (prev, method, payload, signal) => {
    try {
      return await prev(method, payload, signal);
    } catch (err) {
      if (err instanceof HttpError) {
        const code = (err.error as { code?: unknown } | undefined)?.code;
        const inner = Object.assign(new Error(redact(errorMessage(err.error), token)), { code });
        throw new HttpError(redact(err.message, token), inner);
      }
      throw err;
    }
  };
}

/**
 * Every call also ends when the bot stops, so shutdown never waits on a retry's backoff. The
 * runner's signals come from an AbortController polyfill that AbortSignal.any() cannot follow,
 * hence the listeners.
 */
function abortOnStop(stop: AbortSignal): Transformer {
  return async (prev, method, payload, signal) => {
    const outer = signal as unknown as AbortSignal | undefined;
    const both = new AbortController();
    const abort = () => both.abort();
    if (stop.aborted || outer?.aborted) abort();
    stop.addEventListener("abort", abort);
    outer?.addEventListener("abort", abort);
    try {
      return await prev(method, payload, apiSignal(both.signal));
    } finally {
      stop.removeEventListener("abort", abort);
      outer?.removeEventListener("abort", abort);
    }
  };
}

/** A few tries for a call lost to the network (auto-retry alone would retry it forever). */
function retryNetwork(): Transformer {
  return (prev, method, payload, signal) =>
    withRetry(() => prev(method, payload, signal), {
      retries: NETWORK_RETRIES,
      baseDelayMs: 1000,
      signal: signal as unknown as AbortSignal | undefined,
      retryIf: (err) => err instanceof HttpError,
    });
}

/**
 * The long poll: network failures are retried here with a capped backoff (quick after a blip,
 * gentle during an outage), and logged once per outage rather than once per failed poll.
 */
function resilientPolling(deps: BotDeps): Transformer {
  let failing = false;
  return async (prev, method, payload, signal) => {
    if (method !== "getUpdates") return prev(method, payload, signal);
    const res = await withRetry(() => prev(method, payload, signal), {
      retries: Number.POSITIVE_INFINITY,
      baseDelayMs: 500,
      maxDelayMs: POLL_RETRY_MAX_MS,
      signal: signal as unknown as AbortSignal | undefined,
      retryIf: (err) => err instanceof HttpError,
      onRetry: (err) => {
        if (failing) return;
        failing = true;
        deps.log.warn({ err: deps.describe(err) }, "telegram: cannot reach the Bot API; retrying");
      },
    });
    if (!res.ok && !failing) {
      failing = true;
      deps.log.warn({ err: `${res.error_code} ${res.description}` }, "telegram: polling failed");
    } else if (res.ok && failing) {
      failing = false;
      deps.log.info("telegram: polling works again");
    }
    return res;
  };
}

/** The bot with every command group; nothing runs until `start`. */
export function buildBot(deps: BotDeps, token: string): Bot {
  const bot = new Bot(token, { client: { apiRoot: deps.config.apiRoot.replace(/\/+$/, "") } });
  // 429 (flood) and 5xx: wait as told and try again, a bounded number of times. The runner
  // retries the long poll itself.
  const retryApi = autoRetry({ maxRetryAttempts: 3, maxDelaySeconds: 60, rethrowHttpErrors: true });
  const retryNet = retryNetwork();
  bot.api.config.use(
    (prev, method, payload, signal) =>
      method === "getUpdates"
        ? prev(method, payload, signal)
        : retryApi(prev, method, payload, signal),
    (prev, method, payload, signal) =>
      method === "getUpdates"
        ? prev(method, payload, signal)
        : retryNet(prev, method, payload, signal),
    resilientPolling(deps),
    abortOnStop(deps.tasks.signal),
    scrubErrors(token),
  );

  bot.use(authComposer(deps));
  // Updates of one chat in order, chats in parallel; long work is in deps.tasks anyway.
  bot.use(sequentialize((ctx) => ctx.chat?.id.toString()));
  bot.use(statusComposer(deps), listComposer(deps), restoreComposer(deps), syncComposer(deps));
  bot.use(previewComposer(deps));
  bot.on("callback_query:data", (ctx) =>
    ctx.answerCallbackQuery({ text: "This button no longer works: send /list again." }),
  );
  bot.on("message:text", async (ctx) => {
    // In a group, only a command addressed to this bot (`/x@bot`) gets an answer.
    const command = /^\/[^\s@]+@(\S+)/.exec(ctx.message.text);
    if (
      ctx.chat.type === "private" ||
      command?.[1]?.toLowerCase() === ctx.me.username.toLowerCase()
    ) {
      await ctx.reply("Unknown command: /help lists what I can do.");
    }
  });

  bot.catch(async (err) => {
    if (deps.tasks.signal.aborted) return;
    const why = deps.describe(err.error);
    deps.log.error({ update: err.ctx.update.update_id, err: why }, "telegram: a command failed");
    const chatId = err.ctx.chat?.id;
    if (chatId !== undefined && deps.config.allowedChatIds.includes(chatId)) {
      await err.ctx.api
        .sendMessage(chatId, "Sorry, that failed; the log says why.")
        .catch(() => {});
    }
  });
  return bot;
}

const isUnauthorized = (err: unknown) => err instanceof GrammyError && err.error_code === 401;

/**
 * Runs the bot in the background: connects (retrying while Telegram is unreachable, so serve
 * never waits for it), registers the command menu, then long-polls with @grammyjs/runner, which
 * handles updates concurrently. A failed bot is logged and restarted; it never stops serve.
 */
export class TelegramBot {
  private readonly bot: Bot;
  private runner: RunnerHandle | undefined;
  private loop: Promise<void> | undefined;
  private stopNotifications: (() => void) | undefined;
  private stopped = false;

  constructor(
    private readonly deps: BotDeps,
    token: string,
  ) {
    this.bot = buildBot(deps, token);
  }

  start(): void {
    this.stopNotifications = startNotifications(this.deps, this.bot.api);
    this.loop = this.connectAndRun().catch((err: unknown) => {
      this.deps.log.error({ err: this.deps.describe(err) }, "telegram: the bot stopped");
    });
  }

  private async connectAndRun(): Promise<void> {
    const { log, tasks } = this.deps;
    let delay = 1000;
    const pause = async () => {
      await sleep(delay, undefined, { signal: tasks.signal }).catch(() => {});
      delay = Math.min(delay * 2, RECONNECT_MAX_MS);
    };
    while (!this.stopped) {
      try {
        await this.bot.init(apiSignal(tasks.signal));
        break;
      } catch (err) {
        if (this.stopped) return;
        if (isUnauthorized(err)) {
          log.error("telegram: the Bot API rejected telegram.token (401); the bot is off");
          return;
        }
        log.warn({ err: this.deps.describe(err), retryInMs: delay }, "telegram: cannot connect");
        await pause();
      }
    }
    if (this.stopped) return;
    log.info({ bot: this.bot.botInfo.username }, "telegram: bot online");
    try {
      await this.bot.api.setMyCommands([...COMMANDS]);
    } catch (err) {
      log.warn({ err: this.deps.describe(err) }, "telegram: could not set the command menu");
    }

    while (!this.stopped) {
      this.runner = run(this.bot, {
        runner: {
          fetch: { timeout: 30, allowed_updates: ["message", "callback_query"] },
          retryInterval: 5000,
          maxRetryTime: Number.POSITIVE_INFINITY,
          silent: true, // it would print raw errors, URL and token included; resilientPolling logs
        },
      });
      try {
        await this.runner.task();
      } catch (err) {
        if (this.stopped) return;
        if (isUnauthorized(err)) {
          log.error("telegram: the Bot API rejected telegram.token (401); the bot is off");
          return;
        }
        log.warn({ err: this.deps.describe(err) }, "telegram: polling stopped; restarting");
      }
      if (!this.stopped) await pause();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopNotifications?.();
    try {
      await this.runner?.stop();
    } catch {
      // already reported by the loop
    }
    // serve gives each extension 3 s to stop.
    await this.deps.tasks.stop(2000);
    await this.loop;
  }
}
