import { ftpSource, sftpDestination } from "../../test/harness/config.js";
/**
 * Real servers on loopback (the test harness's vsftpd and OpenSSH sshd), a vault config
 * pointing at them, and the real CLI run as users run it: timed, with its peak RSS and CPU time.
 */

import { spawn } from "node:child_process";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { writeNewIdentity } from "../../src/crypto/age/age.js";
import { tempDir, writeConfig } from "../../test/harness/files.js";
import { type FtpServer, startFtpServer } from "../../test/harness/ftp.js";
import { type SftpServer, startSftpServer } from "../../test/harness/sshd.js";
import { builtCli } from "./build.js";
import { onCleanup } from "./cleanup.js";
import { sampleProcess } from "./measure.js";
import { PIN } from "./references.js";

export interface BenchServers {
  ftp: FtpServer;
  sftp: SftpServer;
  /** Scratch directory for configs, state and restores. */
  work: string;
  /** An age identity made for this run. */
  identityFile: string;
  close(): Promise<void>;
}

export async function startServers(): Promise<BenchServers> {
  const [ftp, sftp, work] = await Promise.all([
    startFtpServer(),
    startSftpServer(),
    tempDir("mevault-bench-"),
  ]);
  const close = onCleanup(() =>
    Promise.allSettled([ftp.close(), sftp.close(), rm(work, { recursive: true, force: true })]),
  );
  const identityFile = join(work, "identity.txt");
  await writeNewIdentity(identityFile);
  return { ftp, sftp, work, identityFile, close };
}

/** The SFTP vault's transports: the default and the fast one (destination.transport). */
export const TRANSPORTS = ["ssh2", "openssh"] as const;
export type Transport = (typeof TRANSPORTS)[number];

/** A config for one benchmark vault: its own destination folder and state dir. */
export async function vaultConfig(
  s: BenchServers,
  name: string,
  over: {
    sync?: Record<string, unknown>;
    source?: Record<string, unknown>;
    /** destination.transport (unset: the default, ssh2). */
    transport?: Transport;
    /** Another vault's destination and state (e.g. to restore it over another transport). */
    sameVaultAs?: { destination: string; stateDir: string };
    /** Further sections (mqtt, telegram, schedule...), as they are. */
    sections?: Record<string, unknown>;
  } = {},
): Promise<{ file: string; destination: string; stateDir: string }> {
  const dir = join(s.work, name);
  const destination = over.sameVaultAs?.destination ?? join(s.sftp.root, name);
  const stateDir = over.sameVaultAs?.stateDir ?? join(dir, "state");
  await mkdir(dir, { recursive: true });
  const file = await writeConfig(dir, {
    source: ftpSource(s.ftp, { stableSeconds: 5, ...over.source }),
    destination: sftpDestination(
      s.sftp,
      destination,
      over.transport ? { transport: over.transport } : {},
    ),
    encryption: { identityFile: s.identityFile },
    state: { dir: stateDir },
    sync: { retries: 0, ...over.sync },
    ...over.sections,
  });
  return { file, destination, stateDir };
}

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Wall time of the whole process, start to exit. */
  wallMs: number;
  /** Peak RSS (VmHWM) of the CLI's node process, in bytes. */
  peakRss: number;
  /** CPU time (user + system) of the CLI's node process. */
  cpuMs: number;
}

/** The environment the CLI gets: no MOTIONEYE_VAULT_* leaking in from the shell, no TTY output. */
function cliEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, CI: "true" };
  delete env.LOG_LEVEL;
  for (const key of Object.keys(env)) if (key.startsWith("MOTIONEYE_VAULT_")) delete env[key];
  return env;
}

/**
 * Runs the CLI as users run the bin (compiled JavaScript, see build.ts) and samples its peak
 * RSS (VmHWM of the node process).
 */
export async function runCliMeasured(
  args: string[],
  timeoutMs = 300_000,
  /** Runs it on core 0 only (taskset), children too: a single-core machine's figure. */
  opts: { pin?: boolean } = {},
): Promise<CliRun> {
  const cli = await builtCli();
  const start = performance.now();
  // taskset execs the command: the pid sampled is node's either way.
  const [command, ...rest] = opts.pin
    ? [...PIN, process.execPath, cli, ...args]
    : [process.execPath, cli, ...args];
  const child = spawn(command as string, rest, {
    env: cliEnv(),
    stdio: ["pipe", "pipe", "pipe"],
  });
  const sampler = child.pid ? sampleProcess(child.pid) : undefined;
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  child.stdin?.end();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  let usage = { peakRss: 0, cpuMs: 0 };
  // The last sample is taken when the process is about to be reaped ('exit'), before 'close'.
  child.once("exit", () => {
    usage = sampler?.stop() ?? usage;
  });
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, wallMs: performance.now() - start, ...usage });
    });
  });
}

export interface SyncSummary {
  uploaded: number;
  failed: number;
  bytes: number;
  startedAt: string;
  finishedAt: string;
  error?: string;
}

/** `sync --json`, failing loudly when the run did not back everything up. */
export async function runSync(
  configFile: string,
  extra: string[] = [],
  opts: { pin?: boolean } = {},
): Promise<CliRun & { summary: SyncSummary; runMs: number }> {
  const run = await runCliMeasured(
    ["sync", "--config", configFile, "--json", ...extra],
    600_000,
    opts,
  );
  let summary: SyncSummary;
  try {
    summary = JSON.parse(run.stdout) as SyncSummary;
  } catch {
    throw new Error(`sync exited ${run.code} without a JSON summary: ${run.stderr.slice(-2000)}`);
  }
  if (run.code !== 0 || summary.failed > 0) {
    throw new Error(`sync failed (exit ${run.code}): ${summary.error ?? run.stderr.slice(-2000)}`);
  }
  const runMs = Date.parse(summary.finishedAt) - Date.parse(summary.startedAt);
  return { ...run, summary, runMs };
}
