/**
 * The reference tools each figure is compared with, run against the same servers in the same
 * benchmark run: OpenSSH's own `sftp` and Debian's rclone (`copy` to an SFTP `crypt` remote).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { runCommand } from "../../test/harness/processes.js";
import { opensshSftpArgs, type SftpServer } from "../../test/harness/sshd.js";
import type { BenchServers } from "./vault.js";

/** `taskset -c 0 ...`: a command and its children on one core, as on a weak single-core box. */
export const PIN = ["taskset", "-c", "0"];

/**
 * OpenSSH `sftp -b -` running `commands` against the bench's sshd (its options as the test
 * harness's `opensshSftpBatch`); `pin` runs it and its `ssh` on core 0 only.
 */
export async function opensshSftp(
  server: Pick<SftpServer, "host" | "port" | "username" | "privateKeyPath">,
  commands: string[],
  opts: { pin?: boolean } = {},
): Promise<void> {
  const args = opensshSftpArgs(server);
  const [command, ...rest] = opts.pin ? [...PIN, "sftp", ...args] : ["sftp", ...args];
  await runCommand(command as string, rest, {
    input: `${commands.join("\n")}\n`,
    timeoutMs: 600_000,
  });
}

/** OpenSSH `sftp -b -` putting local files into `remoteDir` (created first). */
export async function sftpPut(
  s: BenchServers,
  files: string[],
  remoteDir: string,
  opts: { pin?: boolean } = {},
): Promise<void> {
  const commands = [`mkdir ${remoteDir}`];
  for (const f of files) commands.push(`put ${f} ${remoteDir}/${f.slice(f.lastIndexOf("/") + 1)}`);
  await opensshSftp(s.sftp, commands, opts);
}

/** OpenSSH `sftp -b -` getting remote files into `localDir` (which must exist). */
export async function sftpGet(
  s: BenchServers,
  remoteFiles: string[],
  localDir: string,
  opts: { pin?: boolean } = {},
): Promise<void> {
  const commands = remoteFiles.map(
    (f, i) => `get ${f} ${localDir}/${i}-${f.slice(f.lastIndexOf("/") + 1)}`,
  );
  await opensshSftp(s.sftp, commands, opts);
}

/**
 * An rclone.conf with `cam` (the FTP server), `vault` (the SFTP server) and `crypt` (rclone's
 * encryption layer over `vault:<remoteDir>`); passwords stored obscured, as rclone wants them.
 */
export async function rcloneConfig(s: BenchServers, remoteDir: string): Promise<string> {
  const obscure = async (secret: string) =>
    (await runCommand("rclone", ["obscure", secret])).stdout.trim();
  const dir = join(s.work, "rclone");
  await mkdir(dir, { recursive: true });
  const file = join(dir, "rclone.conf");
  await writeFile(
    file,
    [
      "[cam]",
      "type = ftp",
      `host = ${s.ftp.host}`,
      `port = ${s.ftp.port}`,
      `user = ${s.ftp.user}`,
      `pass = ${await obscure(s.ftp.password)}`,
      "",
      "[vault]",
      "type = sftp",
      `host = ${s.sftp.host}`,
      `port = ${s.sftp.port}`,
      `user = ${s.sftp.username}`,
      `key_file = ${s.sftp.privateKeyPath}`,
      "",
      "[crypt]",
      "type = crypt",
      `remote = vault:${remoteDir}`,
      `password = ${await obscure("mevault-bench-crypt-password")}`,
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  return file;
}

/** `rclone copy cam:<ftpDir> crypt:<dest>` with rclone's default transfers/checkers. */
export async function rcloneCopy(configFile: string, ftpDir: string, dest: string): Promise<void> {
  await runCommand(
    "rclone",
    ["--config", configFile, "copy", `cam:${ftpDir}`, `crypt:${dest}`, "--quiet"],
    { timeoutMs: 300_000 },
  );
}
