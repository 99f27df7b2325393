/**
 * The real `serve` (the CLI from source, as ./cli.ts runs it) as a tracked child: its log kept
 * and parsed (pino JSON lines on stderr), bounded waits for conditions, SIGTERM to stop.
 */
import type { ChildProcess } from "node:child_process";
import { spawnCli } from "./cli.js";
import { stopProcess, track } from "./processes.js";

/** How long a wait for `serve` may take on a machine busy with other tests. */
export const SERVE_WAIT_MS = 30_000;

/** One pino log line. */
export interface LogLine {
  level: number;
  msg?: string;
  [field: string]: unknown;
}

/** pino's numbers: 30 info, 40 warn, 50 error, 60 fatal. */
export const WARN = 40;

/** The real `serve` (the CLI from source), with everything it printed kept for assertions. */
export class ServeProcess {
  output = "";
  readonly child: ChildProcess;

  constructor(config: string, env: Record<string, string | undefined> = {}) {
    this.child = track(spawnCli(["serve", "--config", config], { env }), { name: "serve" });
    const keep = (d: Buffer) => {
      this.output += d.toString();
    };
    this.child.stdout?.on("data", keep);
    this.child.stderr?.on("data", keep);
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The JSON log lines (one object per line on stderr; a line still being written is skipped). */
  logLines(): LogLine[] {
    const lines: LogLine[] = [];
    for (const text of this.output.split("\n")) {
      if (!text.startsWith("{")) continue;
      try {
        const line = JSON.parse(text) as LogLine;
        if (typeof line.level === "number") lines.push(line);
      } catch {
        // the end of the output, mid-line
      }
    }
    return lines;
  }

  /** Log lines at warn level or above. */
  warnings(): LogLine[] {
    return this.logLines().filter((l) => l.level >= WARN);
  }

  /** Occurrences of `pattern` in the output after `from`. */
  count(pattern: RegExp, from = 0): number {
    return this.output.slice(from).match(new RegExp(pattern.source, "g"))?.length ?? 0;
  }

  async waitForOutput(pattern: RegExp, from = 0, times = 1): Promise<void> {
    await waitFor(() => this.count(pattern, from) >= times, `${pattern} x${times}`, this);
  }

  /** Like `waitFor`, but fails at once when serve exits. */
  async until(
    ok: () => boolean | Promise<boolean>,
    what: string,
    timeoutMs = SERVE_WAIT_MS,
  ): Promise<void> {
    await waitFor(
      async () => {
        if (await ok()) return true;
        if (!this.alive)
          throw new Error(
            `serve exited (${this.child.exitCode}) while waiting for ${what}\n${this.output.slice(-5000)}`,
          );
        return false;
      },
      what,
      this,
      timeoutMs,
    );
  }

  /** SIGTERM (SIGKILL if it hangs); resolves with the exit code. */
  async stop(): Promise<number | null> {
    await stopProcess(this.child, 12_000);
    return this.child.exitCode;
  }
}

/** Polls `ok` until it holds; the error names what was awaited and shows serve's last words. */
export async function waitFor(
  ok: () => boolean | Promise<boolean>,
  what: string,
  serve?: ServeProcess,
  timeoutMs = SERVE_WAIT_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}\nserve output:\n${serve?.output.slice(-5000)}`);
}
