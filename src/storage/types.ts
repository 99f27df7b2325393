import type { Readable } from "node:stream";

/** One entry of a directory listing. Paths are always `/`-separated and relative to the store root. */
export interface StoreEntry {
  name: string;
  kind: "file" | "dir";
  size: number;
  /** Modification time in ms since epoch; 0 when the server does not say. */
  mtimeMs: number;
}

export interface WriteResult {
  /** Bytes that reached the destination under the final name. */
  size: number;
}

/**
 * One interface for every place clips live: the camera (FTP), the vault (SFTP) and local folders.
 * Sync and restore only ever talk to this, as rclone's backends do.
 *
 * All `path` arguments are relative to the store's root, `/`-separated, already checked by
 * `clipPath.ts`; stores join them under their root and must not resolve `..`.
 */
export interface Store {
  /** Human-readable location, for logs and errors (never contains secrets). */
  readonly description: string;
  /** Entries of a directory; an absent directory lists as []. */
  list(dir: string): Promise<StoreEntry[]>;
  /** Entry for a path, or undefined when it does not exist. */
  stat(path: string): Promise<StoreEntry | undefined>;
  /** A stream of the file's bytes. The caller must consume or destroy it. */
  read(path: string): Promise<Readable>;
  /**
   * Writes `data` to a temporary name next to `path` (`<name>.part-<random>`), checks that the
   * size that arrived equals `expectedSize` when given, then renames it into place atomically,
   * replacing any existing file. Creates parent directories. On any failure the temporary file is
   * removed (best effort) and nothing appears under `path`.
   */
  writeAtomic(path: string, data: Readable, opts?: { expectedSize?: number }): Promise<WriteResult>;
  /** Renames within the store, replacing the target. */
  rename(from: string, to: string): Promise<void>;
  /** Removes a file; a missing file is not an error. */
  remove(path: string): Promise<void>;
  /** Releases connections. Safe to call twice. */
  close(): Promise<void>;
}

/** Name of the temporary file used while writing `path`. Shared so cleanup can recognise strays. */
export function partName(path: string, token: string): string {
  return `${path}.part-${token}`;
}

export const PART_PATTERN = /\.part-[A-Za-z0-9]+$/;
