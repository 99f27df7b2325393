import type { Store } from "../storage/types.js";
import { clipIdOf, DEFAULT_CAMERA, isDate, unsafeSegmentReason } from "./clipId.js";

/** A file in one of the destination's date folders. */
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
 * Every file in the destination's date folders: `<date>/<file>` and `<camera>/<date>/<file>`,
 * the two layouts clips (and legacy backups) live in. Anything else on the server is not ours
 * and is left out. Unsafe names are skipped.
 */
export async function listVaultFiles(
  store: Store,
  opts: { date?: string } = {},
): Promise<VaultFile[]> {
  const dateDirs: Array<{ camera: string | undefined; date: string }> = [];
  for (const entry of await store.list("")) {
    if (entry.kind !== "dir" || entry.name.startsWith(".") || unsafeSegmentReason(entry.name)) {
      continue;
    }
    if (isDate(entry.name)) {
      dateDirs.push({ camera: undefined, date: entry.name });
      continue;
    }
    for (const sub of await store.list(entry.name)) {
      if (sub.kind === "dir" && isDate(sub.name)) {
        dateDirs.push({ camera: entry.name, date: sub.name });
      }
    }
  }
  const out: VaultFile[] = [];
  for (const { camera, date } of dateDirs) {
    if (opts.date !== undefined && opts.date !== date) continue;
    const dir = camera === undefined ? date : `${camera}/${date}`;
    for (const file of await store.list(dir)) {
      if (file.kind !== "file" || unsafeSegmentReason(file.name)) continue;
      const name = file.name.endsWith(".age") ? file.name.slice(0, -4) : file.name;
      out.push({
        path: `${dir}/${file.name}`,
        camera: camera ?? DEFAULT_CAMERA,
        date,
        name: file.name,
        id: clipIdOf(camera, date, name),
        size: file.size,
        mtimeMs: file.mtimeMs,
      });
    }
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** The first bytes of a remote file (to tell a Fernet token from anything else). */
export async function readHead(store: Store, path: string, bytes = 64): Promise<Buffer> {
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
