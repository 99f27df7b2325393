import { createHash } from "node:crypto";
import { type Api, type Context, GrammyError, HttpError } from "grammy";
import { isDate, stripControl } from "../../clips/clipId.js";
import type { SourceSet } from "../../clips/sources.js";
import type { Config } from "../../config/load.js";
import type { AgeVault } from "../../crypto/ageVault.js";
import type { ClipRecord, Manifest } from "../../manifest/manifest.js";
import type { ServiceState } from "../../serve/state.js";
import type { EventBus } from "../../util/events.js";
import type { Logger } from "../../util/log.js";
import { errorMessage } from "../../util/log.js";
import { localDate } from "../../util/time.js";
import type { SourceView, TriggerQueue } from "../contract.js";
import type { RestoreQueue } from "./restoreQueue.js";

/** What every command group of the bot needs. */
export interface BotDeps {
  manifest: Pick<Manifest, "listDate" | "dates" | "get">;
  /** Restores come from here. */
  vault: AgeVault;
  state: ServiceState;
  sources: SourceSet;
  sourceViews: readonly SourceView[];
  events: EventBus;
  queue: TriggerQueue;
  log: Logger;
  config: Config["telegram"];
  /** Long work (restores, syncs) runs here, so no update handler waits for it. */
  tasks: Tasks;
  /** Restores one at a time per chat, a few at once overall: each holds a decrypted clip on disk. */
  restores: RestoreQueue;
  /** An error as one line that is safe to log or show: never the token, never a request URL. */
  describe(err: unknown): string;
}

/** grammY's Node types name an old AbortSignal polyfill; the native signal works the same. */
export type ApiSignal = NonNullable<Parameters<Api["getMe"]>[0]>;
export const apiSignal = (signal: AbortSignal): ApiSignal => signal as unknown as ApiSignal;

/** Bytes a clip may have to be sent: telegram.maxUploadMB (the cloud Bot API takes 50 MB). */
export function uploadLimitBytes(config: Config["telegram"]): number {
  return Math.floor(config.maxUploadMB * 1024 * 1024);
}

/**
 * An error as text without secrets. grammY's HttpError hides the token in its message, but the
 * error it wraps carries the request URL (with the token): only its code is used here.
 */
export function describeError(err: unknown, token: string): string {
  let text: string;
  if (err instanceof GrammyError) text = `${err.method}: ${err.error_code} ${err.description}`;
  else if (err instanceof HttpError) {
    const code = (err.error as { code?: unknown } | undefined)?.code;
    text = typeof code === "string" ? `${err.message} (${code})` : err.message;
  } else text = errorMessage(err);
  return redact(text, token);
}

export function redact(text: string, token: string): string {
  return token ? text.split(token).join("[token]") : text;
}

const INVISIBLE = /[\u00AD\u061C\u200B-\u200F\u202A-\u202E\u2060-\u2069\uFEFF]/gu;

/** User input made safe to echo back: no control, bidi or zero-width characters; short. */
export function quote(input: string, max = 80): string {
  const chars = Array.from(stripControl(input).replace(INVISIBLE, "?"));
  return chars.length > max ? `${chars.slice(0, max - 1).join("")}…` : chars.join("");
}

/** Today's date where the cameras are (motionEye names its folders in local time). */
export function today(now = new Date()): string {
  return localDate(now);
}

/**
 * Telegram allows 64 bytes of callback data, too few for a clip id: a button names its clip by
 * date and a short hash of the id, resolved against that day's manifest when tapped (so buttons
 * keep working after a restart and never carry a path).
 */
export function clipKey(id: string): string {
  return createHash("sha256").update(id).digest("base64url").slice(0, 10);
}

export function restoreData(clip: Pick<ClipRecord, "id" | "date">): string {
  return `r:${clip.date}:${clipKey(clip.id)}`;
}

export const RESTORE_DATA = /^r:(\d{4}-\d{2}-\d{2}):([A-Za-z0-9_-]{10})$/;

export async function resolveRestoreData(
  manifest: Pick<Manifest, "listDate">,
  date: string,
  key: string,
): Promise<ClipRecord | undefined> {
  if (!isDate(date)) return undefined;
  const matches = (await manifest.listDate(date)).filter((c) => clipKey(c.id) === key);
  return matches.length === 1 ? matches[0] : undefined;
}

/**
 * The clip a Restore or Preview button names, and its chat; when the clip is gone from the vault,
 * the tap is answered with how to get a fresh list, and undefined comes back.
 */
export async function clipOfButton(
  ctx: Context,
  manifest: Pick<Manifest, "listDate">,
): Promise<{ clip: ClipRecord; chatId: number } | undefined> {
  const [, date = "", key = ""] = ctx.match ?? [];
  const clip = await resolveRestoreData(manifest, date, key);
  const chatId = ctx.chat?.id;
  if (clip && chatId !== undefined) return { clip, chatId };
  await ctx.answerCallbackQuery({
    text: "That clip is no longer in the vault: send /list again.",
    show_alert: true,
  });
  return undefined;
}

/** Background work that the bot's stop() can abort and wait for. */
export class Tasks {
  private readonly running = new Set<Promise<void>>();
  private readonly abort = new AbortController();

  constructor(private readonly log: Logger) {}

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  spawn(name: string, work: (signal: AbortSignal) => Promise<void>): void {
    if (this.abort.signal.aborted) return;
    const task: Promise<void> = work(this.abort.signal)
      .catch((err: unknown) => {
        // Handlers report their own failures to the chat; this is the last line of defence.
        this.log.error({ task: name, err: errorMessage(err) }, "telegram task failed");
      })
      .finally(() => this.running.delete(task));
    this.running.add(task);
  }

  /** Aborts everything and waits (at most timeoutMs) for the tasks to notice. */
  async stop(timeoutMs: number): Promise<void> {
    this.abort.abort();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.running]),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }
}
