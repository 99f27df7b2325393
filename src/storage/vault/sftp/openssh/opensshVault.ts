/**
 * The SFTP vault over OpenSSH's own client (`destination.transport: openssh`): the same
 * guarantees as the ssh2 transport (../sftpVault.ts), with the SSH work done by `ssh` in C.
 *
 * - Host keys: pinned or trusted on first use, the same record as ssh2's (./hostKeys.ts).
 * - One `ssh` child and SFTP session, opened lazily and again after it was lost.
 * - Uploads: a 0600 `.part-<random>` file, pipelined WRITEs, size-checked on close, renamed into
 *   place with posix-rename@openssh.com. A failed upload's `.part` is removed; if the server does
 *   not answer that within a few seconds (an upload given up on by the watchdog because the
 *   link stalled), the ssh child is killed and the next sync sweeps the `.part`.
 * - Reads: pipelined READs (../readAhead.ts).
 */
import { randomBytes } from "node:crypto";
import { posix } from "node:path";
import { pipeline } from "node:stream/promises";
import { errorMessage, type Logger, silentLogger } from "../../../../util/log.js";
import {
  checkRange,
  type Entry,
  type PutResult,
  partName,
  type RangeReader,
  type VaultStore,
} from "../../../types.js";
import { HostKeyMismatchError } from "../hostKeys.js";
import { createReadAhead } from "../readAhead.js";
import { createPipelinedWriter, type SftpWire } from "../upload.js";
import { type Attrs, kindOf, SftpStatusError, STATUS } from "./packets.js";
import type { SftpSession } from "./session.js";
import { connectOpenssh, type SshLink, type SshParams } from "./ssh.js";

export interface OpensshVaultOptions extends Omit<SshParams, "warn"> {
  /** Absolute directory on the server (destination.path). */
  root: string;
  logger?: Logger;
}

/** Bytes of WRITEs awaiting replies: ssh buffers them, not us (measured: 4 MiB fills the link). */
const WRITE_WINDOW = 4 * 1024 * 1024;
/** READs in flight: 16 x 255 KiB against OpenSSH. */
const READS_IN_FLIGHT = 16;
/** How long a failed upload's clean-up may wait for the server before the link is dropped. */
const CLEANUP_GRACE_MS = 5_000;

function isNotFound(err: unknown): boolean {
  return err instanceof SftpStatusError && err.code === STATUS.NO_SUCH_FILE;
}

/** The session's WRITE, CLOSE and OPEN in the callback form the pipelined writer takes. */
function wireOf(session: SftpSession): SftpWire {
  return {
    open: (path, _flags, attrs, cb) =>
      session.openWrite(path, attrs.mode).then(
        (h) => cb(null, h),
        (e: Error) => cb(e, Buffer.alloc(0)),
      ),
    close: (handle, cb) => session.close(handle).then(() => cb(), cb),
    write: (handle, data, offset, length, position, cb) =>
      session.write(handle, position, data.subarray(offset, offset + length)).then(() => cb(), cb),
    writeParts: (handle, parts, position, cb) =>
      session.write(handle, position, parts).then(() => cb(), cb),
  };
}

export function createOpensshVault(opts: OpensshVaultOptions): VaultStore & RangeReader {
  const logger = opts.logger ?? silentLogger;
  const server = `${opts.host}:${opts.port}`;
  const root = opts.root === "/" ? "" : opts.root.replace(/\/+$/, "");
  const description = `sftp://${opts.username}@${server}${root || "/"}`;
  const abs = (path: string): string => {
    const rel = path.replace(/^\/+/, "").replace(/\/+$/, "");
    if (rel === "" || rel === ".") return root || "/";
    return `${root}/${rel}`;
  };
  const fail = (op: string, serverPath: string, err: unknown): Error => {
    if (err instanceof HostKeyMismatchError) return err;
    const e = new Error(`${description}: ${op} ${serverPath} failed: ${errorMessage(err)}`);
    if (isNotFound(err)) (e as NodeJS.ErrnoException).code = "ENOENT";
    return e;
  };

  let live: SshLink | undefined;
  let opening: Promise<SshLink> | undefined;
  // Bumped by close(): an upload failing after its store was closed does not reconnect.
  let generation = 0;

  function link(): Promise<SshLink> {
    if (live && !live.session.dead) return Promise.resolve(live);
    if (!opening) {
      const p = connectOpenssh({ ...opts, warn: (f, m) => logger.warn(f, m) });
      opening = p;
      p.then(
        (l) => {
          live = l;
          opening = undefined;
          logger.debug({ server }, "sftp connected (openssh)");
        },
        () => {
          opening = undefined;
        },
      );
    }
    return opening;
  }

  const session = async (): Promise<SftpSession> => (await link()).session;

  async function statOrNone(s: SftpSession, path: string): Promise<Attrs | undefined> {
    try {
      return await s.stat(path);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** mkdir -p that tolerates other writers creating the same directories at the same time. */
  async function mkdirpRaced(s: SftpSession, dir: string): Promise<void> {
    const missing: string[] = [];
    for (let cur = dir; cur !== "/" && cur !== "." && cur !== ""; cur = posix.dirname(cur)) {
      const st = await statOrNone(s, cur);
      if (st && kindOf(st) === "dir") break;
      if (st) throw new Error(`${cur} exists and is not a directory`);
      missing.unshift(cur);
    }
    for (const d of missing) {
      try {
        await s.mkdir(d);
      } catch (err) {
        // OpenSSH answers a plain FAILURE when it already exists (another writer made it).
        const st = await statOrNone(s, d);
        if (!st || kindOf(st) !== "dir") throw err;
      }
    }
  }

  const mkdirs = new Map<string, Promise<void>>();
  function mkdirp(s: SftpSession, dir: string): Promise<void> {
    let p = mkdirs.get(dir);
    if (!p) {
      p = mkdirpRaced(s, dir).finally(() => mkdirs.delete(dir));
      mkdirs.set(dir, p);
    }
    return p;
  }

  /** Atomic replace: posix-rename@openssh.com, else remove + rename (not atomic; old servers). */
  async function renameReplacing(s: SftpSession, from: string, to: string): Promise<void> {
    if (s.has("posix-rename@openssh.com")) return s.posixRename(from, to);
    if (await statOrNone(s, to)) await s.remove(to);
    await s.rename(from, to);
  }

  function toEntry(name: string, attrs: Attrs): Entry | undefined {
    const mtimeMs = (attrs.mtime ?? 0) * 1000;
    const kind = kindOf(attrs);
    if (kind === "dir") return { name, kind: "dir", size: 0, mtimeMs };
    if (kind === "file") return { name, kind: "file", size: attrs.size ?? 0, mtimeMs };
    return undefined;
  }

  /** Removes a failed upload's part file; drops the link when the server does not answer. */
  async function removePart(part: string): Promise<void> {
    const l = await link();
    let timer: NodeJS.Timeout | undefined;
    const stalled = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        l.kill("the server did not answer after an upload failed");
        reject(
          new Error(`no answer within ${CLEANUP_GRACE_MS / 1000} s; the next sync removes it`),
        );
      }, CLEANUP_GRACE_MS);
    });
    try {
      await Promise.race([
        l.session.remove(part).catch((err: unknown) => {
          if (!isNotFound(err)) throw err;
        }),
        stalled,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    description,

    async list(dir) {
      const remote = abs(dir);
      try {
        const s = await session();
        let items: Array<{ name: string; attrs: Attrs }>;
        try {
          items = await s.readdir(remote);
        } catch (err) {
          if (isNotFound(err)) return [];
          throw err;
        }
        const entries: Entry[] = [];
        for (const item of items) {
          let attrs = item.attrs;
          if (kindOf(attrs) === "link") {
            const target = await statOrNone(s, `${remote === "/" ? "" : remote}/${item.name}`);
            if (!target) continue;
            attrs = target;
          }
          const entry = toEntry(item.name, attrs);
          if (entry) entries.push(entry);
        }
        return entries;
      } catch (err) {
        throw fail("list", remote, err);
      }
    },

    async stat(path) {
      const remote = abs(path);
      try {
        const st = await statOrNone(await session(), remote);
        return st && toEntry(remote.slice(remote.lastIndexOf("/") + 1), st);
      } catch (err) {
        throw fail("stat", remote, err);
      }
    },

    async read(path) {
      const remote = abs(path);
      try {
        const s = await session();
        const st = await s.stat(remote);
        if (kindOf(st) !== "file") throw new Error("not a regular file");
        const handle = await s.openRead(remote);
        return createReadAhead((position, length) => s.read(handle, position, length), {
          chunkSize: s.limits.readLength,
          inFlight: READS_IN_FLIGHT,
          size: st.size,
          onClose: () => void s.close(handle).catch(() => {}),
          // A lost session fails the requests in flight, and so the stream: name the file.
          describeError: (err) => fail("read", remote, err),
        });
      } catch (err) {
        throw fail("read", remote, err);
      }
    },

    async readRange(path, offset, length) {
      checkRange(offset, length);
      const remote = abs(path);
      try {
        const s = await session();
        const handle = await s.openRead(remote);
        try {
          const parts: Buffer[] = [];
          for (let got = 0; got < length; ) {
            const data = await s.read(handle, offset + got, length - got);
            const size = data ? data.reduce((n, b) => n + b.length, 0) : 0;
            if (!data || size === 0) break;
            parts.push(...data);
            got += size;
          }
          // A copy: the pieces are views of larger reads.
          return Buffer.concat(parts);
        } finally {
          void s.close(handle).catch(() => {});
        }
      } catch (err) {
        throw fail("read", remote, err);
      }
    },

    async put(path, data, putOpts = {}): Promise<PutResult> {
      const remote = abs(path);
      const part = partName(remote, randomBytes(6).toString("hex"));
      const startedIn = generation;
      let opened = false;
      let sourceError: unknown;
      const onSourceError = (err: unknown) => {
        sourceError ??= err;
      };
      data.on("error", onSourceError);
      try {
        const s = await session();
        await mkdirp(s, posix.dirname(remote));
        const handle = await s.openWrite(part, 0o600);
        opened = true;
        const writer = createPipelinedWriter(wireOf(s), handle, {
          requestSize: s.limits.writeLength,
          maxInFlight: WRITE_WINDOW,
        });
        try {
          await pipeline(data, writer);
        } catch (err) {
          void s.close(handle).catch(() => {});
          throw err;
        }
        const counted = writer.bytesAccepted;
        // Once the handle is closed the server has the file's data.
        await s.close(handle);
        const st = await s.stat(part);
        if (st.size !== counted)
          throw new Error(`server has ${st.size} bytes, ${counted} were sent`);
        if (putOpts.expectedSize !== undefined && st.size !== putOpts.expectedSize) {
          throw new Error(`size mismatch: expected ${putOpts.expectedSize} bytes, got ${st.size}`);
        }
        await putOpts.beforeCommit?.();
        await renameReplacing(s, part, remote);
        return { size: st.size ?? counted };
      } catch (caught) {
        const err = sourceError ?? caught;
        if (!data.destroyed) data.destroy();
        if (opened && startedIn === generation) {
          await removePart(part).catch((cleanupErr: unknown) =>
            logger.warn(
              { server, path: part, err: errorMessage(cleanupErr) },
              "could not remove temporary upload",
            ),
          );
        }
        throw fail("write", remote, err);
      } finally {
        data.off("error", onSourceError);
      }
    },

    async remove(path) {
      const remote = abs(path);
      try {
        await (await session()).remove(remote);
      } catch (err) {
        if (isNotFound(err)) return;
        throw fail("remove", remote, err);
      }
    },

    async close() {
      generation++;
      const pending = opening;
      const current = live;
      live = undefined;
      opening = undefined;
      const grace = Math.min(opts.timeoutMs, 2_000);
      const ends: Array<Promise<unknown>> = [];
      if (current) ends.push(current.close(grace));
      if (pending) ends.push(pending.then((l) => l.close(grace)));
      await Promise.allSettled(ends);
    },
  };
}
