import { statSync } from "node:fs";

/**
 * OpenSSH ignores a private key that others may read ("UNPROTECTED PRIVATE KEY FILE"), and the
 * login then fails with a bare "Permission denied": say so up front, naming the key and the fix.
 */
export function checkKeyFileForOpenssh(path: string, configPath: string): string {
  let mode: number;
  let uid: number;
  try {
    ({ mode, uid } = statSync(path));
  } catch (err) {
    throw new Error(
      `${configPath}.privateKeyFile: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
  if ((mode & 0o077) !== 0 && uid === process.getuid?.()) {
    throw new Error(
      `${configPath}.privateKeyFile: ${path} is readable by other users (mode ${(mode & 0o777).toString(8)}); OpenSSH refuses such a key: chmod 600 ${path}`,
    );
  }
  return path;
}
