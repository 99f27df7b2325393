import type { Readable } from "node:stream";

/** One entry of a directory listing. Paths are always `/`-separated and relative to the store root. */
export interface StoreEntry {
  name: string;
  kind: "file" | "dir";
  size: number;
  /** Modification time in ms since epoch; 0 when the server does not say. */
  mtimeMs: number;
}

export interface WriteOptions {
  /** The upload's size must be exactly this, else it is discarded. */
  expectedSize?: number;
  /**
   * Runs once the upload is complete and size-checked, right before it gets its final name.
   * If it throws, the upload is discarded (temporary file removed, nothing renamed) and
   * writeAtomic rejects with that error: the last word on whether the copy may become final.
   */
  beforeCommit?: () => Promise<void>;
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
   * size that arrived equals `expectedSize` when given, runs `beforeCommit` when given, then
   * renames it into place atomically, replacing any existing file. Creates parent directories.
   * On any failure the temporary file is removed (best effort) and nothing appears under `path`.
   */
  writeAtomic(path: string, data: Readable, opts?: WriteOptions): Promise<WriteResult>;
  /** Renames within the store, replacing the target. */
  rename(from: string, to: string): Promise<void>;
  /** Removes a file; a missing file is not an error. */
  remove(path: string): Promise<void>;
  /** Releases connections. Safe to call twice. */
  close(): Promise<void>;
}

/** A few bytes from the middle of a file, without reading what comes before them. */
export interface RangeReader {
  /**
   * Up to `length` bytes of the file at `path` from byte `offset`: fewer only where the file
   * ends. For small reads (at most MAX_RANGE_LENGTH); stream bigger ones with `read`.
   */
  readRange(path: string, offset: number, length: number): Promise<Buffer>;
}

/** A camera's media root: a store that can also read a few bytes from inside a clip. */
export type SourceStore = Store & RangeReader;

/** Ranged reads are for box headers and the like, never for clips. */
export const MAX_RANGE_LENGTH = 1024 * 1024;

/** Throws a RangeError naming what is wrong with a ranged read's arguments. */
export function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new RangeError(`readRange: offset must be a whole number >= 0, got ${offset}`);
  }
  if (!Number.isSafeInteger(length) || length < 0 || length > MAX_RANGE_LENGTH) {
    throw new RangeError(
      `readRange: length must be a whole number from 0 to ${MAX_RANGE_LENGTH}, got ${length}`,
    );
  }
}

/** Name of the temporary file used while writing `path`. Shared so cleanup can recognise strays. */
export function partName(path: string, token: string): string {
  return `${path}.part-${token}`;
}

export const PART_PATTERN = /\.part-[A-Za-z0-9]+$/;
