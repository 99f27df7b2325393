import type { SourcePart } from "../backup/sourceRun.js";
import type { SourceSet } from "../clips/sources.js";
import { cameraFolders } from "../clips/walk.js";
import type { SourceView } from "../extensions/contract.js";

/** A source as extensions see it: its camera folders and small files (thumbnails). */
export function sourceView(part: SourcePart, type: string, sources: SourceSet): SourceView {
  // The unprefixed source's top folders named like another source's prefix are not cameras.
  const skip = new Set(part.ref.prefix === "" ? sources.prefixes : []);
  return {
    name: part.ref.name,
    type,
    cameras: () => cameraFolders((dir) => part.source.list(dir), { skip }),
    async readSmall(path, maxBytes) {
      const st = await part.source.stat(path).catch(() => undefined);
      if (st?.kind !== "file" || st.size > maxBytes) return undefined;
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of await part.source.read(path)) {
        size += (chunk as Buffer).length;
        if (size > maxBytes) return undefined; // it grew meanwhile: not a thumbnail
        chunks.push(chunk as Buffer);
      }
      return Buffer.concat(chunks);
    },
  };
}
