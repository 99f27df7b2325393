import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { pipeline } from "node:stream/promises";
import { z } from "zod";
import { listLocal, localEntry, localPath, readLocalRange } from "../localEntry.js";
import { defineBackend } from "../registry.js";
import { partName, type VaultStore } from "../types.js";

/** A vault in a folder on this machine (a NAS mount, a USB disk): the embedded default. */
export function createLocalVault(root: string, opts: { fileMode?: number } = {}): VaultStore {
  const abs = (p: string) => localPath(root, p);
  const fileMode = opts.fileMode ?? 0o600;
  return {
    description: `file://${root}`,
    list: (dir) => listLocal(abs(dir)),
    async stat(path) {
      const parts = path.split("/");
      return localEntry(parts[parts.length - 1] ?? path, abs(path));
    },
    async read(path) {
      const stream = createReadStream(abs(path), { highWaterMark: 1 << 20 });
      await new Promise<void>((resolve, reject) => {
        stream.once("open", () => resolve());
        stream.once("error", reject);
      });
      return stream;
    },
    readRange: (path, offset, length) => readLocalRange(abs(path), offset, length),
    async put(path, data, putOpts = {}) {
      const final = abs(path);
      const part = partName(final, randomBytes(6).toString("hex"));
      await mkdir(dirname(final), { recursive: true, mode: 0o700 });
      try {
        await pipeline(data, createWriteStream(part, { mode: fileMode, highWaterMark: 1 << 20 }));
        const size = (await stat(part)).size;
        if (putOpts.expectedSize !== undefined && size !== putOpts.expectedSize) {
          throw new Error(`${path}: wrote ${size} bytes, expected ${putOpts.expectedSize}`);
        }
        await putOpts.beforeCommit?.();
        await rename(part, final);
        return { size };
      } catch (err) {
        await rm(part, { force: true });
        throw err;
      }
    },
    async remove(path) {
      await rm(abs(path), { force: true });
    },
    async close() {},
  };
}

export const localVault = defineBackend({
  type: "local",
  schema: z.object({
    /** The vault's folder (embedded default: ./data/vault). */
    path: z.string().min(1).default("./data/vault"),
  }),
  paths: ["path"],
  create: async (o) => createLocalVault(o.path),
});
