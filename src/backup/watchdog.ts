/** Fails a clip's transfer that stalled or ran too long. */
export class ClipTimeoutError extends Error {
  override name = "ClipTimeoutError";
}

/** How long a stopped attempt may take to clean up after itself. */
const CLEANUP_GRACE_MS = 5_000;

export interface WatchdogOptions {
  /** No byte moved for this long: the attempt fails. */
  idleMs: number;
  /** The attempt took longer than this in all: it fails. */
  totalMs: number;
  /** The run was stopped: the attempt ends at once. */
  runSignal?: AbortSignal;
}

/**
 * Runs one clip's transfer under a watchdog: it fails with ClipTimeoutError when `touch` is not
 * called for `idleMs` or the whole takes longer than `totalMs`, even when a store hangs and never
 * answers; the transfer's `signal` aborts then, so it can drop its temporary upload.
 */
export async function withWatchdog<T>(
  work: (touch: () => void, signal: AbortSignal) => Promise<T>,
  opts: WatchdogOptions,
): Promise<T> {
  const abort = new AbortController();
  let reject: (err: Error) => void = () => {};
  const stopped = new Promise<never>((_, rej) => {
    reject = rej;
  });
  const expire = (err: Error) => {
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
    idle = setTimeout(
      () =>
        expire(
          new ClipTimeoutError(
            `no data moved for ${opts.idleMs / 1000} s; giving up on this attempt`,
          ),
        ),
      opts.idleMs,
    );
  };
  const overall = setTimeout(
    () =>
      expire(
        new ClipTimeoutError(
          `took longer than ${opts.totalMs / 1000} s; giving up on this attempt`,
        ),
      ),
    opts.totalMs,
  );
  // Stopping the service stops the clip at once: its upload is removed, nothing is recorded.
  const onRunAbort = () => {
    const err = new Error("the run was stopped");
    err.name = "AbortError";
    expire(err);
  };
  opts.runSignal?.addEventListener("abort", onRunAbort, { once: true });
  if (opts.runSignal?.aborted) onRunAbort();
  touch();
  const attempt = work(touch, abort.signal);
  try {
    return await Promise.race([attempt, stopped]);
  } catch (err) {
    // Stopped: let the attempt remove its `.part` while the stores are still open (the service
    // closes them next), unless a hung store keeps it from ever settling. (A watchdog timeout
    // means a store hangs: no point waiting for it.)
    if (opts.runSignal?.aborted) {
      let wait: NodeJS.Timeout | undefined;
      await Promise.race([
        attempt.catch(() => {}),
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
    opts.runSignal?.removeEventListener("abort", onRunAbort);
  }
}
