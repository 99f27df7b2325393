import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

export const REPO = fileURLToPath(new URL("../..", import.meta.url));
/**
 * The real CLI as users run the bin: the compiled JavaScript, kept current with src/ by
 * test/harness/buildSetup.ts.
 */
export const CLI_BIN = `${REPO}dist/cli.js`;

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  input?: string;
  timeoutMs?: number;
}

function cliEnv(extra: CliOptions["env"]): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, CI: "true", LOG_LEVEL: undefined };
  for (const key of Object.keys(env)) if (key.startsWith("MOTIONEYE_VAULT_")) delete env[key];
  return { ...env, ...extra };
}

/** Starts the CLI and returns the child (for `serve`, kills, signals). */
export function spawnCli(args: string[], opts: CliOptions = {}): ChildProcess {
  return spawn(process.execPath, [CLI_BIN, ...args], {
    cwd: opts.cwd ?? REPO,
    env: cliEnv(opts.env),
    stdio: ["pipe", "pipe", "pipe"],
  });
}

/** Runs the CLI to completion. */
export function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  const child = spawnCli(args, opts);
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  child.stdin?.end(opts.input ?? "");
  const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
