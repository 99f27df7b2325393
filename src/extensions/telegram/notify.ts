import { type Api, InlineKeyboard, InputFile } from "grammy";
import { clipTime, formatBytes } from "../../util/format.js";
import { readThumb } from "../thumbnail.js";
import { apiSignal, type BotDeps, quote, restoreData } from "./common.js";
import { previewData } from "./previewButton.js";
import { haveFfmpeg } from "./video/tools.js";

/** Per run, one message per clip up to this many; the rest are summed up at the end. */
export const MAX_CLIP_NOTES_PER_RUN = 10;

/**
 * Opt-in notifications to every allowed chat (telegram.notify): a failed run, once per distinct
 * error until a run succeeds again, and each new clip with motionEye's thumbnail and a Restore
 * button. Messages go out one at a time, in order. Returns the function that stops listening.
 */
export function startNotifications(deps: BotDeps, api: Api): () => void {
  const { events, config, log } = deps;
  const chats = config.allowedChatIds;
  const stop = deps.tasks.signal;
  const signal = apiSignal(stop);
  const offs: Array<() => void> = [];
  let outbox: Promise<void> = Promise.resolve();

  const enqueue = (what: string, send: (chatId: number) => Promise<unknown>) => {
    outbox = outbox.then(async () => {
      for (const chatId of chats) {
        if (stop.aborted) return;
        await send(chatId).catch((err: unknown) => {
          log.warn({ chatId, err: deps.describe(err) }, `telegram: could not send ${what}`);
        });
      }
    });
  };

  if (config.notify.failures) {
    let lastError: string | undefined;
    const failed = (error: string) => {
      if (error === lastError) return;
      lastError = error;
      enqueue("a failure notice", (chatId) =>
        api.sendMessage(chatId, `Backup failed: ${quote(error, 500)}`, {}, signal),
      );
    };
    offs.push(events.on("syncFailed", (e) => failed(e.error)));
    offs.push(
      events.on("syncFinished", (run) => {
        if (run.error) failed(run.error);
        else lastError = undefined;
      }),
    );
  }

  // The staleness alarm is opt-in by itself (alerts.staleAfterHours): one message each way.
  offs.push(
    events.on("backupsStale", (e) => {
      if (e.restored) return;
      const from = deps.sources.qualified ? `from ${e.source}` : "from the camera";
      const last = e.lastClipAt ? ` (last one ${e.lastClipAt})` : "";
      const text = e.stale
        ? `No new clip backed up ${from} for ${formatHours(e.staleAfterHours ?? 0)}${last}. Is the camera recording, and its folder reachable?`
        : `Backups resumed: a new clip ${from} is backed up.`;
      enqueue(e.stale ? "a staleness alarm" : "a backups-resumed notice", (chatId) =>
        api.sendMessage(chatId, text, {}, signal),
      );
    }),
  );

  if (config.notify.clips) {
    const perRun = new Map<string, number>();
    offs.push(
      events.on("clipBackedUp", (clip) => {
        const n = (perRun.get(clip.runId) ?? 0) + 1;
        perRun.set(clip.runId, n);
        if (n > MAX_CLIP_NOTES_PER_RUN) return;
        const time = clipTime(clip.id.split("/").pop() ?? "");
        // Captions may have 1024 characters; clip ids are usually far shorter.
        const caption = `${clip.incomplete ? "New clip, INCOMPLETE (its recording was cut off)" : "New clip"}: ${quote(clip.camera, 60)} ${clip.date} ${time} · ${formatBytes(clip.size)}\n${quote(clip.id, 900)}`;
        // Read the thumbnail once, now: motionEye may clean it up later.
        const thumb = readThumb(deps, clip.id);
        // A preview is made with ffmpeg: no button that could only say it is missing.
        const markup = haveFfmpeg().then((ffmpeg) => {
          const keyboard = new InlineKeyboard().text("Restore", restoreData(clip));
          return ffmpeg ? keyboard.text("Preview", previewData(clip)) : keyboard;
        });
        enqueue("a clip notice", async (chatId) => {
          const [photo, reply_markup] = await Promise.all([thumb, markup]);
          return photo
            ? api.sendPhoto(
                chatId,
                new InputFile(photo, "thumb.jpg"),
                { caption, reply_markup },
                signal,
              )
            : api.sendMessage(chatId, caption, { reply_markup }, signal);
        });
      }),
    );
    const runEnded = (runId: string) => {
      const more = (perRun.get(runId) ?? 0) - MAX_CLIP_NOTES_PER_RUN;
      perRun.delete(runId);
      if (more > 0) {
        enqueue("a clip summary", (chatId) =>
          api.sendMessage(chatId, `…and ${more} more new clip(s): /list shows them.`, {}, signal),
        );
      }
    };
    offs.push(events.on("syncFinished", (run) => runEnded(run.runId)));
    offs.push(events.on("syncFailed", (e) => runEnded(e.runId)));
  }

  return () => {
    for (const off of offs) off();
  };
}

/** `24 h`, `1.5 h`, `4 s`: the threshold as a person would say it. */
function formatHours(hours: number): string {
  if (hours >= 1) return `${Number(hours.toFixed(1))} h`;
  const minutes = hours * 60;
  return minutes >= 1 ? `${Math.round(minutes)} min` : `${Math.round(minutes * 60)} s`;
}
