/**
 * A real SFTP server for tests: a second OpenSSH `sshd -D -e -f <own config> -p <port>` on
 * 127.0.0.1 with its own ed25519 host key, public-key login for the current user with a
 * client key made for the test, and `internal-sftp`. It never touches port 22, the system
 * sshd or its config (everything it reads is in a temporary folder; only /run/sshd, the
 * privilege-separation directory sshd insists on, is created when missing).
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { freePort } from "./ports.js";
import { removeOnExit, restartableServer, runCommand, spawnServer } from "./processes.js";

const SSHD = "/usr/sbin/sshd";

export interface SftpServer {
  host: "127.0.0.1";
  port: number;
  /** The login user (the user running the tests). */
  username: string;
  /** Client private key (OpenSSH ed25519, no passphrase), authorized on this server. */
  privateKeyPath: string;
  /** The client public key. */
  publicKeyPath: string;
  /** The current host key's fingerprint exactly as `ssh-keygen -lf` prints it: `SHA256:...`. */
  readonly hostKeyFingerprint: string;
  /** The current host public key (`ssh-ed25519 AAAA... comment`). */
  readonly hostPublicKeyPath: string;
  /** An absolute, empty temporary directory to use as `destination.path`. */
  root: string;
  /** The server's process id while it runs, else null. */
  readonly pid: number | null;
  /** Stops sshd and every session (open SFTP connections drop). */
  stop(): Promise<void>;
  /** Starts sshd again on the same port with the current host key (no-op when running). */
  start(): Promise<void>;
  /**
   * Makes a new host key and restarts with it (when running), so clients that pinned the
   * old fingerprint must refuse. Resolves with the new fingerprint.
   */
  rotateHostKey(): Promise<string>;
  /** Stops and deletes every temporary file (keys, root). */
  close(): Promise<void>;
  /** The tail of sshd's log (-e: to stderr). */
  output(): string;
}

async function makeKey(file: string, comment: string): Promise<void> {
  await runCommand("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file]);
}

/** `ssh-keygen -lf <pub>` prints `256 SHA256:xxx comment (ED25519)`: the `SHA256:xxx` part. */
export async function fingerprintOf(publicKeyPath: string): Promise<string> {
  const r = await runCommand("ssh-keygen", ["-lf", publicKeyPath]);
  const fp = r.stdout.trim().split(/\s+/)[1];
  if (!fp?.startsWith("SHA256:")) throw new Error(`ssh-keygen -lf: unexpected output ${r.stdout}`);
  return fp;
}

function sshdConfig(o: {
  port: number;
  hostKey: string;
  authorizedKeys: string;
  pidFile: string;
  username: string;
}): string {
  return `# motioneye-vault test harness: a private sshd on loopback
Port ${o.port}
ListenAddress 127.0.0.1
AddressFamily inet
HostKey ${o.hostKey}
PidFile ${o.pidFile}
AuthorizedKeysFile ${o.authorizedKeys}
AllowUsers ${o.username}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
PermitTunnel no
MaxStartups 100:30:200
MaxSessions 50
LoginGraceTime 30
LogLevel INFO
Subsystem sftp internal-sftp
`;
}

/** Starts a private sshd on a free port of 127.0.0.1. */
export async function startSftpServer(): Promise<SftpServer> {
  const work = await mkdtemp(path.join(os.tmpdir(), "mevault-sshd-"));
  const forgetWork = removeOnExit(work);
  const root = path.join(work, "root");
  await mkdir(root);
  const username = os.userInfo().username;
  const clientKey = path.join(work, "client_ed25519");
  const authorizedKeys = path.join(work, "authorized_keys");
  const configFile = path.join(work, "sshd_config");
  const pidFile = path.join(work, "sshd.pid");
  let keyIndex = 0;
  const hostKeyFile = (i: number) => path.join(work, `ssh_host_ed25519_key_${i}`);

  await Promise.all([
    makeKey(clientKey, "mevault-test-client"),
    makeKey(hostKeyFile(0), "mevault-test-host"),
  ]);
  await writeFile(authorizedKeys, await readFile(`${clientKey}.pub`));
  let fingerprint = await fingerprintOf(`${hostKeyFile(0)}.pub`);

  const port = await freePort();
  const writeConfig = () =>
    writeFile(
      configFile,
      sshdConfig({ port, hostKey: hostKeyFile(keyIndex), authorizedKeys, pidFile, username }),
      { mode: 0o600 },
    );
  await writeConfig();
  if (process.getuid?.() === 0) await mkdir("/run/sshd", { recursive: true, mode: 0o755 });

  const server = restartableServer(
    () =>
      spawnServer(SSHD, ["-D", "-e", "-f", configFile, "-p", String(port)], {
        name: `sshd:${port}`,
      }),
    port,
  );
  const { start, stop } = server;
  await start();

  return {
    host: "127.0.0.1",
    port,
    username,
    privateKeyPath: clientKey,
    publicKeyPath: `${clientKey}.pub`,
    get hostKeyFingerprint() {
      return fingerprint;
    },
    get hostPublicKeyPath() {
      return `${hostKeyFile(keyIndex)}.pub`;
    },
    root,
    get pid() {
      return server.pid;
    },
    stop,
    start,
    rotateHostKey: async () => {
      const wasRunning = server.running;
      const next = keyIndex + 1;
      await makeKey(hostKeyFile(next), `mevault-test-host-${next}`);
      const nextFingerprint = await fingerprintOf(`${hostKeyFile(next)}.pub`);
      if (wasRunning) await stop();
      keyIndex = next;
      fingerprint = nextFingerprint;
      await writeConfig();
      if (wasRunning) await start();
      return fingerprint;
    },
    close: async () => {
      await stop();
      await rm(work, { recursive: true, force: true });
      forgetWork();
    },
    output: server.output,
  };
}

/** `sftp` batch-mode arguments for the test sshd: its key, no config, no host key checks. */
export function opensshSftpArgs(
  server: Pick<SftpServer, "host" | "port" | "username" | "privateKeyPath">,
): string[] {
  return [
    "-b",
    "-",
    "-i",
    server.privateKeyPath,
    "-P",
    String(server.port),
    "-F",
    "/dev/null",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "LogLevel=ERROR",
    `${server.username}@${server.host}`,
  ];
}

/**
 * Runs OpenSSH's own `sftp` in batch mode (`-b -`, commands on stdin) against the server, the
 * way the benchmark does: `sftp -b - -i key -P port -o StrictHostKeyChecking=no
 * -o UserKnownHostsFile=/dev/null user@127.0.0.1`. A failing command fails the batch (prefix
 * it with `-` to ignore its error, as in sftp(1)). Resolves with sftp's stdout.
 */
export async function opensshSftpBatch(
  server: Pick<SftpServer, "host" | "port" | "username" | "privateKeyPath">,
  commands: string[],
  opts: { timeoutMs?: number; cwd?: string } = {},
): Promise<string> {
  const r = await runCommand("sftp", opensshSftpArgs(server), {
    input: `${commands.join("\n")}\n`,
    timeoutMs: opts.timeoutMs ?? 120_000,
    cwd: opts.cwd,
  });
  return r.stdout;
}
