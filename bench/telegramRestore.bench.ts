/**
 * Telegram `/restore` of a 20 MiB clip: from the command arriving at the bot to the clip's
 * upload starting at the Bot API (the fake one, over real HTTP), through the real compiled
 * `serve`, with the vault on the real sshd. For scale, same run: `/status` answered by the same
 * bot (what the bot costs before any clip is touched).
 */

import { spawn } from "node:child_process";
import { startFakeTelegram } from "../test/harness/fakeTelegram.js";
import { freePort } from "../test/harness/ports.js";
import { stopProcess } from "../test/harness/processes.js";
import { builtCli } from "./lib/build.js";
import { MiB, median, round } from "./lib/measure.js";
import type { BenchRow } from "./lib/types.js";
import { runCliMeasured, startServers, vaultConfig } from "./lib/vault.js";

const CHAT = 4242;
const SAMPLES = 5;
const CLIP = "Camera1/2024-05-01/12-00-00.mp4";

export async function run(): Promise<BenchRow[]> {
  const servers = await startServers();
  const tg = await startFakeTelegram({ maxUploadBytes: Number.POSITIVE_INFINITY });
  try {
    await servers.ftp.writeClip(CLIP, 20 * MiB);
    const { file } = await vaultConfig(servers, "telegram", {
      sections: {
        mqtt: { embeddedBroker: { port: await freePort() }, homeassistant: { enabled: false } },
        schedule: { sync: "" },
        telegram: {
          token: tg.token,
          apiRoot: tg.apiRoot,
          allowedChatIds: [CHAT],
          maxUploadMB: 100,
        },
      },
    });
    const synced = await runCliMeasured(["sync", "--config", file]);
    if (synced.code !== 0) throw new Error(`sync failed: ${synced.stderr.slice(-500)}`);

    const serve = spawn(process.execPath, [await builtCli(), "serve", "--config", file], {
      env: { ...process.env, CI: "true" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let log = "";
    serve.stderr?.on("data", (d: Buffer) => {
      log = (log + d.toString()).slice(-2000);
    });
    try {
      await tg.waitForCall("setMyCommands", undefined, 30_000).catch((err: Error) => {
        process.stderr.write(`serve said: ${log}\n`);
        throw err;
      });
      const status: number[] = [];
      const started: number[] = [];
      const finished: number[] = [];
      for (let i = 0; i < SAMPLES; i++) {
        const s0 = Date.now();
        const reply = tg.nextCall("sendMessage", (c) => c.params.chat_id === CHAT, 30_000);
        tg.sendText(CHAT, "/status");
        status.push((await reply).answeredAt - s0);

        const upload = tg.nextCall("sendVideo", (c) => c.params.chat_id === CHAT && c.ok, 60_000);
        const r0 = Date.now();
        tg.sendText(CHAT, `/restore ${CLIP}`);
        const call = await upload;
        started.push(call.at - r0);
        finished.push(call.answeredAt - r0);
      }
      return [
        {
          name: "Telegram /restore of a 20 MiB clip -> upload started, median of 5",
          value: round(median(started)),
          unit: "ms",
          lowerIsBetter: true,
          target: "<= 1000 ms",
          met: median(started) <= 1000,
          note: `samples (ms): ${started.map(round).join(", ")}; upload complete: ${finished.map(round).join(", ")}; for scale, /status answered by the same bot in the same run (ms): ${status.map(round).join(", ")}`,
        },
      ];
    } finally {
      await stopProcess(serve, 10_000);
    }
  } finally {
    await tg.stop();
    await servers.close();
  }
}
