import { PART_PATTERN, type VaultStore } from "../storage/types.js";
import { errorMessage, type Logger } from "../util/log.js";

/** `<id>.age.part-<token>`: an upload of ours that never got its final name. */
export function isStrayUpload(name: string): boolean {
  return PART_PATTERN.test(name) && name.replace(PART_PATTERN, "").endsWith(".age");
}

/** Unfinished uploads younger than this may belong to a run still going on another machine. */
export const STALE_UPLOAD_MS = 24 * 3600 * 1000;

/**
 * Removes `.part` uploads that a killed run (or a cleanup that lost its connection) left in
 * the folders a run writes to, and, on stores that keep unfinished uploads out of sight (S3's
 * multipart uploads), those over a day old. Runs under the lock, before any upload of that run
 * starts.
 */
export async function sweepStrayUploads(
  store: VaultStore,
  dirs: Iterable<string>,
  log: Logger,
): Promise<void> {
  try {
    await store.sweepStale?.(STALE_UPLOAD_MS);
    for (const dir of dirs) {
      for (const entry of await store.list(dir)) {
        if (entry.kind !== "file" || !isStrayUpload(entry.name)) continue;
        await store.remove(`${dir}/${entry.name}`);
        log.info(
          { path: `${dir}/${entry.name}` },
          "removed an unfinished upload of an earlier run",
        );
      }
    }
  } catch (err) {
    // Not fatal: the uploads that follow will say whether the vault works. Said once: what
    // failed for one folder (a lost connection, refused credentials) fails for the next one too.
    log.warn({ err: errorMessage(err) }, "could not clean up unfinished uploads");
  }
}
