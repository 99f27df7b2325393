/**
 * Spawned test servers, tracked by PID so they are always stopped.
 *
 * Every server is spawned `detached` (its own process group). sshd and vsftpd fork one process
 * per connection and those call setsid(), leaving the group, so stopping a server also
 * stops its descendants, found through /proc before the leader dies (a server stopped in a
 * test must drop its open connections, like a real crash would). Three layers make sure
 * nothing outlives the test process:
 *  1. `stopProcess` (SIGTERM to the group, then SIGKILL after a timeout) in `afterAll`;
 *  2. a `process.on("exit")` hook that SIGKILLs whatever is still tracked (a crashed test,
 *     a forgotten `stop()`);
 *  3. a tiny `/bin/sh` watchdog per test process that holds the read end of a pipe and is told
 *     every PID (and temporary folder); when the test process dies in any way (even SIGKILL,
 *     when no hook runs) the pipe reaches EOF and the watchdog kills the remaining process
 *     trees and deletes the folders registered with `removeOnExit`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";

const DEBUG = Boolean(process.env.MEVAULT_HARNESS_DEBUG);
const OUTPUT_LIMIT = 64 * 1024;

interface Tracked {
  name: string;
  group: boolean;
}

interface Registry {
  children: Map<ChildProcess, Tracked>;
  tempDirs: Set<string>;
  watchdog: ChildProcess | null;
}

// One registry per process, even when a test runner evaluates this module more than once.
const REGISTRY_KEY = Symbol.for("motioneye-vault.test-harness.processes");
const registry: Registry = (() => {
  const holder = globalThis as unknown as Record<symbol, Registry | undefined>;
  const existing = holder[REGISTRY_KEY];
  if (existing) return existing;
  const created: Registry = { children: new Map(), tempDirs: new Set(), watchdog: null };
  holder[REGISTRY_KEY] = created;
  process.on("exit", () => {
    for (const [child, info] of created.children) {
      const tree = child.pid ? descendantsOf(child.pid) : [];
      killNow(child, info.group, "SIGKILL");
      killPids(tree, "SIGKILL");
    }
    for (const dir of created.tempDirs) {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // best effort
      }
    }
  });
  return created;
})();

/** Parent PID and state of a process from /proc (null when gone or not on Linux). */
function procStat(pid: number): { ppid: number; state: string } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { state: fields[0] ?? "", ppid: Number(fields[1]) };
  } catch {
    return null;
  }
}

/** Every descendant PID of `pid` (children, grandchildren, ...), from /proc. */
export function descendantsOf(pid: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const st = procStat(Number(name));
    if (!st) continue;
    const list = children.get(st.ppid);
    if (list) list.push(Number(name));
    else children.set(st.ppid, [Number(name)]);
  }
  const out: number[] = [];
  const queue = [pid];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    for (const c of children.get(next) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

/** True while `pid` exists and is not a zombie. */
export function pidAlive(pid: number): boolean {
  const st = procStat(pid);
  if (st) return st.state !== "Z" && st.state !== "X";
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function killPids(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

function isAlive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function killNow(child: ChildProcess, group: boolean, signal: NodeJS.Signals): void {
  const pid = child.pid;
  if (!pid) return;
  if (group) {
    try {
      process.kill(-pid, signal);
      return;
    } catch {
      // the group is gone (or never existed): fall back to the PID itself
    }
  }
  if (!isAlive(child)) return;
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

const WATCHDOG_SCRIPT = `
trap '' INT TERM HUP
tree() {
  for t in /proc/$1/task/*/children; do
    [ -r "$t" ] || continue
    for c in $(cat "$t" 2>/dev/null); do tree "$c"; done
  done
  echo "$1"
}
pids=""
dirs=""
nl="
"
while IFS= read -r line; do
  case "$line" in
    +*) pids="$pids \${line#+}" ;;
    -*) gone="\${line#-}"; keep=""; for p in $pids; do [ "$p" = "$gone" ] || keep="$keep $p"; done; pids="$keep" ;;
    d*) dirs="$dirs$nl\${line#d}" ;;
    u*)
      gone="\${line#u}"; keep=""
      IFS="$nl"; for d in $dirs; do [ "$d" = "$gone" ] || keep="$keep$nl$d"; done; unset IFS
      dirs="$keep" ;;
  esac
done
all=""
for p in $pids; do all="$all $(tree "$p")"; done
for p in $pids; do kill -KILL -- "-$p" 2>/dev/null; done
for p in $all; do kill -KILL "$p" 2>/dev/null; done
IFS="$nl"; for d in $dirs; do [ -n "$d" ] && rm -rf -- "$d"; done
exit 0
`;

function watchdog(): ChildProcess | null {
  if (registry.watchdog && isAlive(registry.watchdog)) return registry.watchdog;
  try {
    const dog = spawn("/bin/sh", ["-c", WATCHDOG_SCRIPT], {
      detached: true,
      stdio: ["pipe", "ignore", "ignore"],
    });
    dog.on("error", () => {});
    dog.stdin?.on("error", () => {});
    dog.unref();
    (dog.stdin as unknown as net.Socket | null)?.unref?.();
    registry.watchdog = dog;
    return dog;
  } catch {
    return null;
  }
}

function tellWatchdog(line: string): void {
  const dog = watchdog();
  if (dog?.stdin?.writable) dog.stdin.write(`${line}\n`);
}

/**
 * Registers a spawned child so it is killed when the test process exits. `group: true` when
 * it was spawned `detached` (its PID is its process group id), so the whole group is killed.
 */
export function track<T extends ChildProcess>(
  child: T,
  opts: { name?: string; group?: boolean } = {},
): T {
  const pid = child.pid;
  if (!pid) return child;
  const info: Tracked = { name: opts.name ?? String(child.spawnfile), group: opts.group ?? false };
  registry.children.set(child, info);
  tellWatchdog(`+${pid}`);
  child.once("exit", () => {
    // the leader is gone; sweep any leftover members of its group, then forget it
    if (info.group) killNow(child, true, "SIGKILL");
    registry.children.delete(child);
    tellWatchdog(`-${pid}`);
  });
  return child;
}

/**
 * Deletes `dir` when the test process exits (for servers never `close()`d). Returns a
 * function that forgets it again (call it after deleting the folder yourself).
 */
export function removeOnExit(dir: string): () => void {
  if (dir.includes("\n")) throw new Error("removeOnExit: no newlines in paths, please");
  registry.tempDirs.add(dir);
  tellWatchdog(`d${dir}`);
  return () => {
    registry.tempDirs.delete(dir);
    tellWatchdog(`u${dir}`);
  };
}

/** PIDs of the tracked children that are still running (for tests of the harness itself). */
export function trackedPids(): number[] {
  return [...registry.children.keys()].filter(isAlive).flatMap((c) => (c.pid ? [c.pid] : []));
}

function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (!isAlive(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off("exit", onExit);
      resolve(false);
    }, timeoutMs);
    const onExit = () => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once("exit", onExit);
  });
}

async function waitPidsGone(pids: number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let left = pids.filter(pidAlive);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    left = left.filter(pidAlive);
  }
  return left;
}

/**
 * Stops a child and everything it spawned: SIGTERM to it (its process group when tracked as
 * one) and to its descendants, SIGKILL after `timeoutMs` for whatever still runs. Resolves
 * once all of them are gone. Safe to call twice.
 */
export async function stopProcess(child: ChildProcess, timeoutMs = 5000): Promise<void> {
  const group = registry.children.get(child)?.group ?? false;
  // collect the tree first: once the leader is gone its children are re-parented
  const tree = child.pid ? descendantsOf(child.pid) : [];
  if (isAlive(child)) {
    killNow(child, group, "SIGTERM");
    killPids(tree, "SIGTERM");
    if (!(await waitExit(child, timeoutMs))) {
      killNow(child, group, "SIGKILL");
      if (!(await waitExit(child, 5000))) {
        throw new Error(`stopProcess: PID ${child.pid} did not exit after SIGKILL`);
      }
    }
  }
  if (group) killNow(child, true, "SIGKILL");
  const stubborn = await waitPidsGone(tree, Math.min(timeoutMs, 1000));
  killPids(stubborn, "SIGKILL");
  const left = await waitPidsGone(stubborn, 5000);
  if (left.length > 0) throw new Error(`stopProcess: PIDs ${left.join(", ")} survived SIGKILL`);
}

/** A spawned, tracked server with the tail of its output kept for error messages. */
export interface ServerChild {
  name: string;
  child: ChildProcess;
  pid: number;
  /** The last 64 KiB of its stdout+stderr. */
  output(): string;
  stop(timeoutMs?: number): Promise<void>;
}

/**
 * Spawns a long-running server in its own process group, tracked for cleanup. Its stdio is
 * drained into a small ring buffer (set MEVAULT_HARNESS_DEBUG=1 to also see it live). The
 * child and its pipes are unref'd: a forgotten server never keeps the test process alive (the
 * exit hook and the watchdog then kill it).
 */
export function spawnServer(
  command: string,
  args: string[],
  opts: { name?: string; cwd?: string; env?: NodeJS.ProcessEnv } = {},
): ServerChild {
  const name = opts.name ?? command;
  const child = spawn(command, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const onData = (chunk: Buffer) => {
    out += chunk.toString("utf8");
    if (out.length > OUTPUT_LIMIT) out = out.slice(out.length - OUTPUT_LIMIT);
    if (DEBUG) process.stderr.write(`[${name}] ${chunk.toString("utf8")}`);
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  let spawnError: Error | null = null;
  child.on("error", (err) => {
    spawnError = err;
    out += `\n[spawn error] ${err.message}\n`;
  });
  child.unref();
  (child.stdout as unknown as net.Socket | null)?.unref?.();
  (child.stderr as unknown as net.Socket | null)?.unref?.();
  if (!child.pid) {
    throw new Error(`could not start ${name} (${command}): ${spawnError ?? "no PID"}`);
  }
  track(child, { name, group: true });
  return {
    name,
    child,
    pid: child.pid,
    output: () => out,
    stop: (timeoutMs = 5000) => stopProcess(child, timeoutMs),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function tryConnect(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.removeAllListeners();
      socket.on("error", () => {});
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/**
 * Polls until something accepts TCP connections on host:port (default 127.0.0.1). When
 * `server` is given, fails at once if that process exits first, with its output in the error.
 */
export async function waitForPort(
  port: number,
  timeoutMs = 5000,
  opts: { host?: string; server?: ServerChild; child?: ChildProcess } = {},
): Promise<void> {
  const host = opts.host ?? "127.0.0.1";
  const child = opts.server?.child ?? opts.child;
  const deadline = Date.now() + timeoutMs;
  const describe = () => {
    const name = opts.server?.name ?? (child ? String(child.spawnfile) : "server");
    const output = opts.server?.output().trim();
    return `${name}${child?.pid ? ` (PID ${child.pid})` : ""}${output ? `; its output:\n${output}` : ""}`;
  };
  for (;;) {
    if (child && !isAlive(child)) {
      throw new Error(
        `${describe()}\nexited (code ${child.exitCode}, signal ${child.signalCode}) before listening on ${host}:${port}`,
      );
    }
    if (await tryConnect(host, port, 500)) return;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${host}:${port}: ${describe()}`);
    }
    await sleep(15);
  }
}

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a short command to completion (stdin: `input`, or /dev/null). Rejects on a non-zero
 * exit (unless `allowFailure`) or after `timeoutMs` (then the command is killed).
 */
export function runCommand(
  command: string,
  args: string[],
  opts: {
    input?: string | Buffer;
    timeoutMs?: number;
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    allowFailure?: boolean;
  } = {},
): Promise<CommandResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    track(child, { name: command });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout?.on("data", (c: Buffer) => stdout.push(c));
    child.stderr?.on("data", (c: Buffer) => stderr.push(c));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`${command}: ${err.message}`));
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      const result: CommandResult = {
        code,
        signal,
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderr: Buffer.concat(stderr).toString("utf8"),
      };
      const line = `${command} ${args.join(" ")}`;
      if (timedOut) {
        reject(new Error(`${line}: timed out after ${timeoutMs} ms\n${result.stderr}`));
      } else if (code !== 0 && !opts.allowFailure) {
        reject(new Error(`${line}: exit ${code ?? signal}\n${result.stderr}${result.stdout}`));
      } else {
        resolve(result);
      }
    });
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on("error", () => {});
      child.stdin.end(opts.input);
    }
  });
}

/** A server that tests stop and start again on the same port (restarts, outages). */
export interface RestartableServer {
  /** Spawns it (no-op while it runs) and waits for its port. */
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly running: boolean;
  /** Its process id while it runs, else null. */
  readonly pid: number | null;
  output(): string;
}

/**
 * The start/stop lifecycle shared by the harness's servers. `spawn` is called on every start,
 * so it may read state that changed in between (a rotated host key); `explain` adds context
 * (e.g. the server's own log) to a start that failed.
 */
export function restartableServer(
  spawn: () => ServerChild,
  port: number,
  explain?: () => Promise<string>,
): RestartableServer {
  let server: ServerChild | null = null;
  const running = () =>
    server !== null && server.child.exitCode === null && server.child.signalCode === null;
  return {
    async start() {
      if (running()) return;
      const s = spawn();
      server = s;
      try {
        await waitForPort(port, 10_000, { server: s });
      } catch (err) {
        await s.stop().catch(() => {});
        const context = explain ? await explain() : "";
        if (!context) throw err;
        throw new Error(`${err instanceof Error ? err.message : err}\n${context}`);
      }
    },
    async stop() {
      const s = server;
      server = null;
      if (s) await s.stop();
    },
    get running() {
      return running();
    },
    get pid() {
      return running() ? (server as ServerChild).pid : null;
    },
    output: () => server?.output() ?? "",
  };
}
