/**
 * The reference tools each figure is compared with, run against the same servers in the same
 * benchmark run: OpenSSH's own `sftp` and Debian's rclone (`copy` to an SFTP `crypt` remote).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { runCommand } from "../../test/harness/processes.js";
import { opensshSftpBatch } from "../../test/harness/sshd.js";
import type { BenchServers } from "./vault.js";

/** OpenSSH `sftp -b -` putting local files into `remoteDir` (created first). */
export async function sftpPut(s: BenchServers, files: string[], remoteDir: string): Promise<void> {
  const commands = [`mkdir ${remoteDir}`];
  for (const f of files) commands.push(`put ${f} ${remoteDir}/${f.slice(f.lastIndexOf("/") + 1)}`);
  await opensshSftpBatch(s.sftp, commands, { timeoutMs: 300_000 });
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
