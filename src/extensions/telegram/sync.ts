import { Composer, type Context } from "grammy";
import type { RunSummary } from "../../util/events.js";
import { formatBytes } from "../../util/format.js";
import { type BotDeps, quote } from "./common.js";

/** What a finished run did, in one message. */
export function summaryText(run: RunSummary): string {
  const head = run.error ? "Sync finished with errors" : "Sync done";
  const parts = [
    `${head}: ${run.uploaded} clip(s) backed up (${formatBytes(run.bytes)})`,
    `${run.failed} failed`,
    `${run.pending} pending`,
  ];
  return `${parts.join(", ")}.${run.error ? `\nFirst error: ${quote(run.error, 300)}` : ""}`;
}

export function syncComposer(deps: BotDeps): Composer<Context> {
  const composer = new Composer<Context>();
  composer.command("sync", async (ctx) => {
    const chatId = ctx.chat.id;
    if (deps.queue.paused) {
      await ctx.reply(
        "Backups are paused (Home Assistant's “Backups enabled” is off): turn them on to sync.",
      );
      return;
    }
    await ctx.reply(deps.queue.running ? "A sync is running: yours follows it." : "Sync started.");
    // The run may take minutes: the reply comes from the background, the bot stays free.
    deps.tasks.spawn("sync", async (signal) => {
      let text: string;
      try {
        text = summaryText(await deps.queue.request({ origin: "telegram" }));
      } catch (err) {
        // serve is shutting down: nobody is waiting for this answer.
        if (signal.aborted || (err instanceof Error && err.name === "StoppedError")) return;
        text = `Sync failed: ${quote(deps.describe(err), 300)}`;
      }
      await ctx.api.sendMessage(chatId, text).catch((err: unknown) => {
        if (!signal.aborted) {
          deps.log.warn({ chatId, err: deps.describe(err) }, "telegram: could not report a sync");
        }
      });
    });
  });
  return composer;
}
