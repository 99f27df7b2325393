import { pino } from "pino";

export type Logger = pino.Logger;

/**
 * The one logger. Structured JSON on stderr (stdout stays free for `--json` output and tables);
 * secrets are redacted by key name wherever they appear in a logged object.
 */
export function createLogger(opts: { level?: string; name?: string } = {}): Logger {
  return pino(
    {
      name: opts.name ?? "motioneye-vault",
      level: opts.level ?? "info",
      redact: {
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
      },
      base: undefined,
    },
    pino.destination({ fd: 2, sync: true }),
  );
}

/** A logger that drops everything: for unit tests and library use. */
export const silentLogger: Logger = pino({ level: "silent" });

/** A short message for an unknown thrown value, safe to log (no stack, no request objects). */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
