import type { Readable } from "node:stream";

/**
 * The two sides of the vault, as rclone's small backend interface: a camera is a `Source`
 * (read-only), the backup is a `VaultStore` (written, never partially). Backends live in
 * `source/` and `vault/` and register themselves in each folder's `registry.ts`.
 *
 * All `path` arguments are relative to the backend's root, `/`-separated, already checked by
 * `src/clips/clipId.ts`; backends join them under their root and must not resolve `..`.
 */

/** One entry of a directory listing. */
export interface Entry {
  name: string;
  kind: "file" | "dir";
  size: number;
  /** Modification time in ms since epoch; 0 when the server does not say. */
  mtimeMs: number;
}

/** Where clips come from: a camera's media root (FTP, a local folder). Read-only. */
export interface Source {
  /** Human-readable location, for logs and errors (never contains secrets). */
  readonly description: string;
  /** The media root on this machine, when the source is a local folder (maps trigger paths). */
  readonly localRoot?: string;
  /** The server, for messages about the root (`ftp://camera:21`); absent for a local folder. */
  readonly server?: string;
  /** Entries of a directory; an absent directory lists as []. */
  list(dir: string): Promise<Entry[]>;
  /** Entry for a path, or undefined when it does not exist. */
  stat(path: string): Promise<Entry | undefined>;
  /** A stream of the file's bytes. The caller must consume or destroy it. */
  read(path: string): Promise<Readable>;
  /**
   * Up to `length` bytes of the file at `path` from byte `offset`: fewer only where the file
   * ends. For small reads (at most MAX_RANGE_LENGTH: box headers, for the completeness check);
   * stream bigger ones with `read`.
   */
  readRange(path: string, offset: number, length: number): Promise<Buffer>;
  /** Releases connections. Safe to call twice. */
  close(): Promise<void>;
}

/** What the completeness check needs of a source. */
export type RangeReader = Pick<Source, "readRange">;

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

export interface PutOptions {
  /** The upload fails (and nothing gets the final name) unless exactly this many bytes arrived. */
  expectedSize?: number;
  /**
   * Called once the temporary upload is complete and size-checked, just before it is renamed
   * into place; when it throws, the upload is removed and `put` fails with that error.
   */
  beforeCommit?: () => Promise<void>;
}

export interface PutResult {
  /** Bytes that reached the store under the final name. */
  size: number;
}

/** Where backups live (SFTP, a local folder, S3): written never partially. */
export interface VaultStore {
  readonly description: string;
  /** Entries of a directory; an absent directory lists as []. */
  list(dir: string): Promise<Entry[]>;
  stat(path: string): Promise<Entry | undefined>;
  read(path: string): Promise<Readable>;
  /** A few bytes from inside a stored file (as Source.readRange), where the backend can. */
  readRange?(path: string, offset: number, length: number): Promise<Buffer>;
  /**
   * Writes `data` to a temporary name next to `path` (`<name>.part-<random>`), checks its size,
   * runs `beforeCommit`, then renames it into place atomically, replacing any existing file.
   * Creates parent directories. On any failure the temporary file is removed (best effort) and
   * nothing appears under `path`. (S3 has no temporary name: an object shows only once its
   * upload completes, and `beforeCommit` runs before the request that completes it.)
   */
  put(path: string, data: Readable, opts?: PutOptions): Promise<PutResult>;
  /** Removes a file; a missing file is not an error. */
  remove(path: string): Promise<void>;
  /**
   * Optional ability (as rclone's features): drops what unfinished writes of this vault left on
   * the server, out of sight of `list`, older than `olderThanMs` (S3's multipart uploads).
   * Resolves with how many it dropped. Stores whose leftovers show in `list` (`.part-` files)
   * leave it out: the stray-upload sweep finds those.
   */
  sweepStale?(olderThanMs: number): Promise<number>;
  close(): Promise<void>;
}

/** Name of the temporary file used while writing `path`. Shared so cleanup can recognise strays. */
export function partName(path: string, token: string): string {
  return `${path}.part-${token}`;
}

export const PART_PATTERN = /\.part-[A-Za-z0-9]+$/;
