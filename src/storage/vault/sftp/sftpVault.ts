/**
 * The vault as a `VaultStore` over SFTP (ssh2-sftp-client on ssh2), e.g. an EC2 instance.
 *
 * - Host keys: a pinned `SHA256:` fingerprint must match; without one, trust on first use with
 *   a known hosts file. A different key fails with HostKeyMismatchError, never silently.
 * - One SSH connection, opened lazily and again after it was lost; ssh2 multiplexes
 *   concurrent SFTP requests on it. Operations race the connection's loss, because ssh2 leaves
 *   requests issued on a dead channel waiting forever.
 * - Speed (see DESIGN.md): TCP_NODELAY, 1 MiB stream buffers; files are created 0600.
 * - Uploads go to a `.part-<random>` name, are size-checked, then posix-renamed into place.
 */
import { randomBytes } from "node:crypto";
import { posix } from "node:path";
import { PassThrough, type Readable, Transform, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type SftpClient from "ssh2-sftp-client";
import { errorMessage, type Logger, silentLogger } from "../../../util/log.js";
import {
  checkRange,
  type Entry,
  type PutResult,
  partName,
  type RangeReader,
  type VaultStore,
} from "../../types.js";
import { isNotFound, type Live, openConnection, raceLost, whenLost } from "./connection.js";
import { HostKeyMismatchError, normalizeFingerprint } from "./hostKeys.js";
import { type SftpReadWire, sftpReadRange } from "./range.js";
import { openPipelinedRead } from "./ssh2Read.js";
import { closeHandle, createPipelinedWriter, openForWrite, type SftpWire } from "./upload.js";

export interface SftpVaultOptions {
  host: string;
  port: number;
  username: string;
  privateKey?: string | Buffer;
  passphrase?: string;
  password?: string;
  /** Pinned host key fingerprint as `ssh-keygen -lf` prints it: `SHA256:...`. */
  hostKey?: string;
  /** Trust-on-first-use store (`[host]:port SHA256:...` lines), used when `hostKey` is not set. */
  knownHostsFile: string;
  /** Absolute directory on the server (destination.path); every store path is relative to it. */
  root: string;
  /**
   * Connection (handshake + auth) timeout, and how long a connection may go without answering
   * keepalives before it counts as lost (a server or network that stalled); default 30 s.
   */
  timeoutMs?: number;
  logger?: Logger;
}

// Per-stream buffering: 256 KiB keeps a transfer fast; more only adds RSS (README, Performance).
const STREAM_HWM = 256 * 1024;

export function createSftpVault(opts: SftpVaultOptions): VaultStore & RangeReader {
  const logger = opts.logger ?? silentLogger;
  const server = `${opts.host}:${opts.port}`;
  const root = opts.root === "/" ? "" : opts.root.replace(/\/+$/, "");
  const description = `sftp://${opts.username}@${server}${root || "/"}`;
  let pinned: string | undefined;
  if (opts.hostKey !== undefined && opts.hostKey.trim() !== "") {
    pinned = normalizeFingerprint(opts.hostKey);
    if (!pinned) {
      throw new Error(
        `${description}: destination.hostKey must be a SHA256 fingerprint like "SHA256:..." (as ssh-keygen -lf prints it), got ${JSON.stringify(opts.hostKey)}`,
      );
    }
  }

  /** Server path for a store path. Plain concatenation: `..` is never resolved here. */
  const abs = (path: string): string => {
    const rel = path.replace(/^\/+/, "").replace(/\/+$/, "");
    if (rel === "" || rel === ".") return root || "/";
    return `${root}/${rel}`;
  };

  const secrets = [opts.password, opts.passphrase].filter(
    (s): s is string => typeof s === "string" && s.length >= 3,
  );
  const fail = (op: string, serverPath: string, err: unknown): Error => {
    if (err instanceof HostKeyMismatchError) return err;
    let msg = errorMessage(err);
    for (const s of secrets) msg = msg.split(s).join("***");
    const e = new Error(`${description}: ${op} ${serverPath} failed: ${msg}`);
    if (isNotFound(err)) (e as NodeJS.ErrnoException).code = "ENOENT";
    return e;
  };

  let live: Live | undefined;
  let opening: Promise<Live> | undefined;
  // Bumped by close(): an upload that fails after its store was closed does not reconnect to
  // clean up (that connection would keep a finished process alive); the next sync sweeps it.
  let generation = 0;
  const timeoutMs = opts.timeoutMs ?? 30_000;

  function connection(): Promise<Live> {
    if (live && !live.dead) return Promise.resolve(live);
    if (!opening) {
      const p = openConnection({
        host: opts.host,
        port: opts.port,
        username: opts.username,
        privateKey: opts.privateKey,
        passphrase: opts.passphrase,
        password: opts.password,
        pinned,
        knownHostsFile: opts.knownHostsFile,
        timeoutMs,
        logger,
      });
      opening = p;
      p.then(
        (l) => {
          live = l;
          opening = undefined;
        },
        () => {
          opening = undefined;
        },
      );
    }
    return opening;
  }

  /** Runs `fn` on the live connection; fails at once if the connection is lost meanwhile. */
  async function withSftp<T>(fn: (sftp: SftpClient, live: Live) => Promise<T>): Promise<T> {
    const l = await connection();
    return raceLost(l, fn(l.sftp, l));
  }

  async function statRaw(
    sftp: SftpClient,
    path: string,
  ): Promise<SftpClient.FileStats | undefined> {
    try {
      return await sftp.stat(path);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** mkdir -p that tolerates other writers creating the same directories at the same time. */
  async function mkdirpRaced(sftp: SftpClient, dir: string): Promise<void> {
    const missing: string[] = [];
    for (let cur = dir; cur !== "/" && cur !== "." && cur !== ""; cur = posix.dirname(cur)) {
      const st = await statRaw(sftp, cur);
      if (st?.isDirectory) break;
      if (st) throw new Error(`${cur} exists and is not a directory`);
      missing.unshift(cur);
    }
    for (const d of missing) {
      try {
        await sftp.mkdir(d, false);
      } catch (err) {
        // OpenSSH answers a plain FAILURE when it already exists (another writer made it).
        if (!(await statRaw(sftp, d))?.isDirectory) throw err;
      }
    }
  }

  // Concurrent uploads into one new folder share a single mkdir -p.
  const mkdirs = new Map<string, Promise<void>>();
  function mkdirp(sftp: SftpClient, dir: string): Promise<void> {
    let p = mkdirs.get(dir);
    if (!p) {
      p = mkdirpRaced(sftp, dir).finally(() => mkdirs.delete(dir));
      mkdirs.set(dir, p);
    }
    return p;
  }

  /** Atomic replace with posix-rename@openssh.com; plain SFTP rename refuses an existing target. */
  async function renameReplacing(sftp: SftpClient, from: string, to: string): Promise<void> {
    try {
      await sftp.posixRename(from, to);
      return;
    } catch (err) {
      if (!/does not support/i.test(errorMessage(err))) throw err;
    }
    if (await statRaw(sftp, to)) await sftp.delete(to, true);
    await sftp.rename(from, to);
  }

  function toEntry(name: string, st: SftpClient.FileStats): Entry | undefined {
    if (st.isDirectory) return { name, kind: "dir", size: 0, mtimeMs: st.modifyTime };
    if (st.isFile) return { name, kind: "file", size: st.size, mtimeMs: st.modifyTime };
    return undefined;
  }

  const store: VaultStore & RangeReader = {
    description,

    async list(dir) {
      const remote = abs(dir);
      try {
        return await withSftp(async (sftp) => {
          let items: SftpClient.FileInfo[];
          try {
            items = await sftp.list(remote);
          } catch (err) {
            if (isNotFound(err)) return [];
            throw err;
          }
          const entries: Entry[] = [];
          for (const item of items) {
            if (item.name === "." || item.name === "..") continue;
            if (item.type === "d") {
              entries.push({ name: item.name, kind: "dir", size: 0, mtimeMs: item.modifyTime });
            } else if (item.type === "-") {
              entries.push({
                name: item.name,
                kind: "file",
                size: item.size,
                mtimeMs: item.modifyTime,
              });
            } else if (item.type === "l") {
              const st = await statRaw(sftp, `${remote === "/" ? "" : remote}/${item.name}`);
              const entry = st && toEntry(item.name, st);
              if (entry) entries.push(entry);
            }
          }
          return entries;
        });
      } catch (err) {
        throw fail("list", remote, err);
      }
    },

    async stat(path) {
      const remote = abs(path);
      try {
        const st = await withSftp((sftp) => statRaw(sftp, remote));
        return st && toEntry(remote.slice(remote.lastIndexOf("/") + 1), st);
      } catch (err) {
        throw fail("stat", remote, err);
      }
    },

    async read(path) {
      const remote = abs(path);
      let source: Readable;
      let l: Live;
      try {
        l = await connection();
        // Fail here, not later in the stream, when the file is not there.
        const st = await raceLost(l, l.sftp.stat(remote));
        if (!st.isFile) throw new Error("not a regular file");
        // Several READs in flight, not ssh2's one-at-a-time read stream (ssh2Read.ts).
        const wire = (l.sftp as unknown as { sftp: SftpReadWire }).sftp;
        source = await raceLost(l, openPipelinedRead(wire, remote, st.size));
      } catch (err) {
        throw fail("read", remote, err);
      }
      const out = new PassThrough({ highWaterMark: STREAM_HWM });
      source.on("error", (err: unknown) => out.destroy(fail("read", remote, err)));
      const off = whenLost(l, (err) => {
        if (!out.destroyed) out.destroy(fail("read", remote, err));
      });
      out.on("close", () => {
        off();
        if (!source.destroyed) source.destroy();
      });
      source.on("end", off);
      source.pipe(out);
      return out;
    },

    async readRange(path, offset, length) {
      checkRange(offset, length);
      const remote = abs(path);
      if (length === 0) return Buffer.alloc(0);
      try {
        return await withSftp((sftp) => {
          const wire = (sftp as unknown as { sftp: SftpReadWire }).sftp;
          return sftpReadRange(wire, remote, offset, length);
        });
      } catch (err) {
        throw fail("read", remote, err);
      }
    },

    async put(path, data, putOpts = {}): Promise<PutResult> {
      const remote = abs(path);
      const part = partName(remote, randomBytes(6).toString("hex"));
      const startedIn = generation;
      let connected = false;
      let target: Writable | undefined;
      let counted = 0;
      // The source may fail while we are still connecting (an fs stream that cannot open its
      // file): keep that error rather than let it go unhandled.
      let sourceError: unknown;
      const onSourceError = (err: unknown) => {
        sourceError ??= err;
      };
      data.on("error", onSourceError);
      try {
        return await withSftp(async (sftp) => {
          connected = true;
          await mkdirp(sftp, posix.dirname(remote));
          // Several WRITE requests in flight, not ssh2's one-at-a-time WriteStream (sftpUpload.ts).
          const wire = (sftp as unknown as { sftp: SftpWire }).sftp;
          const handle = await openForWrite(wire, part, 0o600);
          const ws = createPipelinedWriter(wire, handle);
          target = ws;
          const counter = new Transform({
            highWaterMark: STREAM_HWM,
            transform(chunk: Buffer, _encoding, callback) {
              counted += chunk.length;
              callback(null, chunk);
            },
          });
          try {
            await pipeline(data, counter, ws);
          } catch (err) {
            // Best effort (the connection may be gone); the part file is removed below.
            try {
              wire.close(handle, () => {});
            } catch {}
            throw err;
          }
          // Once the handle is closed the server has the file's data.
          await closeHandle(wire, handle);
          const st = await sftp.stat(part);
          if (st.size !== counted) {
            throw new Error(`server has ${st.size} bytes, ${counted} were sent`);
          }
          if (putOpts.expectedSize !== undefined && st.size !== putOpts.expectedSize) {
            throw new Error(
              `size mismatch: expected ${putOpts.expectedSize} bytes, got ${st.size}`,
            );
          }
          await putOpts.beforeCommit?.();
          await renameReplacing(sftp, part, remote);
          return { size: st.size };
        });
      } catch (caught) {
        const err = sourceError ?? caught;
        if (!data.destroyed) data.destroy();
        (target as Writable | undefined)?.destroy();
        if (connected && startedIn === generation) {
          try {
            // Reconnects if the failure was the connection itself.
            await withSftp((sftp) => sftp.delete(part, true));
          } catch (cleanupErr) {
            logger.warn(
              { server, path: part, err: errorMessage(cleanupErr) },
              "could not remove temporary upload",
            );
          }
        }
        throw fail("write", remote, err);
      } finally {
        data.off("error", onSourceError);
      }
    },

    async remove(path) {
      const remote = abs(path);
      try {
        await withSftp((sftp) => sftp.delete(remote, true));
      } catch (err) {
        throw fail("remove", remote, err);
      }
    },

    async close() {
      generation++;
      const pending = opening;
      const current = live;
      live = undefined;
      opening = undefined;
      const end = async (l: Live) => {
        if (l.dead) return;
        l.kill("store closed");
        // A polite goodbye, but a stalled server never answers it: then drop the socket.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          l.sftp.end().catch(() => {}),
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, Math.min(timeoutMs, 2_000));
          }),
        ]);
        clearTimeout(timer);
        l.raw._sock?.destroy();
      };
      const ends: Array<Promise<unknown>> = [];
      if (current) ends.push(end(current));
      if (pending) ends.push(pending.then(end));
      await Promise.allSettled(ends);
    },
  };
  return store;
}
