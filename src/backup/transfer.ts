import { remotePathOf } from "../clips/clipId.js";
import type { AgeVault } from "../crypto/ageVault.js";
import type { ClipRecord, Manifest } from "../manifest/manifest.js";
import type { Source } from "../storage/types.js";
import type { EventBus } from "../util/events.js";
import { errorMessage, type Logger } from "../util/log.js";
import type { SourceClip } from "./scan.js";

export interface TransferDeps {
  source: Source;
  vault: AgeVault;
  manifest: Manifest;
  events: EventBus;
  logger: Logger;
  now: () => number;
  /** Ids the plan backs up as they are, never closed: recorded `incomplete`. */
  incomplete?: ReadonlySet<string>;
}

/**
 * The clip changed on the source while it was being backed up (motion still writing it): the
 * upload is discarded, nothing is recorded, and a later run backs it up. Not a failure.
 */
export class ClipChangedError extends Error {
  override name = "ClipChangedError";
}

/**
 * One clip, end to end, streaming: read from the camera, encrypt into the vault (a temporary
 * name), look at the clip on the camera again, and only if it did not change give the upload
 * its final name and record it. `touch` feeds the stall watchdog; `signal` (the watchdog's)
 * stops it, dropping the temporary upload.
 */
export async function transferClip(
  clip: SourceClip,
  runId: string,
  touch: () => void,
  signal: AbortSignal,
  deps: TransferDeps,
): Promise<ClipRecord> {
  const { events, source } = deps;
  signal.throwIfAborted();
  // Compared with a second stat right before the upload's commit: the same call both times,
  // since a listing's mtime may be coarser than a stat's (FTP LIST vs MDTM).
  const before = await source.stat(clip.path);
  if (before && before.size !== clip.size) {
    throw new ClipChangedError(`size ${clip.size} when listed, ${before.size} now`);
  }
  let changedMeanwhile: ClipChangedError | undefined;
  const recheck = async () => {
    const after = await source.stat(clip.path);
    // A given-up attempt never gets its final name.
    signal.throwIfAborted();
    // Deleted meanwhile (motionEye's cleanup): every byte of it was read, of the listed size,
    // and this copy is now the only one. Keep it.
    if (!after) {
      deps.logger.info({ clip: clip.id }, "clip removed from the camera during its upload");
      return;
    }
    if (after.size === before?.size && after.mtimeMs === before?.mtimeMs) return;
    changedMeanwhile = new ClipChangedError(
      `size ${before?.size} and mtime ${before?.mtimeMs} at the start, ${after.size} and ${after.mtimeMs} at the end`,
    );
    throw changedMeanwhile;
  };

  const input = await source.read(clip.path);
  const remotePath = remotePathOf(clip.id);
  // Who failed, when the put fails: the camera's stream (an error, or a clip that changed size)
  // or the vault. Only the vault's failures say the destination is not working.
  let inputErrored = false;
  let inputEnded = false;
  let plainBytes = 0;
  input.once("error", () => {
    inputErrored = true;
  });
  input.once("end", () => {
    inputEnded = true;
  });
  let sealed: Awaited<ReturnType<typeof deps.vault.put>>;
  try {
    sealed = await deps.vault.put(remotePath, input, {
      plainSize: clip.size,
      onPlainBytes: (bytes) => {
        plainBytes = bytes;
        touch();
        events.emit("clipProgress", { runId, id: clip.id, bytes });
      },
      onCipherChunk: touch,
      beforeCommit: recheck,
      signal,
    });
  } catch (err) {
    if (changedMeanwhile) throw changedMeanwhile;
    // More bytes than listed can only come from a file that grew since.
    if (plainBytes > clip.size) {
      throw new ClipChangedError(`grew from ${clip.size} bytes while it was read`);
    }
    const sourceAtFault = inputErrored || (inputEnded && plainBytes !== clip.size);
    if (!sourceAtFault && !signal.aborted) {
      events.emit("destinationFailed", {
        runId,
        id: clip.id,
        error: errorMessage(err),
        at: new Date(deps.now()).toISOString(),
      });
    }
    throw err;
  }
  // Given up on meanwhile: the file is complete, but this attempt already counts as failed.
  signal.throwIfAborted();
  const record: ClipRecord = {
    id: clip.id,
    source: clip.source,
    camera: clip.camera,
    date: clip.date,
    name: clip.name,
    size: clip.size,
    mtimeMs: clip.mtimeMs,
    sha256: sealed.sha256,
    remotePath,
    remoteSize: sealed.remoteSize,
    uploadedAt: new Date(deps.now()).toISOString(),
    format: "age",
    ...(deps.incomplete?.has(clip.id) ? { incomplete: true as const } : {}),
  };
  await deps.manifest.record(record);
  return record;
}
