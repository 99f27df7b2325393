/**
 * The bot's restore of an incomplete clip (a cut-off recording, which does not play as it
 * is): it says so, sends a repaired copy when one can be made, and the raw file as a document
 * (never as a video) otherwise, or too.
 */
import type { Api } from "grammy";
import type { ClipRecord } from "../../manifest/manifest.js";
import { repairRestored } from "../../restore/repairRestored.js";
import { formatBytes } from "../../util/format.js";
import { apiSignal, type BotDeps, quote } from "./common.js";
import { uploadFile } from "./sendVideo.js";

export async function sendIncomplete(
  deps: BotDeps,
  api: Api,
  chatId: number,
  clip: ClipRecord,
  file: string,
  caption: string,
  signal: AbortSignal,
): Promise<void> {
  const name = clip.id.split("/").join("_");
  await api.sendMessage(
    chatId,
    `${clip.id} is incomplete: its recording was cut off (the camera lost power or motion was stopped), so it does not play as it is. Trying to repair it…`,
    {},
    apiSignal(signal),
  );
  const repair = await repairRestored(deps.vault, clip, file, {
    clips: async () => {
      const all: ClipRecord[] = [];
      for (const date of await deps.manifest.dates())
        all.push(...(await deps.manifest.listDate(date)));
      return all;
    },
    signal,
  });
  if (repair.status === "repaired") {
    const r = repair.result;
    const repairedCaption = `${clip.id} · repaired copy: ${r.frames} frames, ${r.seconds.toFixed(1)} s (the backed-up file is unchanged)`;
    try {
      await api.sendVideo(
        chatId,
        uploadFile(r.path, name.replace(/\.[^.]*$/, ".repaired.mp4")),
        { caption: repairedCaption, supports_streaming: true },
        apiSignal(signal),
      );
    } catch (err) {
      if (signal.aborted) throw err;
      deps.log.warn({ err: deps.describe(err) }, "telegram: the repaired copy could not be sent");
    }
  } else {
    await api.sendMessage(
      chatId,
      `It could not be repaired: ${quote(repair.why, 300)}. Here is the file as it was backed up.`,
      {},
      apiSignal(signal),
    );
  }
  await api.sendDocument(
    chatId,
    uploadFile(file, name),
    { caption: `${caption} · incomplete, as backed up (${formatBytes(clip.size)})` },
    apiSignal(signal),
  );
}
