import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rename, rm, stat, utimes } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import { addAbortSignal, type Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Vault } from "../app/vault.js";
import {
  DEFAULT_CAMERA,
  InvalidClipIdError,
  isDate,
  parseClipId,
  stripControl,
  unsafeSegmentReason,
} from "../clips/clipId.js";
import { AgeError, decryptStream } from "../crypto/age/age.js";
import {
  decryptFernetStream,
  FernetError,
  type FernetKey,
  loadFernetKeyFile,
} from "../crypto/fernet/fernet.js";
import type { ClipRecord } from "../manifest/manifest.js";
import { partName } from "../storage/types.js";
import { errorMessage } from "../util/log.js";

/**
 * The one restore path, shared by the CLI (`restore`, `shell`, `verify`, `import-legacy`) and the
 * Telegram bot: find clips in the manifest, stream them from the destination, decrypt (age, or
 * Fernet for legacy backups), check the sha256, and only then give the file its name.
 *
 * Memory stays flat in the clip size: age decrypts as a stream; a Fernet token is first copied to
 * a local scratch file (ciphertext only, one download) and decrypted from there in two passes
 * (HMAC first, then AES), so a tampered token never yields a byte.
 */

export class ClipNotFoundError extends Error {
  override name = "ClipNotFoundError";
}

export class AmbiguousClipError extends Error {
  override name = "AmbiguousClipError";
  constructor(
    query: string,
    readonly candidates: string[],
  ) {
    const shown = candidates.slice(0, 5).join(", ");
    const more = candidates.length > 5 ? ` and ${candidates.length - 5} more` : "";
    super(
      `"${shorten(query)}" matches ${candidates.length} clips (${shown}${more}): give the full clip id`,
    );
  }
}

/** Decrypted fine, but not the bytes the manifest recorded. */
export class DigestMismatchError extends Error {
  override name = "DigestMismatchError";
}

/** A clip could not be restored or checked; the message names the clip. */
export class ClipRestoreError extends Error {
  override name = "ClipRestoreError";
  constructor(
    readonly clipId: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${clipId}: ${reason}`, options);
  }
}

function shorten(s: string): string {
  const clean = stripControl(s);
  return clean.length > 120 ? `${clean.slice(0, 117)}...` : clean;
}

/**
 * Full clip id, or the short `<date>/<name>` form when unique. Throws InvalidClipIdError
 * (src/clipId.ts), ClipNotFoundError, AmbiguousClipError — all with messages fit to show a user.
 */
export async function findClip(vault: Vault, query: string): Promise<ClipRecord> {
  const ref = parseClipId(query);
  const exact = await vault.manifest.get(ref.id, ref.date);
  if (exact) return exact;
  if (ref.camera === DEFAULT_CAMERA && query.split("/").length === 2) {
    const same = (await vault.manifest.listDate(ref.date)).filter((c) => c.name === ref.name);
    if (same.length === 1 && same[0]) return same[0];
    if (same.length > 1)
      throw new AmbiguousClipError(
        query,
        same.map((c) => c.id),
      );
  }
  throw new ClipNotFoundError(
    `clip not found: "${shorten(query)}" is not in the vault (\`list ${ref.date}\` shows that day's clips)`,
  );
}

// ------------------------------------------------------------------------------------ selection

/** What `restore` was asked for. */
export type Selection =
  | { kind: "all" }
  /** Inclusive; an open end means "from the first" / "to the last". */
  | { kind: "dates"; from?: string; to?: string }
  | { kind: "clip"; query: string };

/** A restore target that is neither `all`, a date, a range nor a clip id. */
export class SelectionError extends Error {
  override name = "SelectionError";
}

/** `all`, `YYYY-MM-DD`, `FROM..TO` (either end may be left out), or a clip id. */
export function parseSelection(target: string): Selection {
  if (target === "all") return { kind: "all" };
  if (isDate(target)) return { kind: "dates", from: target, to: target };
  const range = /^([^/]*)\.\.([^/]*)$/.exec(target);
  if (range) {
    const [, from = "", to = ""] = range;
    for (const d of [from, to]) {
      if (d !== "" && !isDate(d)) {
        throw new SelectionError(
          `"${shorten(d)}" in "${shorten(target)}" is not a date YYYY-MM-DD`,
        );
      }
    }
    if (from === "" && to === "") {
      throw new SelectionError("a range needs at least one date: FROM..TO, FROM.. or ..TO");
    }
    if (from !== "" && to !== "" && from > to) {
      throw new SelectionError(`"${shorten(target)}": ${from} is after ${to}`);
    }
    return { kind: "dates", from: from || undefined, to: to || undefined };
  }
  if (!target.includes("/")) {
    throw new SelectionError(
      `"${shorten(target)}" is neither \`all\`, a date YYYY-MM-DD, a range FROM..TO nor a clip id`,
    );
  }
  return { kind: "clip", query: target };
}

/** The clips a selection names, in id order, optionally of one camera. */
export async function selectClips(
  vault: Vault,
  selection: Selection,
  opts: { camera?: string } = {},
): Promise<ClipRecord[]> {
  let clips: ClipRecord[];
  if (selection.kind === "clip") {
    clips = [await findClip(vault, selection.query)];
  } else {
    const { from, to } =
      selection.kind === "dates" ? selection : { from: undefined, to: undefined };
    clips = [];
    for (const date of await vault.manifest.dates()) {
      if ((from && date < from) || (to && date > to)) continue;
      clips.push(...(await vault.manifest.listDate(date)));
    }
  }
  return opts.camera === undefined ? clips : clips.filter((c) => c.camera === opts.camera);
}

/** Where a clip goes under `outDir`: its id as a relative path (the vault's own layout). */
export function localPathOf(outDir: string, clip: Pick<ClipRecord, "id">): string {
  const ref = parseClipId(clip.id); // a manifest edited by hand must not write outside outDir
  const root = resolve(outDir);
  const path = join(root, ...ref.id.split("/"));
  const rel = relative(root, path);
  if (rel.startsWith("..") || rel.startsWith(sep)) {
    throw new InvalidClipIdError(clip.id, "resolves outside the output folder");
  }
  return path;
}

// ----------------------------------------------------------------------------- decrypt streams

const fernetKeys = new WeakMap<Vault, Promise<FernetKey>>();

/** The legacy key (encryption.fernetKeyFile), read once per vault. */
export function fernetKeyOf(vault: Vault): Promise<FernetKey> {
  let key = fernetKeys.get(vault);
  if (!key) {
    const path = vault.loaded.config.encryption.fernetKeyFile;
    key = path
      ? loadFernetKeyFile(path)
      : Promise.reject(
          new Error(
            "it is a legacy Fernet backup: set encryption.fernetKeyFile to the original tool's filekey.key",
          ),
        );
    key.catch(() => {}); // reported to each caller
    fernetKeys.set(vault, key);
  }
  return key;
}

/** Checks a manifest record's remote path before it goes near the store. */
function remotePathOf(clip: ClipRecord): string {
  const p = clip.remotePath;
  const bad =
    p.startsWith("/") || p.length > 1024
      ? "not relative"
      : p
          .split("/")
          .map(unsafeSegmentReason)
          .find((r) => r !== undefined);
  if (bad) throw new Error(`its remote path in the manifest is unsafe (${bad})`);
  return p;
}

async function readRemote(vault: Vault, path: string, signal?: AbortSignal): Promise<Readable> {
  signal?.throwIfAborted();
  const stream = await vault.destination.read(path);
  return signal ? addAbortSignal(signal, stream) : stream;
}

/**
 * Opens a clip's plaintext. For a legacy Fernet clip the token is first copied to `scratchFile`
 * (the caller deletes it afterwards); errors are the raw ones (see clipError).
 */
export async function openPlaintext(
  vault: Vault,
  clip: ClipRecord,
  scratchFile: string,
  signal?: AbortSignal,
): Promise<Readable> {
  const path = remotePathOf(clip);
  if (clip.format === "fernet") {
    const key = await fernetKeyOf(vault);
    await pipeline(
      await readRemote(vault, path, signal),
      createWriteStream(scratchFile, { mode: 0o600, flags: "wx" }),
      { signal },
    );
    return decryptFernetStream(async () => createReadStream(scratchFile), key);
  }
  const { secret } = await vault.identity();
  const input = await readRemote(vault, path, signal);
  try {
    return await decryptStream(input, [secret]);
  } catch (err) {
    input.destroy();
    throw err;
  }
}

/** sha256 and byte count of what flows through, without buffering. */
export class DigestCounter extends Transform {
  readonly hash = createHash("sha256");
  bytes = 0;
  constructor(private readonly onBytes?: (n: number) => void) {
    super({ highWaterMark: 1 << 20 });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onBytes?.(this.bytes);
    cb(null, chunk);
  }
}

/** What a decrypted clip's bytes say against its manifest record; throws on a mismatch. */
export function checkDigest(
  clip: ClipRecord,
  size: number,
  sha256: string,
): { size: number; sha256: string; verified: boolean } {
  if (!clip.sha256) return { size, sha256, verified: false };
  if (size !== clip.size) {
    throw new DigestMismatchError(
      `decrypted to ${size} bytes but the manifest says ${clip.size}: the backup does not match its record`,
    );
  }
  if (sha256 !== clip.sha256) {
    throw new DigestMismatchError(
      `decrypted data does not match the manifest's sha256 (expected ${clip.sha256.slice(0, 16)}…, got ${sha256.slice(0, 16)}…): the backup was altered`,
    );
  }
  return { size, sha256, verified: true };
}

/** True when a clip's failure means its backup is damaged or altered (not a connection or key problem). */
export function isCorruption(err: unknown): boolean {
  const cause = err instanceof ClipRestoreError ? err.cause : err;
  if (cause instanceof AgeError) return cause.kind !== "no match";
  return cause instanceof FernetError || cause instanceof DigestMismatchError;
}

/** Turns a failure into one line that names the clip and says what to do. */
export function clipError(vault: Vault, clip: ClipRecord, err: unknown): Error {
  if (err instanceof ClipRestoreError) return err;
  if (err instanceof Error && err.name === "AbortError") return err;
  let reason: string;
  if (err instanceof AgeError) {
    reason =
      err.kind === "no match"
        ? `cannot decrypt it with the age identity ${vault.loaded.config.encryption.identityFile}: the clip was encrypted to another key (is encryption.identityFile the key this vault was made with?)`
        : `the backup is damaged or was altered (${err.message})`;
  } else if (err instanceof FernetError) {
    reason =
      err.reason === "signature"
        ? "the legacy Fernet token's HMAC does not match: encryption.fernetKeyFile is not the key it was made with, or the file is damaged or altered"
        : `the legacy Fernet token cannot be read (${err.message})`;
  } else {
    reason = errorMessage(err);
  }
  return new ClipRestoreError(clip.id, reason, { cause: err });
}

// -------------------------------------------------------------------------------------- restore

export interface RestoreResult {
  id: string;
  path: string;
  size: number;
  sha256: string;
  verified: boolean;
}

/**
 * Streams the clip from the destination, decrypts (age, or Fernet for legacy), checks sha256
 * against the manifest when it has one, writes to a temp name next to outFile and renames into
 * place only when it checks out. On any failure no file is left and the error names the clip.
 * `onBytes` gets the plaintext bytes written so far. The file is created 0600 and given the
 * clip's original modification time.
 */
export async function restoreClip(
  vault: Vault,
  clip: ClipRecord,
  outFile: string,
  opts: { signal?: AbortSignal; onBytes?: (n: number) => void } = {},
): Promise<RestoreResult> {
  const token = randomBytes(6).toString("hex");
  const temp = partName(outFile, token);
  const scratch = partName(outFile, `${token}f`);
  try {
    await mkdir(dirname(outFile), { recursive: true });
    const plain = await openPlaintext(vault, clip, scratch, opts.signal);
    const counter = new DigestCounter(opts.onBytes);
    await pipeline(plain, counter, createWriteStream(temp, { mode: 0o600, flags: "wx" }), {
      signal: opts.signal,
    });
    const checked = checkDigest(clip, counter.bytes, counter.hash.digest("hex"));
    if (clip.mtimeMs > 0) await utimes(temp, new Date(), new Date(clip.mtimeMs));
    await rename(temp, outFile);
    return { id: clip.id, path: outFile, ...checked };
  } catch (err) {
    await rm(temp, { force: true });
    throw clipError(vault, clip, err);
  } finally {
    await rm(scratch, { force: true });
  }
}

/**
 * Reads a clip back and checks it without writing it anywhere (verify). Legacy clips recorded
 * without a checksum come back `verified: false` once their HMAC checked out.
 */
export async function digestClip(
  vault: Vault,
  clip: ClipRecord,
  opts: { signal?: AbortSignal; scratchDir: string },
): Promise<{ size: number; sha256: string; verified: boolean }> {
  const scratch = join(opts.scratchDir, randomBytes(6).toString("hex"));
  try {
    const plain = await openPlaintext(vault, clip, scratch, opts.signal);
    const counter = new DigestCounter();
    counter.resume(); // nothing downstream: let the bytes flow
    await pipeline(plain, counter, { signal: opts.signal });
    return checkDigest(clip, counter.bytes, counter.hash.digest("hex"));
  } catch (err) {
    throw clipError(vault, clip, err);
  } finally {
    await rm(scratch, { force: true });
  }
}

/** A private scratch folder in state.dir (ciphertext of legacy tokens), removed by `done()`. */
export async function scratchDir(vault: Vault): Promise<{ dir: string; done(): Promise<void> }> {
  const base = join(vault.loaded.config.state.dir, "tmp");
  await mkdir(base, { recursive: true, mode: 0o700 });
  const dir = await mkdtemp(join(base, "restore-"));
  return { dir, done: () => rm(dir, { recursive: true, force: true }) };
}

// ------------------------------------------------------------------------------ many at a time

/** Runs `fn` over `items`, at most `limit` at a time, in order of the items. */
export async function mapLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}

export type ExistingState = "absent" | "identical" | "differs" | "unknown";

/** Compares a file already at the output path with the clip (size, then sha256). */
export async function existingState(path: string, clip: ClipRecord): Promise<ExistingState> {
  let size: number;
  try {
    const st = await stat(path);
    if (!st.isFile()) return "differs";
    size = st.size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return "absent";
    throw err;
  }
  if (!clip.sha256) return "unknown";
  if (size !== clip.size) return "differs";
  const hash = createHash("sha256");
  await pipeline(createReadStream(path), hash);
  return hash.digest("hex") === clip.sha256 ? "identical" : "differs";
}

export interface RestoreItem {
  clip: ClipRecord;
  outFile: string;
}

export type ItemOutcome =
  | { status: "restored"; result: RestoreResult }
  | { status: "skipped"; why: "identical" | "unknown" }
  | { status: "failed"; error: string };

export interface RestoreManyHooks {
  onStart?(item: RestoreItem): void;
  onBytes?(item: RestoreItem, bytes: number): void;
  onDone?(item: RestoreItem, outcome: ItemOutcome): void;
}

export interface RestoreManySummary {
  restored: number;
  skipped: number;
  failed: number;
  bytes: number;
  outcomes: Array<{ id: string; path: string } & ItemOutcome>;
}

/**
 * Restores many clips, a few at a time; one failure never stops the others. A file already at
 * the output path is left alone when it is identical (or, for a legacy clip recorded without a
 * checksum, cannot be compared); a different file there is a failure unless `force`.
 */
export async function restoreMany(
  vault: Vault,
  items: readonly RestoreItem[],
  opts: { jobs: number; force?: boolean; signal?: AbortSignal; hooks?: RestoreManyHooks },
): Promise<RestoreManySummary> {
  const outcomes: RestoreManySummary["outcomes"] = new Array(items.length);
  const hooks = opts.hooks ?? {};
  await mapLimit(items, opts.jobs, async (item, i) => {
    let outcome: ItemOutcome;
    if (opts.signal?.aborted) {
      outcome = { status: "failed", error: `${item.clip.id}: interrupted` };
    } else {
      hooks.onStart?.(item);
      outcome = await restoreOne(vault, item, opts, hooks);
    }
    outcomes[i] = { id: item.clip.id, path: item.outFile, ...outcome };
    hooks.onDone?.(item, outcome);
  });
  const count = (s: ItemOutcome["status"]) => outcomes.filter((o) => o.status === s).length;
  return {
    restored: count("restored"),
    skipped: count("skipped"),
    failed: count("failed"),
    bytes: outcomes.reduce((n, o) => n + (o.status === "restored" ? o.result.size : 0), 0),
    outcomes,
  };
}

async function restoreOne(
  vault: Vault,
  item: RestoreItem,
  opts: { force?: boolean; signal?: AbortSignal },
  hooks: RestoreManyHooks,
): Promise<ItemOutcome> {
  try {
    const existing = await existingState(item.outFile, item.clip);
    if (existing === "identical" || (existing === "unknown" && !opts.force)) {
      return { status: "skipped", why: existing };
    }
    if (existing === "differs" && !opts.force) {
      return {
        status: "failed",
        error: `${item.clip.id}: ${item.outFile} already exists and differs from the backup (--force replaces it)`,
      };
    }
    const result = await restoreClip(vault, item.clip, item.outFile, {
      signal: opts.signal,
      onBytes: (n) => hooks.onBytes?.(item, n),
    });
    return { status: "restored", result };
  } catch (err) {
    const message = errorMessage(err);
    const named = err instanceof ClipRestoreError ? message : `${item.clip.id}: ${message}`;
    return {
      status: "failed",
      error: opts.signal?.aborted ? `${item.clip.id}: interrupted` : named,
    };
  }
}
