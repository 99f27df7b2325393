import { open, readFile, rename, rm } from "node:fs/promises";
import { dirname } from "node:path";
import type { Adapter } from "lowdb";

/**
 * A lowdb adapter whose writes survive a power cut: the JSON goes to a temporary file, which is
 * flushed to disk, renamed over the old one, and then the folder is flushed too (so the rename
 * itself is on disk). A record reported as done is never lost, and a crash never leaves a torn
 * file. Writes to one file run one at a time; while one runs, later ones collapse into a
 * single write of the newest data.
 */
export class DurableJsonFile<T> implements Adapter<T> {
  /** The newest data not yet being written, and who waits for it. */
  private pending: string | undefined;
  private waiters: Array<{ resolve(): void; reject(err: unknown): void }> = [];
  private draining = false;
  private serial = 0;

  constructor(private readonly path: string) {}

  async read(): Promise<T | null> {
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
    return JSON.parse(text) as T;
  }

  write(data: T): Promise<void> {
    // The caller may change `data` right after: what is written is what it held now.
    this.pending = JSON.stringify(data);
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.draining) void this.drain();
    return done;
  }

  private async drain(): Promise<void> {
    this.draining = true;
    while (this.pending !== undefined) {
      const text = this.pending;
      const waiters = this.waiters.splice(0);
      this.pending = undefined;
      try {
        await writeDurably(this.path, text, ++this.serial);
        for (const w of waiters) w.resolve();
      } catch (err) {
        for (const w of waiters) w.reject(err);
      }
    }
    this.draining = false;
  }
}

async function writeDurably(path: string, text: string, serial: number): Promise<void> {
  const temp = `${path}.${process.pid}-${serial}.tmp`;
  try {
    const file = await open(temp, "w", 0o600);
    try {
      await file.writeFile(text);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  const dir = await open(dirname(path), "r");
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
