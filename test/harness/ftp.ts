/**
 * A real FTP server for tests: Debian vsftpd in the foreground on 127.0.0.1, its own config,
 * port, passive port range, log and a temporary tree laid out like motionEyeOS (the FTP user
 * is chrooted to `base`; the media root `base/sdcard` is `/sdcard` over FTP).
 *
 * vsftpd only serves real system accounts, so this needs root: it creates (idempotently) the
 * user `mevault-ftp` with a known password and its own PAM service
 * `/etc/pam.d/mevault-vsftpd` (pam_unix for the password, nothing else: Debian's
 * /etc/pam.d/vsftpd also demands a shell from /etc/shells and consults /etc/ftpusers).
 *
 * Note: only the control connection has a fixed port; data connections use the passive
 * ports (`pasvPorts`) directly, so a TCP fault proxy in front of `port` sees only the control
 * channel.
 */
import { createCipheriv, createHash } from "node:crypto";
import { once } from "node:events";
import { createWriteStream } from "node:fs";
import {
  chmod,
  chown,
  mkdir,
  mkdtemp,
  readFile,
  rename,
  rm,
  stat,
  utimes,
  writeFile,
} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { isMovieName, MIN_MOVIE_SIZE, movieChunks } from "./mp4.js";
import { freePort, freePortRange } from "./ports.js";
import { removeOnExit, restartableServer, runCommand, spawnServer } from "./processes.js";

export const FTP_DEFAULT_USER = "mevault-ftp";
export const FTP_DEFAULT_PASSWORD = "mevault-ftp-secret";
const PAM_SERVICE = "mevault-vsftpd";
const PAM_FILE = `/etc/pam.d/${PAM_SERVICE}`;
const PAM_CONTENT = `# motioneye-vault test harness (test/harness/ftp.ts): vsftpd logins checked against
# /etc/shadow only, without Debian's /etc/ftpusers and /etc/shells checks, and without
# the ~2 s delay after a wrong password.
auth     required pam_unix.so nodelay
account  required pam_permit.so
session  required pam_permit.so
`;
const VSFTPD = "/usr/sbin/vsftpd";
const PASV_PORT_COUNT = 20;

export interface WrittenClip {
  /** Path relative to the media root (the clip id for a per-camera layout). */
  relPath: string;
  /** Absolute local path under `localRoot`. */
  localPath: string;
  /** Path as the FTP client sees it (`/sdcard/<relPath>`). */
  ftpPath: string;
  size: number;
  mtime: Date;
  sha256: string;
}

export interface FtpServer {
  host: "127.0.0.1";
  port: number;
  user: string;
  password: string;
  /** The media root over FTP: always "/sdcard". */
  path: string;
  /** Local directory served as `/sdcard`: tests put clips here (or use `writeClip`). */
  localRoot: string;
  /** The chroot (FTP "/"). */
  base: string;
  /** Passive data ports [min, max] (vsftpd connects these directly, not through a proxy). */
  pasvPorts: [number, number];
  /** vsftpd's own log (protocol and transfers). */
  logFile: string;
  /** The server's process id while it runs, else null. */
  readonly pid: number | null;
  /**
   * Writes a file under `localRoot` (creating date folders), readable and writable by the FTP
   * user. `content`: the bytes, or a size for deterministic bytes seeded by `relPath`: a
   * finished MP4 for a movie name (see `clipChunks`), else pseudo-random bytes (see
   * `pseudoRandomBytes`). `mtime` defaults to one hour ago.
   */
  writeClip(
    relPath: string,
    content: number | string | Uint8Array,
    mtime?: Date,
  ): Promise<WrittenClip>;
  /** Stops vsftpd (and every session). The files stay; `start()` serves them again. */
  stop(): Promise<void>;
  /** Starts vsftpd again on the same port (no-op when running). */
  start(): Promise<void>;
  /** Stops the server and deletes its temporary tree. */
  close(): Promise<void>;
  /** The tail of vsftpd's stdout/stderr (it logs to `logFile`). */
  output(): string;
}

let ensuredAccount: { user: string; password: string; uid: number; gid: number } | null = null;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function lookupIds(user: string): Promise<{ uid: number; gid: number; home: string } | null> {
  const r = await runCommand("getent", ["passwd", user], { allowFailure: true });
  if (r.code !== 0) return null;
  const fields = r.stdout.trim().split(":");
  return { uid: Number(fields[2]), gid: Number(fields[3]), home: fields[5] ?? "" };
}

/** Retries a command that takes /etc/passwd or /etc/shadow locks (parallel test workers). */
async function withLockRetries<T>(what: string, fn: () => Promise<T>): Promise<T> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      return await fn();
    } catch (err) {
      lastError = err;
      await sleep(50 + Math.random() * 150);
    }
  }
  throw new Error(`${what} failed: ${lastError instanceof Error ? lastError.message : lastError}`);
}

/**
 * Makes sure the system account exists with this password and the PAM service is in place.
 * Idempotent; safe to run from parallel workers. Note: every server of one user shares its
 * password (it is the system account's), so use a different `user` for a different password.
 */
export async function ensureFtpAccount(
  user = FTP_DEFAULT_USER,
  password = FTP_DEFAULT_PASSWORD,
): Promise<{ uid: number; gid: number }> {
  if (ensuredAccount && ensuredAccount.user === user && ensuredAccount.password === password) {
    return ensuredAccount;
  }
  if (process.getuid?.() !== 0) {
    throw new Error(
      "startFtpServer needs root: vsftpd only logs in real system accounts " +
        `(it creates the user ${user} and ${PAM_FILE}). Run the tests as root (e.g. in a container).`,
    );
  }
  if (!/^[a-z_][a-z0-9_-]{0,30}$/.test(user)) throw new Error(`bad FTP user name: ${user}`);
  if (/[:\n]/.test(password)) throw new Error("the FTP password cannot contain ':' or newlines");

  const current = await readFile(PAM_FILE, "utf8").catch(() => "");
  if (current !== PAM_CONTENT) {
    const tmp = `${PAM_FILE}.${process.pid}.tmp`;
    await writeFile(tmp, PAM_CONTENT, { mode: 0o644 });
    await rename(tmp, PAM_FILE);
  }

  let ids = await lookupIds(user);
  if (!ids) {
    await withLockRetries(`useradd ${user}`, async () => {
      if (await lookupIds(user)) return; // another worker made it meanwhile
      await runCommand("useradd", [
        "--system",
        "--no-create-home",
        // vsftpd chdirs to the home before local_root: it must exist
        "--home-dir",
        "/",
        "--shell",
        "/usr/sbin/nologin",
        "--user-group",
        user,
      ]);
    });
    ids = await lookupIds(user);
    if (!ids) throw new Error(`useradd ${user}: the user still does not exist`);
  }
  const home = ids.home;
  if (
    !home ||
    !(await stat(home).then(
      (s) => s.isDirectory(),
      () => false,
    ))
  ) {
    // vsftpd refuses the login ("500 OOPS: cannot change directory") without a home
    await withLockRetries(`usermod -d / ${user}`, () => runCommand("usermod", ["-d", "/", user]));
  }
  await withLockRetries(`chpasswd ${user}`, () =>
    runCommand("chpasswd", [], { input: `${user}:${password}\n` }),
  );
  ensuredAccount = { user, password, uid: ids.uid, gid: ids.gid };
  return ensuredAccount;
}

/**
 * `size` deterministic pseudo-random bytes for `seed` (AES-128-CTR keystream of
 * sha256(seed)): the same seed always gives the same bytes, different seeds differ.
 * Yields 1 MiB chunks, so any size streams in constant memory.
 */
export function* pseudoRandomChunks(size: number, seed: string): Generator<Buffer> {
  const key = createHash("sha256").update(seed).digest().subarray(0, 16);
  const cipher = createCipheriv("aes-128-ctr", key, Buffer.alloc(16));
  const chunk = 1024 * 1024;
  const zeros = Buffer.alloc(chunk);
  for (let left = size; left > 0; left -= chunk) {
    yield cipher.update(left >= chunk ? zeros : zeros.subarray(0, left));
  }
}

/** All of `pseudoRandomChunks(size, seed)` in one buffer (for small sizes). */
export function pseudoRandomBytes(size: number, seed: string): Buffer {
  return Buffer.concat([...pseudoRandomChunks(size, seed)]);
}

/**
 * The bytes of a test clip of `size` at `relPath`: a finished movie in motion's layout around
 * `pseudoRandomChunks(…, relPath)` when the name is a .mp4/.mov that is big enough (so the
 * completeness check can prove it finished, as it can a real camera's), else just those bytes.
 */
export function* clipChunks(size: number, relPath: string): Generator<Buffer> {
  if (isMovieName(relPath) && size >= MIN_MOVIE_SIZE) {
    yield* movieChunks(size, (n) => pseudoRandomChunks(n, relPath));
  } else {
    yield* pseudoRandomChunks(size, relPath);
  }
}

/** All of `clipChunks(size, relPath)` in one buffer (for small sizes). */
export function clipBytes(size: number, relPath: string): Buffer {
  return Buffer.concat([...clipChunks(size, relPath)]);
}

async function writeStreamed(file: string, size: number, seed: string): Promise<string> {
  const hash = createHash("sha256");
  const out = createWriteStream(file, { mode: 0o644 });
  try {
    for (const chunk of clipChunks(size, seed)) {
      hash.update(chunk);
      if (!out.write(chunk)) await once(out, "drain"); // rejects on "error", leaves no listener
    }
  } finally {
    await new Promise<void>((resolve, reject) => {
      out.once("error", reject);
      out.end(resolve);
    });
  }
  return hash.digest("hex");
}

function vsftpdConfig(o: {
  port: number;
  pasvMin: number;
  pasvMax: number;
  base: string;
  emptyDir: string;
  logFile: string;
}): string {
  return `# motioneye-vault test harness: vsftpd in the foreground on loopback
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=${o.port}
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
chroot_local_user=YES
allow_writeable_chroot=YES
local_root=${o.base}
passwd_chroot_enable=NO
secure_chroot_dir=${o.emptyDir}
pam_service_name=${PAM_SERVICE}
userlist_enable=NO
tcp_wrappers=NO
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
connect_from_port_20=NO
pasv_enable=YES
pasv_address=127.0.0.1
pasv_min_port=${o.pasvMin}
pasv_max_port=${o.pasvMax}
pasv_promiscuous=NO
port_enable=YES
use_localtime=NO
mdtm_write=YES
dirmessage_enable=NO
hide_ids=NO
max_clients=0
max_per_ip=0
idle_session_timeout=600
data_connection_timeout=120
xferlog_enable=YES
xferlog_std_format=NO
log_ftp_protocol=YES
vsftpd_log_file=${o.logFile}
dual_log_enable=NO
syslog_enable=NO
delay_failed_login=0
ftpd_banner=motioneye-vault test FTP
`;
}

/**
 * Starts vsftpd on a free port of 127.0.0.1 serving a fresh motionEyeOS-like tree.
 * Requires root and `/usr/sbin/vsftpd` (scripts/ensure-deps.sh installs it).
 */
export async function startFtpServer(
  opts: { user?: string; password?: string } = {},
): Promise<FtpServer> {
  const user = opts.user ?? FTP_DEFAULT_USER;
  const password = opts.password ?? FTP_DEFAULT_PASSWORD;
  const { uid, gid } = await ensureFtpAccount(user, password);

  const work = await mkdtemp(path.join(os.tmpdir(), "mevault-ftp-"));
  const forgetWork = removeOnExit(work);
  await chmod(work, 0o755);
  const base = path.join(work, "root");
  const localRoot = path.join(base, "sdcard");
  const emptyDir = path.join(work, "empty");
  const logFile = path.join(work, "vsftpd.log");
  const confFile = path.join(work, "vsftpd.conf");
  await mkdir(localRoot, { recursive: true });
  await mkdir(emptyDir);
  await chmod(base, 0o755);
  await chmod(emptyDir, 0o755);
  await chmod(localRoot, 0o755);
  await chown(localRoot, uid, gid);

  const port = await freePort();
  const pasvMin = await freePortRange(PASV_PORT_COUNT);
  const pasvMax = pasvMin + PASV_PORT_COUNT - 1;
  await writeFile(confFile, vsftpdConfig({ port, pasvMin, pasvMax, base, emptyDir, logFile }), {
    mode: 0o600,
  });

  const server = restartableServer(
    () => spawnServer(VSFTPD, [confFile], { name: `vsftpd:${port}` }),
    port,
    async () => (await readFile(logFile, "utf8").catch(() => "")).slice(-2000),
  );
  const { start, stop } = server;

  const writeClip = async (
    relPath: string,
    content: number | string | Uint8Array,
    mtime: Date = new Date(Date.now() - 3600_000),
  ): Promise<WrittenClip> => {
    const rel = relPath.replace(/^\/+/, "");
    const parts = rel.split("/");
    if (!rel || parts.some((p) => p === ".." || p === "." || p === "")) {
      throw new Error(`writeClip: bad relative path ${JSON.stringify(relPath)}`);
    }
    const localPath = path.join(localRoot, ...parts);
    // create each missing folder, owned by the FTP user like the rest of the tree
    let dir = localRoot;
    for (const part of parts.slice(0, -1)) {
      dir = path.join(dir, part);
      const exists = await stat(dir).then(
        (s) => s.isDirectory(),
        () => false,
      );
      if (!exists) {
        await mkdir(dir, { mode: 0o755 });
        await chown(dir, uid, gid);
      }
    }
    let sha256: string;
    let size: number;
    if (typeof content === "number") {
      size = content;
      sha256 = await writeStreamed(localPath, content, rel);
    } else {
      const bytes = typeof content === "string" ? Buffer.from(content) : content;
      size = bytes.byteLength;
      sha256 = createHash("sha256").update(bytes).digest("hex");
      await writeFile(localPath, bytes, { mode: 0o644 });
    }
    await chmod(localPath, 0o644);
    await chown(localPath, uid, gid);
    await utimes(localPath, mtime, mtime);
    return { relPath: rel, localPath, ftpPath: `/sdcard/${rel}`, size, mtime, sha256 };
  };

  await start();

  return {
    host: "127.0.0.1",
    port,
    user,
    password,
    path: "/sdcard",
    localRoot,
    base,
    pasvPorts: [pasvMin, pasvMax],
    logFile,
    get pid() {
      return server.pid;
    },
    writeClip,
    stop,
    start,
    close: async () => {
      await stop();
      await rm(work, { recursive: true, force: true });
      forgetWork();
    },
    output: server.output,
  };
}
