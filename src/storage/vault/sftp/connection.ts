import SftpClient from "ssh2-sftp-client";
import { errorMessage, type Logger } from "../../../util/log.js";
import {
  HostKeyMismatchError,
  hostKeyFingerprint,
  knownHostLabel,
  readKnownHosts,
  recordKnownHost,
} from "./hostKeys.js";

/** What it takes to open the vault's SSH connection. */
export interface ConnectParams {
  host: string;
  port: number;
  username: string;
  privateKey?: string | Buffer;
  passphrase?: string;
  password?: string;
  /** Normalized pinned fingerprint, if one is set. */
  pinned: string | undefined;
  knownHostsFile: string;
  timeoutMs: number;
  logger: Logger;
}

/** The parts of ssh2's Client we touch (ssh2-sftp-client's typings do not expose `.client`). */
export interface RawSshClient {
  setNoDelay(noDelay?: boolean): unknown;
  setMaxListeners(n: number): unknown;
  on(event: "close" | "end", listener: () => void): unknown;
  end(): unknown;
  /** ssh2's socket: its destroy() does nothing once end() was called, so we reach for this. */
  _sock?: { destroy(): unknown };
}

/**
 * One SSH connection and its SFTP channel. ssh2 does not fail SFTP requests issued after the
 * connection broke (they wait forever for a reply), so every operation races `lost`.
 */
export interface Live {
  sftp: SftpClient;
  raw: RawSshClient;
  dead: boolean;
  /** Why the connection is gone, once it is. */
  lostError?: Error;
  /** Called once when the connection is lost. */
  onLost: Set<(err: Error) => void>;
  /** Marks the connection gone (idempotent) and tells `onLost`. */
  kill(reason: string): void;
}

function errCode(err: unknown): unknown {
  return typeof err === "object" && err !== null ? (err as { code?: unknown }).code : undefined;
}

/** SFTP "no such file" (status 2) as ssh2 and ssh2-sftp-client report it. */
export function isNotFound(err: unknown): boolean {
  const code = errCode(err);
  return code === 2 || code === "ENOENT";
}

/** Calls `cb` when the connection is lost (at once if it is); returns the unsubscribe. */
export function whenLost(live: Live, cb: (err: Error) => void): () => void {
  if (live.dead) {
    const err = live.lostError ?? new Error("connection lost");
    queueMicrotask(() => cb(err));
    return () => {};
  }
  live.onLost.add(cb);
  return () => live.onLost.delete(cb);
}

/** `work`, unless the connection is lost first. */
export function raceLost<T>(live: Live, work: Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const off = whenLost(live, reject);
    work.then(
      (value) => {
        off();
        resolve(value);
      },
      (err: unknown) => {
        off();
        reject(err);
      },
    );
  });
}

/** Opens one SSH connection with its SFTP channel, checking the host key first. */
export async function openConnection(opts: ConnectParams): Promise<Live> {
  const { logger, pinned, timeoutMs } = opts;
  const server = `${opts.host}:${opts.port}`;
  const label = knownHostLabel(server);
  let lastError = "";
  const kill = (reason: string) => {
    if (state.dead) return;
    state.dead = true;
    const err = new Error(`connection lost (${lastError || reason})`);
    state.lostError = err;
    const listeners = [...state.onLost];
    state.onLost.clear();
    for (const cb of listeners) cb(err);
  };
  // Our own callbacks: the library's defaults print "Global ... listener" lines to stdout.
  const sftp = new SftpClient("motioneye-vault", {
    error: (err: unknown) => {
      lastError = errorMessage(err);
      logger.debug({ server, err: lastError }, "sftp connection error");
      kill(lastError);
    },
    end: () => kill("closed by the server"),
    close: () => kill("closed"),
  });
  // Reaching into the wrapped ssh2 Client: the typings do not declare this public field.
  const raw = (sftp as unknown as { client: RawSshClient }).client;
  const state: Live = { sftp, raw, dead: false, onLost: new Set(), kill };
  // Every concurrent ssh2-sftp-client call adds temporary listeners.
  raw.setMaxListeners(200);
  // ssh2-sftp-client's own handlers skip events it considers handled: listen directly too.
  raw.on("close", () => kill("closed"));
  raw.on("end", () => kill("closed by the server"));

  let refusal: Error | undefined;
  const hostVerifier = (key: Buffer): boolean => {
    const presented = hostKeyFingerprint(key);
    if (pinned) {
      if (presented === pinned) return true;
      refusal = new HostKeyMismatchError(server, pinned, presented, "pinned");
      return false;
    }
    try {
      const known = readKnownHosts(opts.knownHostsFile, label);
      if (known.length > 0) {
        if (known.includes(presented)) return true;
        refusal = new HostKeyMismatchError(
          server,
          known.join(" or "),
          presented,
          "known-hosts",
          opts.knownHostsFile,
        );
        return false;
      }
      recordKnownHost(opts.knownHostsFile, label, presented);
    } catch (err) {
      refusal = new Error(
        `cannot use the known hosts file ${opts.knownHostsFile}: ${errorMessage(err)}; refusing host key ${presented}`,
      );
      return false;
    }
    logger.warn(
      { server, fingerprint: presented, knownHostsFile: opts.knownHostsFile },
      `trusting new host key ${presented} for ${server} (first use); pin it with destination.hostKey`,
    );
    return true;
  };

  try {
    await sftp.connect({
      host: opts.host,
      port: opts.port,
      username: opts.username,
      privateKey: opts.privateKey,
      passphrase: opts.passphrase,
      password: opts.password,
      readyTimeout: timeoutMs,
      // A silently dead network (no RST) or a stalled server is noticed within timeoutMs:
      // four unanswered keepalives (any packet from the server resets the count).
      keepaliveInterval: Math.max(250, Math.round(timeoutMs / 4)),
      keepaliveCountMax: 3,
      hostVerifier,
    });
  } catch (err) {
    kill("connect failed");
    raw.end();
    // ssh2 only says "Host denied (verification failed)": say what happened instead.
    throw refusal ?? err;
  }
  // ssh2 leaves Nagle on and every SFTP request waits for its reply: ~80x slower without this.
  raw.setNoDelay(true);
  logger.debug({ server }, "sftp connected");
  return state;
}

/** The live connection, (re)connecting when there is none or it was lost. */
