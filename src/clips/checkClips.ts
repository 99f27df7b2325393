import type { RangeReader } from "../storage/types.js";
import { mapLimit } from "../util/async.js";
import { errorMessage, type Logger } from "../util/log.js";
import { type Completeness, checkCompleteness } from "./completeness.js";

/** Checks at once: the camera's FTP server allows few sessions (source.maxConnections). */
const CONCURRENCY = 2;

/**
 * The completeness verdict of each clip, by id: the engine's I/O for the pure planner. A clip
 * whose check fails (the server refuses REST, the file vanished) is UNKNOWN, so the planner's
 * stability rule decides: a failed check never makes a clip look finished.
 */
export async function checkClips(
  source: RangeReader,
  clips: ReadonlyArray<{ id: string; size: number }>,
  log: Logger,
): Promise<Map<string, Completeness>> {
  const verdicts = new Map<string, Completeness>();
  const failures: string[] = [];
  await mapLimit(clips, CONCURRENCY, async (clip) => {
    try {
      const check = await checkCompleteness(source, clip.id, clip.size);
      verdicts.set(clip.id, check.verdict);
      log.debug(
        {
          clip: clip.id,
          size: clip.size,
          ...check.verdict,
          reads: check.reads,
          bytes: check.bytes,
        },
        "completeness checked",
      );
    } catch (err) {
      failures.push(`${clip.id}: ${errorMessage(err)}`);
      verdicts.set(clip.id, { state: "unknown", reason: "its check failed" });
    }
  });
  if (failures.length > 0) {
    log.warn(
      { count: failures.length, first: failures[0] },
      "could not check whether some clips are complete; judging them by how long they stay unchanged",
    );
  }
  return verdicts;
}
