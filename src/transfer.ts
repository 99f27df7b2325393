/**
 * One clip, end to end: download -> sha256 -> age encrypt -> `.part` upload -> re-check of the
 * source -> rename -> record, streaming, under a watchdog. Used by the sync engine per clip.
 */
import { createHash } from "node:crypto";
import { type Readable, Transform, type TransformCallback } from "node:stream";
import { remotePathOf } from "./clipId.js";
import { encryptStream } from "./crypto/age.js";
import type { EventBus } from "./events.js";
import type { Logger } from "./log.js";
import type { ClipRecord, Manifest } from "./manifest.js";
import type { SourceClip } from "./plan.js";
import type { SourceStore, Store } from "./storage/store.js";

export interface TransferDeps {
  source: SourceStore;
  destination: Store;
  manifest: Manifest;
  events: EventBus;
  logger: Logger;
  /** A clip whose transfer moves no byte for this long fails (and is retried); default 120 s. */
  idleTimeoutMs?: number;
  /** A clip that takes longer than this in all fails (and is retried); default 4 h. */
  clipTimeoutMs?: number;
  now?: () => number;
}

/** sha256 and byte count of what flows through, without buffering. */
class HashingCounter extends Transform {
  readonly hash = createHash("sha256");
  bytes = 0;
  constructor(private readonly onBytes: (n: number) => void) {
    // 256 KiB: enough to keep the pipeline busy; more only adds RSS (README, Performance).
    super({ highWaterMark: 1 << 18 });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onBytes(this.bytes);
    cb(null, chunk);
  }
}

/**
 * The clip changed on the source while it was being backed up (motion still writing it): the
 * upload is discarded, nothing is recorded, and a later run backs it up. Not a failure.
 */
export class ClipChangedError extends Error {
  override name = "ClipChangedError";
}

/** Fails a clip's transfer that stalled or ran too long. */
export class ClipTimeoutError extends Error {
  override name = "ClipTimeoutError";
}

/** A byte counter that only reports progress (for the stall watchdog). */
class ProgressTap extends Transform {
  constructor(private readonly onProgress: () => void) {
    // 256 KiB: enough to keep the pipeline busy; more only adds RSS (README, Performance).
    super({ highWaterMark: 1 << 18 });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.onProgress();
    cb(null, chunk);
  }
}

/** How long a given-up attempt may take to clean up after itself. */
const CLEANUP_GRACE_MS = 5_000;

/**
 * One clip with its watchdog: fails with ClipTimeoutError when no byte moves for
 * `idleTimeoutMs` or the whole clip takes longer than `clipTimeoutMs`, even when a store hangs.
 */
export async function backUpClip(
  deps: TransferDeps,
  clip: SourceClip,
  recipients: string[],
  runId: string,
  runSignal?: AbortSignal,
): Promise<ClipRecord> {
  const idleMs = deps.idleTimeoutMs ?? 120_000;
  const totalMs = deps.clipTimeoutMs ?? 4 * 3600_000;
  const abort = new AbortController();
  let reject: (err: Error) => void = () => {};
  const timedOut = new Promise<never>((_, rej) => {
    reject = rej;
  });
  const expire = (message: string) => {
    const err = new ClipTimeoutError(`${message}; giving up on this attempt`);
    abort.abort(err);
    reject(err);
  };
  let idle: NodeJS.Timeout | undefined;
  let lastTouch = 0;
  const touch = () => {
    const t = Date.now();
    if (idle && t - lastTouch < 200) return; // re-arming per chunk costs; 200 ms is plenty
    lastTouch = t;
    clearTimeout(idle);
    idle = setTimeout(() => expire(`no data moved for ${idleMs / 1000} s`), idleMs);
  };
  const overall = setTimeout(() => expire(`took longer than ${totalMs / 1000} s`), totalMs);
  // Stopping the service stops the clip at once: its `.part` is removed, nothing is recorded.
  const onRunAbort = () => {
    const err = new Error("the run was stopped");
    err.name = "AbortError";
    abort.abort(err);
    reject(err);
  };
  runSignal?.addEventListener("abort", onRunAbort, { once: true });
  if (runSignal?.aborted) onRunAbort();
  touch();
  const work = transfer(deps, clip, recipients, runId, touch, abort.signal);
  try {
    return await Promise.race([work, timedOut]);
  } catch (err) {
    // Stopped: let the attempt remove its `.part` while the stores are still open (the service
    // closes them next), unless a hung store keeps it from ever settling. (A watchdog timeout
    // means a store hangs: no point waiting for it.)
    if (runSignal?.aborted) {
      let wait: NodeJS.Timeout | undefined;
      await Promise.race([
        work.catch(() => {}),
        new Promise<void>((resolve) => {
          wait = setTimeout(resolve, CLEANUP_GRACE_MS);
        }),
      ]);
      clearTimeout(wait);
    }
    throw err;
  } finally {
    clearTimeout(idle);
    clearTimeout(overall);
    runSignal?.removeEventListener("abort", onRunAbort);
  }
}

/** One clip, end to end, streaming. Recorded only once its encrypted copy has its final name. */
async function transfer(
  deps: TransferDeps,
  clip: SourceClip,
  recipients: string[],
  runId: string,
  touch: () => void,
  signal: AbortSignal,
): Promise<ClipRecord> {
  // Compared with a second stat right before the upload's commit: the same call both times,
  // since a listing's mtime may be coarser than a stat's (FTP LIST vs MDTM).
  const before = await deps.source.stat(clip.id);
  if (before && before.size !== clip.size) {
    throw new ClipChangedError(`size ${clip.size} when listed, ${before.size} now`);
  }
  let changedMeanwhile: ClipChangedError | undefined;
  const recheck = async () => {
    const after = await deps.source.stat(clip.id);
    // A given-up attempt never gets its final name.
    if (signal.aborted) throw signal.reason;
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
  const input: Readable = await deps.source.read(clip.id);
  const counter = new HashingCounter((bytes) => {
    touch();
    deps.events.emit("clipProgress", { runId, id: clip.id, bytes });
  });
  const tap = new ProgressTap(touch);
  const onAbort = () => {
    input.destroy(signal.reason as Error);
    tap.destroy(signal.reason as Error);
  };
  signal.addEventListener("abort", onAbort, { once: true });
  input.on("error", (err) => counter.destroy(err));
  input.pipe(counter);
  try {
    if (signal.aborted) throw signal.reason;
    const { output, sizeFor } = await encryptStream(counter, recipients);
    output.on("error", (err) => tap.destroy(err));
    output.pipe(tap);
    const remotePath = remotePathOf(clip.id);
    // The expected ciphertext size follows from the listed size: a clip that grew or was cut
    // short since the listing fails here and its `.part` is never renamed into place.
    const written = await deps.destination
      .writeAtomic(remotePath, tap, { expectedSize: sizeFor(clip.size), beforeCommit: recheck })
      .catch((err: unknown) => {
        if (changedMeanwhile) throw changedMeanwhile;
        // More bytes than listed can only come from a file that grew since.
        if (counter.bytes > clip.size) {
          throw new ClipChangedError(`grew from ${clip.size} bytes while it was read`);
        }
        throw err;
      });
    // Given up on meanwhile: the file is complete, but this attempt already counts as failed.
    if (signal.aborted) throw signal.reason;
    const record: ClipRecord = {
      id: clip.id,
      camera: clip.camera,
      date: clip.date,
      name: clip.name,
      size: clip.size,
      mtimeMs: clip.mtimeMs,
      sha256: counter.hash.digest("hex"),
      remotePath,
      remoteSize: written.size,
      uploadedAt: new Date((deps.now ?? Date.now)()).toISOString(),
      format: "age",
    };
    await deps.manifest.record(record);
    return record;
  } finally {
    signal.removeEventListener("abort", onAbort);
    if (!input.readableEnded) input.destroy();
  }
}
