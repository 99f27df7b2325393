/**
 * A camera as a `Source` over FTP/FTPS (basic-ftp), e.g. motionEyeOS's proftpd or a vsftpd.
 * Read-only: the vault never writes to a camera.
 *
 * - basic-ftp's Client runs one command at a time, so the store keeps a small pool of clients
 *   (lazy connect, reuse, a NOOP probe after idling, a fresh client for one whose connection
 *   broke). A `read()` stream holds its client until it ends or is destroyed, so a caller must
 *   not leave more than `maxConnections` read streams unconsumed while asking for more.
 * - Exact mtimes: MLSD when the server offers it (basic-ftp picks it from FEAT), otherwise LIST
 *   plus MDTM for recent files only (see EXACT_TIME_WINDOW_MS).
 * - Errors name `ftp://user@host:port/root` and the server path, never the password.
 */
import { PassThrough, Writable } from "node:stream";
import type { ConnectionOptions } from "node:tls";
import { type Client, type FileInfo, FileType, FTPError } from "basic-ftp";
import { errorMessage, type Logger, silentLogger } from "../../../util/log.js";
import { checkRange, type Entry, type Source } from "../../types.js";
import { parseListTime } from "./listTime.js";
import { FtpPool, isFtpError } from "./pool.js";
import { ftpReadRange } from "./range.js";

export interface FtpSourceOptions {
  host: string;
  port: number;
  user: string;
  password: string;
  /** Explicit FTPS (AUTH TLS). */
  secure: boolean;
  /** TLS options for FTPS, e.g. `{ rejectUnauthorized: false }` for a camera's self-signed certificate. */
  secureOptions?: ConnectionOptions;
  /** The media root on the server (e.g. "/sdcard"); every source path is relative to it. */
  root: string;
  /** Control/data inactivity timeout; default 30 s. */
  timeoutMs?: number;
  /** Connections kept to the server; default 2 (cameras allow few sessions). */
  maxConnections?: number;
  logger?: Logger;
}

/**
 * How recent a file's LIST time must be for us to ask MDTM for its exact time.
 *
 * Servers without MLSD (vsftpd, busybox) give LIST times to the minute at best ("May 01 12:00"),
 * and only to the day for files older than six months. Sync decides whether a clip has settled
 * from its mtime, which needs seconds only for files written in the last moments; older files
 * are settled whatever their exact second. One MDTM per file costs a round trip, and a camera
 * folder can hold thousands of clips, so only files whose LIST time is within this window (or
 * unparseable) get an MDTM; everything else keeps the LIST time.
 */
const EXACT_TIME_WINDOW_MS = 2 * 60 * 60 * 1000;
/** LIST times may be the server's local time: no timezone is further than this from UTC. */
const MAX_TZ_SKEW_MS = 16 * 60 * 60 * 1000;
/** How long a measured LIST-vs-MDTM timezone offset is trusted (DST changes it). */
const TZ_OFFSET_TTL_MS = 60 * 60 * 1000;
// Per-stream buffering: 256 KiB keeps a transfer fast; more only adds RSS (README, Performance).
const STREAM_HWM = 256 * 1024;

function baseName(p: string): string {
  const i = p.lastIndexOf("/");
  return i < 0 ? p : p.slice(i + 1);
}

function dirName(p: string): string {
  const i = p.lastIndexOf("/");
  return i <= 0 ? "/" : p.slice(0, i);
}

export function createFtpSource(opts: FtpSourceOptions): Source {
  const logger = opts.logger ?? silentLogger;
  const root = opts.root === "/" ? "" : opts.root.replace(/\/+$/, "");
  const where = `${opts.host}:${opts.port}`;
  const description = `${opts.secure ? "ftps" : "ftp"}://${opts.user}@${where}${root || "/"}`;

  /** Server path for a source path. Plain concatenation: `..` is never resolved here. */
  const abs = (path: string): string => {
    const rel = path.replace(/^\/+/, "").replace(/\/+$/, "");
    if (rel === "" || rel === ".") return root || "/";
    return `${root}/${rel}`;
  };

  /** An Error naming the server and path, with the password scrubbed from anything the server said. */
  const fail = (op: string, serverPath: string, err: unknown): Error => {
    let msg = errorMessage(err);
    if (opts.password.length >= 3) msg = msg.split(opts.password).join("***");
    const code = err instanceof FTPError ? ` (FTP ${err.code})` : "";
    const e = new Error(`${description}: ${op} ${serverPath} failed${code}: ${msg}`);
    if (isFtpError(err, 550)) (e as NodeJS.ErrnoException).code = "ENOENT";
    return e;
  };

  const pool = new FtpPool(
    Math.max(1, opts.maxConnections ?? 2),
    opts.timeoutMs ?? 30_000,
    async (client) => {
      try {
        await client.access({
          host: opts.host,
          port: opts.port,
          user: opts.user,
          password: opts.password,
          secure: opts.secure,
          secureOptions: opts.secureOptions,
        });
        logger.debug({ server: where }, "ftp connected");
      } catch (err) {
        client.close();
        const code = err instanceof FTPError ? ` (FTP ${err.code})` : "";
        throw new Error(`connect/login as ${opts.user}${code}: ${errorMessage(err)}`);
      }
    },
  );

  /** Runs `fn` on a pooled client; a client whose connection broke is replaced. */
  async function withClient<T>(fn: (client: Client) => Promise<T>): Promise<T> {
    const client = await pool.acquire();
    try {
      return await fn(client);
    } finally {
      // An FTP error reply leaves the session usable; anything else (timeout, reset) closes it,
      // and the pool replaces a closed client.
      pool.release(client);
    }
  }

  // Timezone of LIST times relative to UTC, measured against MDTM (which is always UTC).
  let tzOffset: { ms: number; at: number } | undefined;
  let mdtmSupported = true;
  let sizeSupported = true;

  async function mdtm(client: Client, path: string): Promise<number | undefined> {
    if (!mdtmSupported) return undefined;
    try {
      return (await client.lastMod(path)).getTime();
    } catch (err) {
      if (isFtpError(err, 500, 502, 504)) {
        mdtmSupported = false;
        logger.warn(
          { server: where },
          "ftp server does not support MDTM: file times are LIST times",
        );
        return undefined;
      }
      if (isFtpError(err)) return undefined; // e.g. the file vanished since LIST
      throw err;
    }
  }

  async function entryFromInfo(
    client: Client,
    dirAbs: string,
    info: FileInfo,
    now: number,
  ): Promise<Entry | undefined> {
    if (info.name === "." || info.name === "..") return undefined;
    const path = `${dirAbs === "/" ? "" : dirAbs}/${info.name}`;
    let kind: "file" | "dir";
    let size = info.size;
    if (info.type === FileType.File) kind = "file";
    else if (info.type === FileType.Directory) kind = "dir";
    else if (info.type === FileType.SymbolicLink) {
      const target = await statAbs(client, path);
      if (!target) return undefined;
      kind = target.kind;
      size = target.size;
    } else return undefined;

    // MLSD (proftpd, pure-ftpd): exact times already.
    if (info.modifiedAt) return { name: info.name, kind, size, mtimeMs: info.modifiedAt.getTime() };

    const raw = parseListTime(info.rawModifiedAt ?? "", now);
    if (kind === "dir") {
      return { name: info.name, kind, size: 0, mtimeMs: raw ? raw.ms - (tzOffset?.ms ?? 0) : 0 };
    }
    // A file that cannot be recent whatever the server's timezone: the LIST time will do.
    if (raw && (!raw.hasTime || Math.abs(raw.ms - now) > MAX_TZ_SKEW_MS)) {
      return { name: info.name, kind, size, mtimeMs: raw.ms - (tzOffset?.ms ?? 0) };
    }
    let exact: number | undefined;
    if (raw && (!tzOffset || now - tzOffset.at > TZ_OFFSET_TTL_MS)) {
      // Learn the server's LIST timezone from this file (LIST is truncated to the minute).
      exact = await mdtm(client, path);
      if (exact !== undefined) {
        const quarter = 15 * 60 * 1000;
        tzOffset = { ms: Math.round((raw.ms + 30_000 - exact) / quarter) * quarter, at: now };
        if (tzOffset.ms !== 0) {
          logger.debug({ server: where, offsetMinutes: tzOffset.ms / 60000 }, "ftp LIST timezone");
        }
      }
    }
    const listMs = raw ? raw.ms - (tzOffset?.ms ?? 0) : undefined;
    if (listMs !== undefined && listMs < now - EXACT_TIME_WINDOW_MS - 60_000) {
      return { name: info.name, kind, size, mtimeMs: listMs };
    }
    if (exact === undefined) exact = await mdtm(client, path);
    return { name: info.name, kind, size, mtimeMs: exact ?? listMs ?? 0 };
  }

  /** SIZE/MDTM for files, CWD for directories (works on every server, unlike MLST). */
  async function statAbs(
    client: Client,
    path: string,
    withTime = true,
  ): Promise<Entry | undefined> {
    const name = baseName(path);
    if (sizeSupported) {
      try {
        const size = await client.size(path);
        const mtimeMs = withTime ? ((await mdtm(client, path)) ?? 0) : 0;
        return { name, kind: "file", size, mtimeMs };
      } catch (err) {
        if (!isFtpError(err)) throw err;
        if (isFtpError(err, 500, 502, 504)) sizeSupported = false;
      }
    }
    if (!sizeSupported) {
      // No SIZE: find the entry in its parent's listing.
      let infos: FileInfo[];
      try {
        infos = await client.list(dirName(path));
      } catch (err) {
        if (isFtpError(err, 450, 550)) return undefined;
        throw err;
      }
      const info = infos.find((i) => i.name === name);
      return info && (await entryFromInfo(client, dirName(path), info, Date.now()));
    }
    try {
      // Directories have no SIZE; the mtime of a directory is not needed anywhere.
      await client.cd(path);
      return { name, kind: "dir", size: 0, mtimeMs: 0 };
    } catch (err) {
      if (!isFtpError(err)) throw err;
      return undefined;
    }
  }

  const source: Source = {
    description,
    server: `${opts.secure ? "ftps" : "ftp"}://${where}`,

    async list(dir) {
      try {
        return await withClient(async (client) => {
          const dirAbs = abs(dir);
          let infos: FileInfo[];
          try {
            infos = await client.list(dirAbs);
          } catch (err) {
            // vsftpd lists an absent directory as empty; others answer 450/550.
            if (isFtpError(err, 450, 550)) return [];
            throw err;
          }
          const now = Date.now();
          const entries: Entry[] = [];
          for (const info of infos) {
            const entry = await entryFromInfo(client, dirAbs, info, now);
            if (entry) entries.push(entry);
          }
          return entries;
        });
      } catch (err) {
        throw fail("list", abs(dir), err);
      }
    },

    async stat(path) {
      try {
        return await withClient((client) => statAbs(client, abs(path)));
      } catch (err) {
        throw fail("stat", abs(path), err);
      }
    },

    async read(path) {
      const remote = abs(path);
      let client: Client;
      try {
        client = await pool.acquire();
      } catch (err) {
        throw fail("read", abs(path), err);
      }
      try {
        // Fail here, not later in the stream, when the file is not there.
        const found = await statAbs(client, remote, false);
        if (!found) throw new FTPError({ code: 550, message: "550 No such file." });
        if (found.kind !== "file") throw new Error("not a regular file");
      } catch (err) {
        pool.release(client, client.closed);
        throw fail("read", abs(path), err);
      }

      const out = new PassThrough({ highWaterMark: STREAM_HWM });
      let finished = false;
      // basic-ftp ends its destination even when the transfer fails, which would look like a
      // complete (but truncated) file to our reader: give it a sink that only forwards data, and
      // end `out` ourselves once the server confirmed the transfer.
      const sink = new Writable({
        highWaterMark: STREAM_HWM,
        write(chunk: Buffer, _encoding, callback) {
          if (out.destroyed) {
            callback(new Error("read stream destroyed by the consumer"));
          } else if (out.write(chunk)) {
            callback();
          } else {
            const onDrain = () => {
              out.off("close", onClose);
              callback();
            };
            const onClose = () => {
              out.off("drain", onDrain);
              callback(new Error("read stream destroyed by the consumer"));
            };
            out.once("drain", onDrain);
            out.once("close", onClose);
          }
        },
      });
      out.once("close", () => {
        if (!finished) {
          // The consumer gave up mid-way: closing the session aborts the transfer; the pool
          // replaces this client with a fresh connection.
          client.close();
        }
      });
      client.downloadTo(sink, remote).then(
        () => {
          finished = true;
          pool.release(client);
          out.end();
        },
        (err: unknown) => {
          finished = true;
          pool.release(client, true);
          if (!out.destroyed) out.destroy(fail("read", abs(path), err));
        },
      );
      return out;
    },

    async readRange(path, offset, length) {
      checkRange(offset, length);
      if (length === 0) return Buffer.alloc(0);
      try {
        const { data, received } = await withClient((client) =>
          ftpReadRange(client, abs(path), offset, length),
        );
        // The server sends ahead of what we asked for: what a check really costs on the wire.
        logger.debug(
          { server: where, path: abs(path), offset, length, received },
          "ftp range read",
        );
        return data;
      } catch (err) {
        throw fail("read", abs(path), err);
      }
    },

    async close() {
      pool.closeAll();
    },
  };
  return source;
}
