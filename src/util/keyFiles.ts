import { statSync } from "node:fs";
import type { Logger } from "./log.js";

/**
 * Key files that group or others can read are a leak waiting to happen: say so at start-up
 * (the vault still runs; refusing would stop backups over a permission bit). A missing file is
 * left to whoever reads it to report.
 */
export function warnIfReadableByOthers(path: string, what: string, logger: Logger): boolean {
  let mode: number;
  try {
    mode = statSync(path).mode & 0o777;
  } catch {
    return false;
  }
  if ((mode & 0o077) === 0) return false;
  logger.warn(
    { path, mode: mode.toString(8).padStart(4, "0") },
    `${what} is readable by other users: chmod 600 it`,
  );
  return true;
}
