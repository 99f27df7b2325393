/**
 * ProFTPD as motionEyeOS has it: the media root served read-only as `/sdcard` to the user
 * `admin`, MLSD on (mod_facts), passive ports, in the foreground (`-n`) on a free port of
 * 127.0.0.1 with its own config, users file, pid and scoreboard in a temporary folder.
 *
 * Debian's `proftpd-core` conflicts with `vsftpd` (the other FTP tests), so it is not installed:
 * scripts/ensure-deps.sh unpacks the package (`apt-get download` + `dpkg -x`) into a cache
 * folder and installs the libraries it links to. The login is checked against its own users
 * file (mod_auth_file: no system account); sessions run as `nobody`, chrooted to the folder that
 * holds `sdcard`. Needs root (the chroot), as vsftpd does.
 */
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { freePort, freePortRange } from "./ports.js";
import { removeOnExit, restartableServer, runCommand, spawnServer } from "./processes.js";

export const PROFTPD_USER = "admin";
const PASV_PORT_COUNT = 20;
/** The unprivileged account sessions run as (Debian's nobody / nogroup). */
const SESSION_UID = 65534;
const SESSION_GID = 65534;

/** Where scripts/ensure-deps.sh unpacks proftpd-core (keep the two in step). */
export function proftpdCacheDir(): string {
  const cache =
    process.env.MEVAULT_CACHE_DIR ??
    path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache"), "motioneye-vault");
  return path.join(cache, "proftpd");
}

export function proftpdBinary(): string {
  return path.join(proftpdCacheDir(), "root", "usr", "sbin", "proftpd");
}

export interface ProftpdServer {
  host: "127.0.0.1";
  port: number;
  user: string;
  password: string;
  /** The media root over FTP: "/sdcard". */
  path: string;
  /** The local folder served as `/sdcard`: motion's media root. */
  localRoot: string;
  /** The chroot (FTP "/"). */
  base: string;
  pasvPorts: [number, number];
  /** ProFTPD's own log (logins, errors). */
  logFile: string;
  /** Its xferlog: one line per transfer (an aborted ranged read included) with its bytes. */
  transferLog: string;
  /** Bytes ProFTPD has sent in file transfers so far (from the xferlog). */
  bytesSent(): Promise<number>;
  readonly pid: number | null;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server and deletes its temporary tree (the media root included). */
  close(): Promise<void>;
  output(): string;
}

function proftpdConfig(o: {
  port: number;
  pasvMin: number;
  pasvMax: number;
  work: string;
  logFile: string;
  transferLog: string;
}): string {
  return `# motioneye-vault test harness: ProFTPD as motionEyeOS serves the media root
ServerName "motionEyeOS"
ServerType standalone
DefaultServer on
UseIPv6 off
DefaultAddress 127.0.0.1
Port ${o.port}
PassivePorts ${o.pasvMin} ${o.pasvMax}
User nobody
Group nogroup
Umask 022
MaxInstances 50
TimeoutIdle 600
PidFile ${o.work}/proftpd.pid
ScoreboardFile ${o.work}/proftpd.scoreboard
DelayEngine off
WtmpLog off
UseReverseDNS off
SystemLog ${o.logFile}
TransferLog ${o.transferLog}
AuthOrder mod_auth_file.c
AuthUserFile ${o.work}/ftpd.passwd
AuthGroupFile ${o.work}/ftpd.group
RequireValidShell off
DefaultRoot ~
MultilineRFC2228 on
<Directory />
  AllowOverwrite off
  <Limit WRITE>
    DenyAll
  </Limit>
</Directory>
`;
}

/**
 * Starts ProFTPD serving a new, empty `<base>/sdcard` (`localRoot`): give it to motion as its
 * media root. What is written there must stay readable by nobody (umask 022 does that).
 */
export async function startProftpd(opts: { password?: string } = {}): Promise<ProftpdServer> {
  const binary = proftpdBinary();
  if (!existsSync(binary)) {
    throw new Error(
      `ProFTPD is not unpacked at ${binary}: run \`bash scripts/ensure-deps.sh\` (it unpacks Debian's proftpd-core there without installing it)`,
    );
  }
  if (process.getuid?.() !== 0) {
    throw new Error("startProftpd needs root (ProFTPD chroots each session), as vsftpd does");
  }
  const password = opts.password ?? "motioneyeos-admin";
  const work = await mkdtemp(path.join(os.tmpdir(), "mevault-proftpd-"));
  const forgetWork = removeOnExit(work);
  const base = path.join(work, "root");
  const localRoot = path.join(base, "sdcard");
  const logFile = path.join(work, "proftpd.log");
  const transferLog = path.join(work, "xferlog");
  const confFile = path.join(work, "proftpd.conf");
  await mkdir(localRoot, { recursive: true });
  // the sessions (nobody) read the tree; the work folder itself is reached only as root
  await chmod(work, 0o711);
  await chmod(base, 0o755);
  await chmod(localRoot, 0o755);

  const hash = (
    await runCommand("openssl", ["passwd", "-6", "-stdin"], { input: password })
  ).stdout.trim();
  // mod_auth_file refuses a world-readable users file
  await writeFile(
    path.join(work, "ftpd.passwd"),
    `${PROFTPD_USER}:${hash}:${SESSION_UID}:${SESSION_GID}::${base}:/bin/false\n`,
    { mode: 0o600 },
  );
  await writeFile(path.join(work, "ftpd.group"), `nogroup:x:${SESSION_GID}:\n`, { mode: 0o644 });

  const port = await freePort();
  const pasvMin = await freePortRange(PASV_PORT_COUNT);
  const pasvMax = pasvMin + PASV_PORT_COUNT - 1;
  await writeFile(confFile, proftpdConfig({ port, pasvMin, pasvMax, work, logFile, transferLog }), {
    mode: 0o600,
  });

  const server = restartableServer(
    () => spawnServer(binary, ["-n", "-c", confFile], { name: `proftpd:${port}` }),
    port,
    async () => (await readFile(logFile, "utf8").catch(() => "")).slice(-2000),
  );
  await server.start();

  return {
    host: "127.0.0.1",
    port,
    user: PROFTPD_USER,
    password,
    path: "/sdcard",
    localRoot,
    base,
    pasvPorts: [pasvMin, pasvMax],
    logFile,
    transferLog,
    bytesSent: async () => {
      // xferlog: a 5-word date, transfer time, host, then the byte count
      const text = await readFile(transferLog, "utf8").catch(() => "");
      return text
        .split("\n")
        .filter(Boolean)
        .reduce((sum, line) => sum + (Number(line.trim().split(/\s+/)[7]) || 0), 0);
    },
    get pid() {
      return server.pid;
    },
    stop: server.stop,
    start: server.start,
    close: async () => {
      await server.stop();
      await rm(work, { recursive: true, force: true });
      forgetWork();
    },
    output: server.output,
  };
}
