import { createRequire } from "node:module";
import { pino } from "pino";

export type Logger = pino.Logger;

/** `pretty`: one readable line per entry (people at a terminal); `json`: one JSON object a line. */
export type LogFormat = "pretty" | "json";

const REDACT = {
  paths: [
    "password",
    "*.password",
    "token",
    "*.token",
    "privateKey",
    "*.privateKey",
    "identity",
    "*.identity",
  ],
  censor: "[redacted]",
};

/** Unset format: readable lines when a person watches stderr (a terminal), JSON for machines. */
export function defaultLogFormat(stderrIsTty = Boolean(process.stderr.isTTY)): LogFormat {
  return stderrIsTty ? "pretty" : "json";
}

/**
 * The one logger, on stderr (stdout stays free for `--json` output and tables); secrets are
 * redacted by key name wherever they appear in a logged object, in either format.
 */
export function createLogger(
  opts: { level?: string; name?: string; format?: LogFormat } = {},
): Logger {
  const format = opts.format ?? defaultLogFormat();
  const options: pino.LoggerOptions = {
    name: opts.name ?? "motioneye-vault",
    level: opts.level ?? "info",
    redact: REDACT,
    base: undefined,
  };
  if (format === "pretty") return pino(options, prettyStream());
  return pino(options, pino.destination({ fd: 2, sync: true }));
}

/**
 * pino-pretty, loaded only when a pretty log is asked for (it is not small), synchronously so the
 * logger is ready at once and its last lines are not lost when the process exits.
 */
function prettyStream(): pino.DestinationStream {
  const require = createRequire(import.meta.url);
  const build = require("pino-pretty") as (opts: Record<string, unknown>) => pino.DestinationStream;
  return build({
    destination: 2,
    sync: true,
    colorize: Boolean(process.stderr.isTTY),
    translateTime: "SYS:yyyy-mm-dd HH:MM:ss.l",
    ignore: "name",
    singleLine: true,
  });
}

/** A logger that drops everything: for unit tests and library use. */
export const silentLogger: Logger = pino({ level: "silent" });

/** A short message for an unknown thrown value, safe to log (no stack, no request objects). */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
