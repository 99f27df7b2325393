import type { Command } from "commander";
import { openVault, type Vault } from "../app/vault.js";
import { ConfigError, type LoadedConfig, loadConfig } from "../config/load.js";
import { createLogger, errorMessage, type Logger } from "../util/log.js";

/** Exit codes of the contract. */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** A bad argument: exit 2 with this message. */
export class UsageError extends Error {
  override name = "UsageError";
}

export interface GlobalOptions {
  config?: string;
}

export function globalOptions(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

/** Loads the config (exit 2 on any problem, before anything else happens). */
export function loadOrExit(
  cmd: Command,
  defaultLogLevel = "warn",
): { loaded: LoadedConfig; logger: Logger } {
  try {
    const loaded = loadConfig({ file: globalOptions(cmd).config });
    const logger = createLogger({ level: loaded.config.log.level ?? defaultLogLevel });
    return { loaded, logger };
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const p of err.problems) process.stderr.write(`config error: ${p}\n`);
      process.exit(EXIT_USAGE);
    }
    throw err;
  }
}

/** Runs a command body with an open vault; maps errors to the contract's exit codes. */
export async function withVault(
  cmd: Command,
  body: (vault: Vault) => Promise<number | undefined>,
  opts: { defaultLogLevel?: string } = {},
): Promise<void> {
  const { loaded, logger } = loadOrExit(cmd, opts.defaultLogLevel);
  let vault: Vault | undefined;
  let code: number = EXIT_OK;
  try {
    vault = await openVault(loaded, logger);
    code = (await body(vault)) ?? EXIT_OK;
  } catch (err) {
    code = err instanceof UsageError ? EXIT_USAGE : EXIT_FAILED;
    process.stderr.write(`error: ${errorMessage(err)}\n`);
  } finally {
    await vault?.close();
  }
  process.exitCode = code;
}
