/**
 * `ssh -s host sftp`, OpenSSH's own client, as the transport of an SFTP session (as rclone's
 * `--sftp-ssh` does): the SSH work (ciphers, MACs, packets) is done in C by the process users
 * already trust, not in JavaScript on our event loop.
 *
 * The command line holds no secret: login is by key file only (the config refuses passwords and
 * passphrases for this transport), the user's ssh config, agent and known hosts are ignored, and
 * the server's key is checked by ssh against the one trusted key (./hostKeys.ts).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { HostKeyMismatchError, knownHostLabel, readKnownHosts } from "../hostKeys.js";
import { prepareHostKey, scanHostKeys, type TrustedKeys } from "./hostKeys.js";
import { SftpSession } from "./session.js";

export interface SshParams {
  host: string;
  port: number;
  username: string;
  privateKeyFile: string;
  /** Normalized pinned fingerprint, if any. */
  pinned: string | undefined;
  knownHostsFile: string;
  opensshKnownHostsFile: string;
  /** Connect timeout; also how long a silent server is tolerated (ServerAlive*). */
  timeoutMs: number;
  warn(fields: Record<string, unknown>, message: string): void;
  /** The ssh program (default `ssh` on the PATH). */
  sshCommand?: string;
}

/** A live `ssh` child with its SFTP session. */
export interface SshLink {
  session: SftpSession;
  /** Ends the link at once: the session fails with `reason`, ssh is killed. */
  kill(reason: string): void;
  /** Closes politely (EOF to ssh), killing it if it has not exited after `graceMs`. */
  close(graceMs: number): Promise<void>;
}

/** ssh's arguments: everything explicit, nothing from ~/.ssh or the agent. */
export function sshArgs(p: SshParams, keys: TrustedKeys): string[] {
  const seconds = Math.max(1, Math.ceil(p.timeoutMs / 1000));
  const options: Record<string, string> = {
    BatchMode: "yes",
    StrictHostKeyChecking: "yes",
    UserKnownHostsFile: p.opensshKnownHostsFile,
    GlobalKnownHostsFile: "/dev/null",
    HostKeyAlias: keys.alias,
    HostKeyAlgorithms: keys.algorithms,
    CheckHostIP: "no",
    UpdateHostKeys: "no",
    IdentityFile: p.privateKeyFile,
    IdentitiesOnly: "yes",
    IdentityAgent: "none",
    PreferredAuthentications: "publickey",
    PasswordAuthentication: "no",
    KbdInteractiveAuthentication: "no",
    ConnectTimeout: String(seconds),
    // A silent server is given up on after ~timeoutMs, as with ssh2's keepalives.
    ServerAliveInterval: String(Math.max(1, Math.round(seconds / 4))),
    ServerAliveCountMax: "3",
    ControlMaster: "no",
    ControlPath: "none",
    ForwardAgent: "no",
    ForwardX11: "no",
    ClearAllForwardings: "yes",
    PermitLocalCommand: "no",
    Compression: "no",
    LogLevel: "ERROR",
  };
  return [
    "-F",
    "/dev/null",
    ...Object.entries(options).flatMap(([k, v]) => ["-o", `${k}=${v}`]),
    "-p",
    String(p.port),
    "-l",
    p.username,
    "-T",
    "-s",
    "--",
    p.host,
    "sftp",
  ];
}

/** Without the agent or a display: ssh must never ask anyone anything. */
function sshEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ["SSH_AUTH_SOCK", "SSH_ASKPASS", "SSH_ASKPASS_REQUIRE", "DISPLAY"]) delete env[k];
  return env;
}

/** ssh's complaint, without the noise, for messages. */
function lastWords(stderr: string): string {
  const lines = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !/^[@*]+/.test(l) && !/^Warning: Permanently added/.test(l));
  return lines.slice(-3).join("; ");
}

/** Starts ssh with an SFTP session; rejects with a message that says what went wrong. */
export async function connectOpenssh(p: SshParams): Promise<SshLink> {
  const server = `${p.host}:${p.port}`;
  if (p.host.startsWith("-")) throw new Error(`bad host name ${JSON.stringify(p.host)}`);
  const keys = await prepareHostKey({ ...p });
  const child: ChildProcess = spawn(p.sshCommand ?? "ssh", sshArgs(p, keys), {
    stdio: ["pipe", "pipe", "pipe"],
    env: sshEnv(),
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (d: string) => {
    stderr = (stderr + d).slice(-4000);
  });
  let killedFor: string | undefined;
  const exited = new Promise<Error>((resolve) => {
    child.once("error", (err) =>
      resolve(
        (err as NodeJS.ErrnoException).code === "ENOENT"
          ? new Error("ssh is not installed (the openssh transport runs OpenSSH's ssh)")
          : err,
      ),
    );
    child.once("exit", (code, signal) => {
      const why = killedFor ?? lastWords(stderr);
      const status = signal ? `killed by ${signal}` : `exit code ${code}`;
      resolve(new Error(`connection lost (ssh ${status}${why ? `: ${why}` : ""})`));
    });
  });
  const kill = (reason: string) => {
    killedFor ??= reason;
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  const { stdin, stdout } = child;
  if (!stdin || !stdout) throw new Error("ssh started without pipes");
  // ssh may exit before reading what was written: that is reported through `exited`.
  stdin.on("error", () => {});

  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      kill(`timed out after ${Math.round(p.timeoutMs / 1000)} s`);
      reject(
        new Error(`timed out connecting to ${server} after ${Math.round(p.timeoutMs / 1000)} s`),
      );
    }, p.timeoutMs);
  });
  let session: SftpSession;
  try {
    session = await Promise.race([
      SftpSession.start(stdin, stdout, () => whyEnded(exited)),
      // ssh could not start, or exited (refused, unreachable) before the session was up.
      exited.then((err) => Promise.reject(err)),
      timedOut,
    ]);
  } catch (err) {
    kill("connect failed");
    throw await explain(err as Error, stderr, p, server);
  } finally {
    clearTimeout(timer);
  }
  void exited.then((err) => session.lost(err));
  // A session that broke (a malformed reply) leaves no ssh behind.
  session.onLost(() => kill("session lost"));
  return {
    session,
    kill(reason) {
      kill(reason);
      session.lost(new Error(`connection lost (${reason})`));
    },
    async close(graceMs) {
      killedFor ??= "closed";
      session.lost(new Error("connection closed"));
      stdin.end();
      let grace: NodeJS.Timeout | undefined;
      await Promise.race([
        exited,
        new Promise<void>((resolve) => {
          grace = setTimeout(() => {
            kill("closed");
            resolve();
          }, graceMs);
        }),
      ]);
      clearTimeout(grace);
    },
  };
}

/** ssh's exit reason once its output ended; ssh exits right after, or is not waited for long. */
function whyEnded(exited: Promise<Error>): Promise<Error> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    exited,
    new Promise<Error>((resolve) => {
      timer = setTimeout(
        () => resolve(new Error("connection lost (the SFTP channel closed)")),
        2000,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Turns ssh's refusal of the host key into HostKeyMismatchError, naming the key it saw. */
async function explain(err: Error, stderr: string, p: SshParams, server: string): Promise<Error> {
  if (!/Host key verification failed|HOST IDENTIFICATION HAS CHANGED/i.test(stderr)) {
    const words = lastWords(stderr);
    if (/^connection lost \(/.test(err.message)) {
      return new Error(`cannot connect to ${server}: ${words || err.message}`);
    }
    return err;
  }
  try {
    const presented = (await scanHostKeys(p.host, p.port, p.timeoutMs))[0]?.fingerprint ?? "?";
    if (p.pinned) return new HostKeyMismatchError(server, p.pinned, presented, "pinned");
    const recorded = readKnownHosts(p.knownHostsFile, knownHostLabel(server));
    return new HostKeyMismatchError(
      server,
      recorded.join(" or ") || "the key recorded on first use",
      presented,
      "known-hosts",
      p.knownHostsFile,
    );
  } catch {
    return new Error(`${server}: ssh refused the server's host key (${lastWords(stderr)})`);
  }
}
