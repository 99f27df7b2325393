/**
 * The real `serve` (the CLI from source, as ./cli.ts runs it) as a tracked child: its log kept
 * and parsed (pino JSON lines on stderr), a bounded wait for conditions, SIGTERM to stop.
 */
import type { ChildProcess } from "node:child_process";
import { spawnCli } from "./cli.js";
import { stopProcess, track } from "./processes.js";

/** One pino log line. */
export interface LogLine {
  level: number;
  msg?: string;
  [field: string]: unknown;
}

/** pino's numbers: 30 info, 40 warn, 50 error, 60 fatal. */
export const WARN = 40;

export class ServeProcess {
  output = "";
  readonly child: ChildProcess;
  private exited: Promise<number | null>;

  constructor(configFile: string, opts: { env?: Record<string, string | undefined> } = {}) {
    this.child = track(spawnCli(["serve", "--config", configFile], { env: opts.env }), {
      name: "serve",
    });
    const keep = (d: Buffer) => {
      this.output += d.toString();
    };
    this.child.stdout?.on("data", keep);
    this.child.stderr?.on("data", keep);
    this.child.stdin?.end();
    this.exited = new Promise((resolve) => this.child.once("exit", (code) => resolve(code)));
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Every JSON log line so far (other output, e.g. a stack trace, is skipped). */
  logLines(): LogLine[] {
    const lines: LogLine[] = [];
    for (const text of this.output.split("\n")) {
      if (!text.startsWith("{")) continue;
      try {
        const line = JSON.parse(text) as LogLine;
        if (typeof line.level === "number") lines.push(line);
      } catch {
        // not a log line
      }
    }
    return lines;
  }

  /** Log lines at warn level or above. */
  warnings(): LogLine[] {
    return this.logLines().filter((l) => l.level >= WARN);
  }

  tail(chars = 6000): string {
    return this.output.slice(-chars);
  }

  /** Polls `ok` every 100 ms until it holds; fails after `timeoutMs` or when serve exits. */
  async until(ok: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await ok()) return;
      if (!this.alive) {
        throw new Error(
          `serve exited (${this.child.exitCode}) while waiting for ${what}\n${this.tail()}`,
        );
      }
      if (Date.now() > deadline) {
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${what}\nserve output:\n${this.tail()}`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** SIGTERM, as systemd and Docker stop it; resolves with the exit code. */
  async stop(timeoutMs = 15_000): Promise<number | null> {
    await stopProcess(this.child, timeoutMs);
    return this.exited;
  }
}
