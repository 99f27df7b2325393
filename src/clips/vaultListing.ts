import type { Entry } from "../storage/types.js";
import { clipIdOf, DEFAULT_CAMERA, unsafeSegmentReason } from "./clipId.js";
import { dateFolders } from "./walk.js";

/** A file in one of the vault's date folders. */
export interface VaultFile {
  /** Relative to destination.path. */
  path: string;
  camera: string;
  date: string;
  name: string;
  /** The clip id this file would belong to (its path without `.age`, or as is for legacy files). */
  id: string;
  size: number;
  mtimeMs: number;
}

/**
 * Every file in the vault's date folders: `<date>/<file>` and `<camera>/<date>/<file>` (the
 * layouts clips and legacy backups live in), and the same under each source's prefix. Anything
 * else on the server is not ours and is left out. Unsafe names are skipped.
 */
export async function listVaultFiles(
  store: { list(dir: string): Promise<Entry[]> },
  opts: { date?: string; prefixes?: readonly string[] } = {},
): Promise<VaultFile[]> {
  const list = (dir: string) => store.list(dir);
  const prefixes = opts.prefixes ?? [];
  const roots = [
    { root: "", skip: new Set(prefixes) },
    ...prefixes.map((p) => ({ root: p, skip: undefined })),
  ];
  const out: VaultFile[] = [];
  for (const { root, skip } of roots) {
    for (const { camera, date, dir } of await dateFolders(list, { root, date: opts.date, skip })) {
      for (const file of await store.list(dir)) {
        if (file.kind !== "file" || unsafeSegmentReason(file.name)) continue;
        const name = file.name.endsWith(".age") ? file.name.slice(0, -4) : file.name;
        const rel = clipIdOf(camera, date, name);
        out.push({
          path: `${dir}/${file.name}`,
          camera: camera ?? DEFAULT_CAMERA,
          date,
          name: file.name,
          id: root === "" ? rel : `${root}/${rel}`,
          size: file.size,
          mtimeMs: file.mtimeMs,
        });
      }
    }
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** The first bytes of a remote file (to tell a Fernet token from anything else). */
export async function readHead(
  store: { read(path: string): Promise<AsyncIterable<unknown> & { destroy(): void }> },
  path: string,
  bytes = 64,
): Promise<Buffer> {
  const stream = await store.read(path);
  const parts: Buffer[] = [];
  let got = 0;
  try {
    for await (const chunk of stream) {
      parts.push(chunk as Buffer);
      got += (chunk as Buffer).length;
      if (got >= bytes) break;
    }
  } finally {
    stream.destroy();
  }
  return Buffer.concat(parts).subarray(0, bytes);
}
