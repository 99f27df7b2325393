import { open, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export class LockedError extends Error {
  override name = "LockedError";
  constructor(readonly pid: number) {
    super(`another sync run is in progress (pid ${pid}); try again when it has finished`);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * One writer per state dir. The lock file holds the owner's PID; a lock whose PID is gone (a
 * SIGKILLed run) or is our own PID (a container restarted with the same PID) is stale and taken over.
 */
export async function acquireLock(
  stateDir: string,
  opts: { onStale?: (pid: number) => void } = {},
): Promise<() => Promise<void>> {
  const path = join(stateDir, "sync.lock");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, "wx", 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      let released = false;
      return async () => {
        if (released) return;
        released = true;
        await rm(path, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const pid = Number.parseInt(await readFile(path, "utf8").catch(() => ""), 10);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
        throw new LockedError(pid);
      }
      // The previous holder died mid-run (SIGKILL, power loss): its caller may need to repair.
      opts.onStale?.(Number.isInteger(pid) ? pid : 0);
      await rm(path, { force: true });
    }
  }
  throw new Error(`could not take the lock ${path}`);
}

/**
 * Runs `fn` (which takes the lock itself) and, while another process holds the lock, tries
 * again every `pollMs` until it is free or `signal` aborts: `serve` queues its runs behind a
 * `sync` started by hand instead of failing them.
 */
export async function whenUnlocked<T>(
  fn: () => Promise<T>,
  opts: { signal?: AbortSignal; pollMs?: number; onWait?: (pid: number) => void } = {},
): Promise<T> {
  for (let waited = false; ; waited = true) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof LockedError) || opts.signal?.aborted) throw err;
      if (!waited) opts.onWait?.(err.pid);
      await sleep(opts.pollMs ?? 2000, undefined, { signal: opts.signal });
    }
  }
}

/**
 * The state dir's lock as this process shares it: `serve` runs one queue per source, and their
 * runs (and settings writes) hold the one lock file together. Whoever takes the file lock runs
 * `onTaken` (re-read what another process wrote meanwhile; repair after a killed run) before any
 * holder goes on, and nobody takes or gives back the file while that is under way.
 */
export class SharedLock {
  private holders = 0;
  private release: (() => Promise<void>) | undefined;
  /** Taking or giving back the lock file: others wait for it. */
  private busy: Promise<void> | undefined;

  constructor(
    private readonly stateDir: string,
    /** `stalePid`: the lock was left by a process that died (SIGKILL, power loss). */
    private readonly onTaken: (stalePid: number | undefined) => Promise<void> = async () => {},
  ) {}

  async acquire(): Promise<{ release(): Promise<void> }> {
    while (this.busy) await this.busy.catch(() => undefined);
    if (this.holders > 0) this.holders++;
    else await this.serially(() => this.take());
    let released = false;
    return {
      release: async () => {
        if (released) return;
        released = true;
        if (--this.holders > 0) return;
        const release = this.release;
        this.release = undefined;
        if (release) await this.serially(release);
      },
    };
  }

  private async take(): Promise<void> {
    let stale: number | undefined;
    const release = await acquireLock(this.stateDir, { onStale: (pid) => (stale = pid) });
    try {
      await this.onTaken(stale);
    } catch (err) {
      await release();
      throw err;
    }
    this.release = release;
    this.holders = 1;
  }

  private async serially(work: () => Promise<void>): Promise<void> {
    const running = work();
    this.busy = running;
    try {
      await running;
    } finally {
      if (this.busy === running) this.busy = undefined;
    }
  }
}
