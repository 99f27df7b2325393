import type { FtpServer } from "./ftp.js";
import type { SftpServer } from "./sshd.js";

/** The config's `source` section for a harness vsftpd (the camera). */
export function ftpSource(ftp: FtpServer, over: Record<string, unknown> = {}) {
  return {
    type: "ftp",
    host: ftp.host,
    port: ftp.port,
    user: ftp.user,
    password: ftp.password,
    path: ftp.path,
    ...over,
  };
}

/** The config's `destination` section for a harness sshd (the vault), its host key pinned. */
export function sftpDestination(
  sftp: SftpServer,
  path: string,
  over: Record<string, unknown> = {},
) {
  return {
    type: "sftp",
    host: sftp.host,
    port: sftp.port,
    username: sftp.username,
    privateKeyFile: sftp.privateKeyPath,
    hostKey: sftp.hostKeyFingerprint,
    path,
    ...over,
  };
}
