/**
 * The camera side: a Store over FTP/FTPS (basic-ftp), e.g. motionEyeOS's proftpd or a vsftpd.
 *
 * - basic-ftp's Client runs one command at a time, so the store keeps a small pool of clients
 *   (lazy connect, reuse, a NOOP probe after idling, a fresh client for one whose connection
 *   broke). A `read()` stream holds its client until it ends or is destroyed, so a caller must
 *   not leave more than `maxConnections` read streams unconsumed while asking for more.
 * - Exact mtimes: MLSD when the server offers it (basic-ftp picks it from FEAT), otherwise LIST
 *   plus MDTM for recent files only (see EXACT_TIME_WINDOW_MS).
 * - Errors name `ftp://user@host:port/root` and the server path, never the password.
 */
import { randomBytes } from "node:crypto";
import { PassThrough, Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ConnectionOptions } from "node:tls";
import { Client, type FileInfo, FileType, FTPError } from "basic-ftp";
import { errorMessage, type Logger, silentLogger } from "../../util/log.js";
import { partName, type Store, type StoreEntry, type WriteResult } from "../types.js";

export interface FtpStoreOptions {
  host: string;
  port: number;
  user: string;
  password: string;
  /** Explicit FTPS (AUTH TLS). */
  secure: boolean;
  /** TLS options for FTPS, e.g. `{ rejectUnauthorized: false }` for a camera's self-signed certificate. */
  secureOptions?: ConnectionOptions;
  /** The media root on the server (e.g. "/sdcard"); every store path is relative to it. */
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
/** An idle connection older than this is probed with NOOP before reuse. */
const PROBE_IDLE_MS = 15_000;
// Per-stream buffering: 256 KiB keeps a transfer fast; more only adds RSS (README, Performance).
const STREAM_HWM = 256 * 1024;

const MONTHS: Record<string, number> = {
  jan: 0,
  feb: 1,
  mar: 2,
  apr: 3,
  may: 4,
  jun: 5,
  jul: 6,
  aug: 7,
  sep: 8,
  oct: 9,
  nov: 10,
  dec: 11,
};

/** A LIST time read as if it were UTC; `hasTime` is false for the "May 01 2023" (day only) form. */
interface RawListTime {
  ms: number;
  hasTime: boolean;
}

/** Parses basic-ftp's `rawModifiedAt` of a Unix-style LIST line, read as UTC. Exported for tests. */
export function parseListTime(raw: string, nowMs: number): RawListTime | undefined {
  const s = raw.trim().replace(/\s+/g, " ");
  let m = /^(\d{4})[-/](\d{1,2})[-/](\d{1,2}) (\d{1,2}):(\d{2})$/.exec(s);
  if (m) {
    return {
      ms: Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5])),
      hasTime: true,
    };
  }
  let month: number | undefined;
  let day: number;
  let rest: string;
  m = /^([A-Za-z]{3}) (\d{1,2}) (\S+)$/.exec(s);
  if (m) {
    month = MONTHS[(m[1] ?? "").toLowerCase()];
    day = Number(m[2]);
    rest = m[3] ?? "";
  } else {
    m = /^(\d{1,2}) ([A-Za-z]{3}) (\S+)$/.exec(s);
    if (!m) return undefined;
    month = MONTHS[(m[2] ?? "").toLowerCase()];
    day = Number(m[1]);
    rest = m[3] ?? "";
  }
  if (month === undefined) return undefined;
  const year = /^(\d{4})$/.exec(rest);
  if (year) return { ms: Date.UTC(Number(year[1]), month, day), hasTime: false };
  const time = /^(\d{1,2}):(\d{2})$/.exec(rest);
  if (!time) return undefined;
  // "MMM dd HH:mm" is how ls and vsftpd show the last six months (older or future times get the
  // year): take the latest year that does not put it in the future (two days' slack for
  // timezones and clock skew).
  let y = new Date(nowMs).getUTCFullYear();
  const at = (year: number) => Date.UTC(year, month, day, Number(time[1]), Number(time[2]));
  if (at(y) > nowMs + 2 * 86_400_000) y--;
  return { ms: at(y), hasTime: true };
}

function isFtpError(err: unknown, ...codes: number[]): err is FTPError {
  return err instanceof FTPError && (codes.length === 0 || codes.includes(err.code));
}

function token(): string {
  return randomBytes(6).toString("hex");
}

function baseName(p: string): string {
  const i = p.lastIndexOf("/");
  return i < 0 ? p : p.slice(i + 1);
}

function dirName(p: string): string {
  const i = p.lastIndexOf("/");
  return i <= 0 ? "/" : p.slice(0, i);
}

/** Pool of basic-ftp clients: each Client runs one command at a time. */
class FtpPool {
  private readonly idle: Array<{ client: Client; since: number }> = [];
  private readonly all = new Set<Client>();
  private readonly waiters: Array<(client: Client) => void> = [];
  private created = 0;

  constructor(
    private readonly max: number,
    private readonly timeoutMs: number,
    private readonly connect: (client: Client) => Promise<void>,
  ) {}

  /** A connected client, exclusively the caller's until `release`. */
  async acquire(): Promise<Client> {
    let client: Client;
    let idleSince: number | undefined;
    const idle = this.idle.pop();
    if (idle) {
      client = idle.client;
      idleSince = idle.since;
    } else if (this.created < this.max) {
      this.created++;
      client = this.newClient();
    } else {
      client = await new Promise<Client>((resolve) => this.waiters.push(resolve));
    }
    try {
      if (!client.closed && idleSince !== undefined && Date.now() - idleSince > PROBE_IDLE_MS) {
        // The server may have dropped an idle session (vsftpd idle_session_timeout): probe it.
        try {
          await client.send("NOOP");
        } catch {
          client.close();
        }
      }
      if (client.closed) await this.connect(client);
      return client;
    } catch (err) {
      this.release(client, true);
      throw err;
    }
  }

  /** Gives a client back; `discard` (or a closed client) closes it and frees its slot for a fresh one. */
  release(client: Client, discard = false): void {
    let next = client;
    if (discard || client.closed) {
      client.close();
      this.all.delete(client);
      next = this.newClient();
    }
    const waiter = this.waiters.shift();
    if (waiter) waiter(next);
    else this.idle.push({ client: next, since: Date.now() });
  }

  closeAll(): void {
    for (const client of this.all) client.close();
  }

  private newClient(): Client {
    const client = new Client(this.timeoutMs);
    this.all.add(client);
    return client;
  }
}

export function createFtpStore(opts: FtpStoreOptions): Store {
  const logger = opts.logger ?? silentLogger;
  const root = opts.root === "/" ? "" : opts.root.replace(/\/+$/, "");
  const where = `${opts.host}:${opts.port}`;
  const description = `${opts.secure ? "ftps" : "ftp"}://${opts.user}@${where}${root || "/"}`;

  /** Server path for a store path. Plain concatenation: `..` is never resolved here. */
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
  ): Promise<StoreEntry | undefined> {
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
  ): Promise<StoreEntry | undefined> {
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

  async function removeAbs(client: Client, path: string): Promise<void> {
    try {
      await client.remove(path);
    } catch (err) {
      if (isFtpError(err, 550) && (await statAbs(client, path)) === undefined) return;
      throw err;
    }
  }

  async function renameAbs(client: Client, from: string, to: string): Promise<void> {
    try {
      await client.rename(from, to);
    } catch (err) {
      // vsftpd and proftpd replace the target (rename(2)); some servers refuse instead.
      if (!isFtpError(err) || (await statAbs(client, to)) === undefined) throw err;
      await client.remove(to);
      await client.rename(from, to);
    }
  }

  const store: Store = {
    description,

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
          const entries: StoreEntry[] = [];
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

    async writeAtomic(path, data, writeOpts = {}): Promise<WriteResult> {
      const remote = abs(path);
      const part = partName(remote, token());
      let counted = 0;
      const counter = new Transform({
        highWaterMark: STREAM_HWM,
        transform(chunk: Buffer, _encoding, callback) {
          counted += chunk.length;
          callback(null, chunk);
        },
      });
      // A failing source destroys `counter`, which basic-ftp sees as an upload error; keep the
      // source's own error to report.
      let sourceError: unknown;
      const onSourceError = (err: unknown) => {
        sourceError ??= err;
      };
      data.on("error", onSourceError);
      const feeding = pipeline(data, counter).catch(() => {});
      let partCreated = false;
      try {
        return await withClient(async (client) => {
          await client.ensureDir(dirName(remote));
          if (counter.destroyed) throw new Error("the source stream failed");
          partCreated = true;
          await client.uploadFrom(counter, part);
          await feeding;
          const size = (await statAbs(client, part, false))?.size;
          if (size !== counted) {
            throw new Error(
              `server has ${size ?? "no"} bytes for the upload, ${counted} were sent`,
            );
          }
          if (writeOpts.expectedSize !== undefined && size !== writeOpts.expectedSize) {
            throw new Error(`size mismatch: expected ${writeOpts.expectedSize} bytes, got ${size}`);
          }
          await renameAbs(client, part, remote);
          partCreated = false;
          return { size };
        });
      } catch (caught) {
        const err = sourceError ?? caught;
        if (!data.destroyed) data.destroy();
        counter.destroy();
        if (partCreated) {
          await withClient((client) => removeAbs(client, part)).catch((cleanupErr: unknown) => {
            logger.warn(
              { server: where, path: part, err: errorMessage(cleanupErr) },
              "could not remove temporary upload",
            );
          });
        }
        throw fail("write", abs(path), err);
      } finally {
        data.off("error", onSourceError);
      }
    },

    async rename(from, to) {
      try {
        await withClient((client) => renameAbs(client, abs(from), abs(to)));
      } catch (err) {
        throw fail("rename", `${abs(from)} -> ${abs(to)}`, err);
      }
    },

    async remove(path) {
      try {
        await withClient((client) => removeAbs(client, abs(path)));
      } catch (err) {
        throw fail("remove", abs(path), err);
      }
    },

    async close() {
      pool.closeAll();
    },
  };
  return store;
}
