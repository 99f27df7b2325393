import { open, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { checkRange, type Entry } from "./types.js";

/** A path relative to a local root, as an absolute path (plain join: `..` is checked before). */
export function localPath(root: string, path: string): string {
  return path === "" || path === "." ? root : join(root, ...path.split("/"));
}

/** The entry for a local path, or undefined when there is none. */
export async function localEntry(name: string, full: string): Promise<Entry | undefined> {
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
}

/** The entries of a local folder; an absent folder lists as []. */
export async function listLocal(dir: string): Promise<Entry[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return [];
    throw err;
  }
  const entries = await Promise.all(names.map((n) => localEntry(n, join(dir, n))));
  return entries.filter((e): e is Entry => e !== undefined);
}

/** Up to `length` bytes of a local file from `offset` (fewer only where the file ends). */
export async function readLocalRange(
  path: string,
  offset: number,
  length: number,
): Promise<Buffer> {
  checkRange(offset, length);
  const file = await open(path, "r");
  try {
    const buf = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await file.read(buf, got, length - got, offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got);
  } finally {
    await file.close();
  }
}
