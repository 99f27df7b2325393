import { createReadStream } from "node:fs";
import { z } from "zod";
import { listLocal, localEntry, localPath, readLocalRange } from "../localEntry.js";
import { defineBackend } from "../registry.js";
import type { Source } from "../types.js";

/** A media root on this machine (motionEye on the same host, the Home Assistant add-on's media). */
export function createLocalSource(root: string): Source {
  return {
    description: `file://${root}`,
    localRoot: root,
    list: (dir) => listLocal(localPath(root, dir)),
    async stat(path) {
      const parts = path.split("/");
      return localEntry(parts[parts.length - 1] ?? path, localPath(root, path));
    },
    async read(path) {
      // 256 KiB reads: as fast as 1 MiB ones here, and each fresh read buffer lingers until a
      // garbage collection, so bigger ones raise the peak memory of a sync (README, Performance).
      const stream = createReadStream(localPath(root, path), { highWaterMark: 1 << 18 });
      await new Promise<void>((resolve, reject) => {
        stream.once("open", () => resolve());
        stream.once("error", reject);
      });
      return stream;
    },
    readRange: (path, offset, length) => readLocalRange(localPath(root, path), offset, length),
    async close() {},
  };
}

export const localSource = defineBackend({
  type: "local",
  schema: z.object({
    /** The motionEye media root (embedded default: the sample clips). */
    path: z.string().min(1).default("./samples/motioneye"),
  }),
  paths: ["path"],
  create: async (o) => createLocalSource(o.path),
});
