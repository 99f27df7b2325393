import { type SharedLock, whenUnlocked } from "../backup/lock.js";
import type { Settings } from "../extensions/contract.js";
import type { Manifest } from "../manifest/manifest.js";
import type { Logger } from "../util/log.js";

/**
 * Settings `serve` keeps (Home Assistant's "Backups enabled", its discovery topics) in the
 * manifest's state, written under the same lock as runs: a `sync` run in another process
 * re-reads the state before it writes (and taking the lock re-reads it here), so neither loses
 * the other's change.
 */
export function lockedSettings(
  manifest: Manifest,
  lock: SharedLock,
  logger: Logger,
  signal?: AbortSignal,
): Settings {
  return {
    get: (key) => manifest.status.settings[key],
    async set(key, value) {
      const held = await whenUnlocked(() => lock.acquire(), {
        signal,
        onWait: (pid) =>
          logger.info(
            { pid, setting: key },
            "a sync run of another process holds the lock: waiting",
          ),
      });
      try {
        await manifest.setSetting(key, value);
      } finally {
        await held.release();
      }
    },
  };
}
