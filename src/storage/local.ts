import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { partName, type Store, type StoreEntry, type WriteResult } from "./types.js";

/** A folder on this machine: the embedded default for both source and vault. */
export function createLocalStore(root: string, opts: { fileMode?: number } = {}): Store {
  const abs = (p: string) => (p === "" || p === "." ? root : join(root, ...p.split("/")));
  const fileMode = opts.fileMode ?? 0o600;

  const toEntry = async (name: string, full: string): Promise<StoreEntry | undefined> => {
    try {
      const st = await stat(full);
      return {
        name,
        kind: st.isDirectory() ? "dir" : "file",
        size: st.isDirectory() ? 0 : st.size,
        mtimeMs: st.mtimeMs,
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  };

  return {
    description: `file://${root}`,

    async list(dir) {
      let names: string[];
      try {
        names = await readdir(abs(dir));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ENOENT" || code === "ENOTDIR") return [];
        throw err;
      }
      const entries = await Promise.all(names.map((n) => toEntry(n, join(abs(dir), n))));
      return entries.filter((e): e is StoreEntry => e !== undefined);
    },

    async stat(path) {
      const parts = path.split("/");
      return toEntry(parts[parts.length - 1] ?? path, abs(path));
    },

    async read(path) {
      const stream = createReadStream(abs(path), { highWaterMark: 1 << 20 });
      await new Promise<void>((resolve, reject) => {
        stream.once("open", () => resolve());
        stream.once("error", reject);
      });
      return stream;
    },

    async writeAtomic(path, data: Readable, wopts = {}): Promise<WriteResult> {
      const final = abs(path);
      const part = partName(final, randomBytes(6).toString("hex"));
      await mkdir(dirname(final), { recursive: true, mode: 0o700 });
      try {
        await pipeline(data, createWriteStream(part, { mode: fileMode, highWaterMark: 1 << 20 }));
        const size = (await stat(part)).size;
        if (wopts.expectedSize !== undefined && size !== wopts.expectedSize) {
          throw new Error(`${path}: wrote ${size} bytes, expected ${wopts.expectedSize}`);
        }
        await rename(part, final);
        return { size };
      } catch (err) {
        await rm(part, { force: true });
        throw err;
      }
    },

    async rename(from, to) {
      await mkdir(dirname(abs(to)), { recursive: true, mode: 0o700 });
      await rename(abs(from), abs(to));
    },

    async remove(path) {
      await rm(abs(path), { force: true });
    },

    async close() {},
  };
}
