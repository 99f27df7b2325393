import type { Command } from "commander";
import { App } from "../app/compose.js";
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
    const { log } = loaded.config;
    const logger = createLogger({ level: log.level ?? defaultLogLevel, format: log.format });
    return { loaded, logger };
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const p of err.problems) process.stderr.write(`config error: ${p}\n`);
      process.exit(EXIT_USAGE);
    }
    throw err;
  }
}

/**
 * Runs a command body with the composition root (which builds only the parts the body asks
 * for, and closes them after); maps errors to the contract's exit codes.
 */
export async function withApp(
  cmd: Command,
  body: (app: App) => Promise<number | undefined>,
  opts: { defaultLogLevel?: string } = {},
): Promise<void> {
  const { loaded, logger } = loadOrExit(cmd, opts.defaultLogLevel);
  const app = new App(loaded, logger);
  let code: number = EXIT_OK;
  try {
    code = (await body(app)) ?? EXIT_OK;
  } catch (err) {
    code = err instanceof UsageError ? EXIT_USAGE : EXIT_FAILED;
    process.stderr.write(`error: ${errorMessage(err)}\n`);
  } finally {
    await app.close();
  }
  process.exitCode = code;
}

/** `--camera X` as the config's sources understand it; a usage error when it names nothing. */
export function cameraSelection(app: App, camera: string | undefined) {
  if (camera === undefined) return undefined;
  const selection = app.sourceSet.selectCamera(camera);
  if (!selection) {
    throw new UsageError(
      `--camera: "${camera}" names no source (sources: ${app.sourceSet.names.join(", ")}); use SOURCE/CAMERA, SOURCE or CAMERA`,
    );
  }
  return selection;
}
