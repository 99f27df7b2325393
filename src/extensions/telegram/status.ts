import { Composer, type Context } from "grammy";
import { formatBytes, isoSeconds } from "../../util/format.js";
import { type BotDeps, quote } from "./common.js";

/** The menu Telegram shows (setMyCommands) and /help's text. */
export const COMMANDS = [
  { command: "status", description: "last run, clips backed up, pending, last error" },
  { command: "list", description: "clips of a day: /list [YYYY-MM-DD], default today" },
  { command: "restore", description: "send a clip: /restore <clip id>" },
  { command: "sync", description: "back up new clips now" },
  { command: "help", description: "what this bot does" },
] as const;

const HELP = [
  "motionEye Vault: your camera clips, backed up and encrypted.",
  "",
  "/status: last run, clips backed up, pending, last error, next run",
  "/list [YYYY-MM-DD]: the day's clips (default today); tap one to get it here",
  "/restore <clip id>: send a clip, e.g. /restore Camera1/2024-05-01/12-00-00.mp4 (or 2024-05-01/12-00-00.mp4 when that name is unique)",
  "/sync: back up new clips now",
].join("\n");

const time = (iso: string | undefined | null) => (iso ? isoSeconds(Date.parse(iso)) : "never");

/**
 * The text of /status: what `motioneye-vault status` says, plus what only serve knows, and a
 * line per source when there are several (a failing one says why).
 */
export function statusText(deps: Pick<BotDeps, "state" | "queue">): string {
  const st = deps.state.snapshot();
  const { queue } = deps;
  const run = st.lastRun;
  const next = queue.nextScheduledRun();
  const sources = Object.entries(st.sources);
  const perSource =
    sources.length > 1
      ? sources.flatMap(([name, s]) => [
          `${name}: ${s.syncing ? "syncing" : s.failing ? "FAILING" : s.lastRunAt ? "ok" : "not run yet"}, ${s.pending} pending, last success ${time(s.lastSuccessAt)}`,
          ...(s.failing && s.lastError ? [`  ${quote(s.lastError.message, 300)}`] : []),
        ])
      : [];
  return [
    `motionEye Vault: ${st.running ? "syncing now" : "idle"}${st.paused ? " (backups paused)" : ""}`,
    `backed up: ${st.totals.clips} clip(s), ${formatBytes(st.totals.bytes)}${st.totals.incomplete ? `, ${st.totals.incomplete} incomplete (cut off)` : ""}`,
    `pending: ${st.pending}`,
    `last run: ${run ? `${time(run.finishedAt)} (${run.trigger}): ${run.uploaded} uploaded, ${run.failed} failed` : "never"}`,
    `last success: ${time(st.lastSuccessAt)}`,
    `last clip: ${st.lastClip ? `${st.lastClip.id} at ${time(st.lastClip.at)}` : "none"}`,
    `last error: ${st.lastError ? `${quote(st.lastError.message, 500)} (${time(st.lastError.at)})` : "none"}`,
    `next scheduled run: ${next ? isoSeconds(next.getTime()) : "none scheduled"}`,
    ...perSource,
  ].join("\n");
}

export function statusComposer(deps: BotDeps): Composer<Context> {
  const composer = new Composer<Context>();
  composer.command("status", (ctx) => ctx.reply(statusText(deps)));
  composer.command(["help", "start"], (ctx) => ctx.reply(HELP));
  return composer;
}
