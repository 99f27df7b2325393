import type { App } from "../../src/app/compose.js";
import type { SyncEngine } from "../../src/backup/engine.js";
import type { TriggerQueue } from "../../src/extensions/contract.js";
import { ServiceState } from "../../src/serve/state.js";

/**
 * Driving the Telegram extension in-process, without `serve` (for what needs the bot's own
 * config or logs): a trigger queue over the vault's engine and what serve hands the bot.
 */

/** A TriggerQueue over the vault's engine, for driving the extension without serve. */
export function directQueue(engine: SyncEngine): TriggerQueue {
  let running = false;
  return {
    get running() {
      return running;
    },
    paused: false,
    async setPaused() {},
    onPausedChange: () => () => {},
    nextScheduledRun: () => undefined,
    async request(req) {
      running = true;
      try {
        const { plans: _plans, ...summary } = await engine.run({ trigger: req.origin });
        return summary;
      } finally {
        running = false;
      }
    },
  };
}

/** What serve hands the bot, made from the composition root (no source views: no thumbnails). */
export async function botContext(app: App, queue: TriggerQueue) {
  const manifest = await app.manifest();
  const state = new ServiceState({
    events: app.events,
    manifest,
    queue: { ...queue, runsStarted: 0 },
    sources: app.config.sources.map((s) => ({ ...s, description: s.name })),
    checkVault: async () => true,
    logger: app.logger,
  });
  state.start();
  return {
    config: app.config,
    logger: app.logger,
    events: app.events,
    state,
    queue,
    sources: app.sourceSet,
    sourceViews: [],
    manifest,
    vault: await app.vault(),
  };
}
