import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Entry } from "./types.js";

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
