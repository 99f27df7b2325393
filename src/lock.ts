import { open, readFile, rm } from "node:fs/promises";
import { join } from "node:path";

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
export async function acquireLock(stateDir: string): Promise<() => Promise<void>> {
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
      await rm(path, { force: true });
    }
  }
  throw new Error(`could not take the lock ${path}`);
}
