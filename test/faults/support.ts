/**
 * Shared by the faults suite: real servers, a seeded PRNG for fault points and fuzz inputs, and
 * the checks that say whether anything was lost or half-written.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { expect } from "vitest";
import { ageCliDecrypt } from "../harness/age.js";
import { type CliResult, runCli, spawnCli } from "../harness/cli.js";
import { ftpSource, sftpDestination } from "../harness/config.js";
import { sha256, tempDir, walk, writeConfig } from "../harness/files.js";
import { type FtpServer, startFtpServer, type WrittenClip } from "../harness/ftp.js";
import { track } from "../harness/processes.js";
import { type SftpServer, startSftpServer } from "../harness/sshd.js";
import { count } from "./counters.js";

/** mulberry32: small, fast, deterministic. Every fault point and fuzz input comes from one. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  pick<T>(items: readonly T[]): T {
    const item = items[this.int(0, items.length - 1)];
    if (item === undefined) throw new Error("pick from an empty list");
    return item;
  }
  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = this.int(0, 255);
    return out;
  }
}

/** The seed for a test; FAULTS_SEED=<n> replays a run. */
export function seedFor(name: string): number {
  const base = Number(process.env.FAULTS_SEED ?? 20240501);
  let h = base >>> 0;
  for (const ch of name) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  return h;
}

/** The SFTP vault's transports (destination.transport); fault tests run over each. */
export const SFTP_TRANSPORTS = ["ssh2", "openssh"] as const;
export type SftpTransport = (typeof SFTP_TRANSPORTS)[number];

/** A camera FTP server, an SFTP vault and a work folder with the age identity. */
export interface Lab {
  ftp: FtpServer;
  sftp: SftpServer;
  work: string;
  identityFile: string;
  /** destination.transport of every scenario's SFTP vault (unset: the default, ssh2). */
  transport?: SftpTransport;
  close(): Promise<void>;
}

export async function startLab(opts: { transport?: SftpTransport } = {}): Promise<Lab> {
  const [ftp, sftp, work] = await Promise.all([startFtpServer(), startSftpServer(), tempDir()]);
  return {
    ftp,
    sftp,
    work,
    transport: opts.transport,
    identityFile: join(work, "identity.txt"),
    close: async () => {
      await Promise.allSettled([ftp.close(), sftp.close()]);
      await rm(work, { recursive: true, force: true });
    },
  };
}

export interface Scenario {
  name: string;
  /** Folder of its config file and state. */
  dir: string;
  cfg: string;
  stateDir: string;
  /** Absolute path of destination.path on the SFTP server (or the local destination). */
  dest: string;
}

type Tree = Record<string, unknown>;

/**
 * A config for one scenario: vsftpd -> age -> sshd, its own state and destination folder,
 * small timeouts (a stalled server fails in seconds, not minutes), no retries (each fault is
 * seen as a failed clip), debug logs (the tests follow the run through them).
 */
export async function scenario(
  lab: Lab,
  name: string,
  over: {
    source?: Tree;
    destination?: Tree;
    sync?: Tree;
    state?: { dir: string };
    top?: Tree;
  } = {},
): Promise<Scenario> {
  const dir = join(lab.work, name);
  const stateDir = over.state?.dir ?? join(dir, "state");
  const localDest = over.destination?.type === "local" ? over.destination.path : undefined;
  const dest = typeof localDest === "string" ? localDest : join(lab.sftp.root, name);
  await mkdir(dir, { recursive: true });
  const cfg = await writeConfig(dir, {
    source: ftpSource(lab.ftp, { stableSeconds: 5, timeoutSeconds: 3, ...over.source }),
    // A local vault takes a local vault's keys only (the config is strict).
    destination:
      typeof localDest === "string"
        ? over.destination
        : sftpDestination(lab.sftp, dest, {
            timeoutSeconds: 3,
            ...(lab.transport ? { transport: lab.transport } : {}),
            ...over.destination,
          }),
    encryption: { identityFile: lab.identityFile },
    state: { dir: stateDir, ...over.state },
    sync: { retries: 0, ...over.sync },
    log: { level: "debug" },
    ...over.top,
  });
  return { name, dir, cfg, stateDir, dest };
}

/** `n` clips of 100 KB - 1.2 MB (by default) for one camera and day, settled. */
export async function writeClips(
  ftp: FtpServer,
  rng: Rng,
  camera: string,
  date: string,
  n: number,
  sizes: [number, number] = [100_000, 1_200_000],
  /** mtime of the first clip (the next ones a second apart); the plan goes oldest first. */
  since = Date.now() - 3600_000,
): Promise<WrittenClip[]> {
  const out: WrittenClip[] = [];
  for (let i = 0; i < n; i++) {
    const name = `${String(10 + i).padStart(2, "0")}-00-00.mp4`;
    const mtime = new Date(since + i * 1000);
    out.push(await ftp.writeClip(`${camera}/${date}/${name}`, rng.int(...sizes), mtime));
  }
  return out;
}

/** `list --json` through the CLI: the manifest as the program reads it. */
export async function listClips(s: Scenario): Promise<ManifestEntry[]> {
  const listed = await runCli(["list", "--config", s.cfg, "--json"]);
  expect(listed.code, listed.stderr).toBe(0);
  return JSON.parse(listed.stdout) as ManifestEntry[];
}

export function sync(s: Scenario, args: string[] = [], timeoutMs = 60_000): Promise<CliResult> {
  return runCli(["sync", "--config", s.cfg, ...args], { timeoutMs });
}

export interface Running {
  child: ChildProcess;
  /** stdout + stderr so far. */
  output(): string;
  stdout(): string;
  /** Occurrences of `pattern` in the output. */
  count(pattern: RegExp): number;
  exited: Promise<number | null>;
}

/** Starts a CLI command (tracked: killed with the test process) and collects its output. */
export function startCli(args: string[], env?: Record<string, string>): Running {
  const child = track(spawnCli(args, { env }), { name: args[0] ?? "cli" });
  let out = "";
  let stdout = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
    stdout += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stdin?.end();
  const exited = new Promise<number | null>((resolve) =>
    child.on("close", (code) => resolve(code)),
  );
  return {
    child,
    output: () => out,
    stdout: () => stdout,
    count: (pattern) => out.match(new RegExp(pattern.source, "g"))?.length ?? 0,
    exited,
  };
}

export function startSync(s: Scenario, args: string[] = []): Running {
  return startCli(["sync", "--config", s.cfg, ...args]);
}

/** Polls `cond` every 10 ms until it holds; fails after `timeoutMs`. */
export async function until(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface ManifestEntry {
  id: string;
  size: number;
  sha256?: string;
  remotePath: string;
  remoteSize: number;
}

/**
 * The manifest as it is on disk, read with JSON.parse: it must be readable after any crash.
 * (lowdb leaves `.<name>.tmp` files when killed mid-write; those are not the manifest.)
 */
export async function readManifest(stateDir: string): Promise<{
  clips: ManifestEntry[];
  totals: { clips: number; bytes: number };
}> {
  const dir = join(stateDir, "manifest");
  const clips: ManifestEntry[] = [];
  const names = existsSync(dir) ? await readdir(dir) : [];
  for (const name of names.filter((n) => /^\d{4}-\d\d-\d\d\.json$/.test(n))) {
    const doc = JSON.parse(await readFile(join(dir, name), "utf8")) as {
      clips: Record<string, ManifestEntry>;
    };
    clips.push(...Object.values(doc.clips));
  }
  const statePath = join(stateDir, "state.json");
  const state = existsSync(statePath)
    ? (JSON.parse(await readFile(statePath, "utf8")) as {
        totals: { clips: number; bytes: number };
      })
    : { totals: { clips: 0, bytes: 0 } };
  return { clips, totals: state.totals };
}

const PART = /\.part-[A-Za-z0-9]+$/;

const checked = new Set<string>();

/**
 * What must hold after any fault, before any clean-up run: every file under a final `.age`
 * name decrypts (Debian's age) to exactly its clip, and every manifest entry has that file.
 * Returns the number of final files checked.
 */
export async function checkNothingHalfDone(
  s: Scenario,
  lab: Lab,
  clips: readonly WrittenClip[],
): Promise<number> {
  const byId = new Map(clips.map((c) => [c.relPath, c]));
  const files = (await walk(s.dest)).filter((f) => !PART.test(f));
  for (const f of files) {
    const clip = byId.get(f.replace(/\.age$/, ""));
    expect(clip, `unexpected file on the destination: ${f}`).toBeDefined();
    // A final name only ever changes by a rename onto it (new inode): decrypt each version once.
    const st = await stat(join(s.dest, f));
    const version = `${s.dest}/${f}:${st.ino}:${st.mtimeMs}:${st.size}`;
    if (checked.has(version)) continue;
    const plain = await ageCliDecrypt(join(s.dest, f), lab.identityFile);
    expect(sha256(plain), `${f} under its final name is not the whole clip`).toBe(clip?.sha256);
    checked.add(version);
  }
  const { clips: recorded } = await readManifest(s.stateDir);
  const onDisk = new Set(files);
  for (const r of recorded) {
    expect(onDisk.has(r.remotePath), `manifest entry ${r.id} has no file`).toBe(true);
    expect(r.sha256).toBe(byId.get(r.id)?.sha256);
  }
  return files.length;
}

/**
 * After the scenario's clean run: every clip is on the destination exactly once under
 * `<id>.age`, decrypts with Debian's age to the source bytes, is in the manifest once with its
 * sha256, the totals in state.json agree with the shards, and no `.part` stray is left. Counts
 * verified and lost clips. Only the clips' cameras are compared (`serve` backs up every camera
 * on the server, other scenarios' too).
 */
export async function verifyVault(
  s: Scenario,
  lab: Lab,
  clips: readonly WrittenClip[],
): Promise<void> {
  const cameras = new Set(clips.map((c) => c.relPath.split("/")[0]));
  const ofCameras = (id: string) => cameras.has(id.split("/")[0]);
  const allFiles = await walk(s.dest);
  // The clean run before this read the same files through lowdb (exit 0 says it could).
  const { clips: allEntries, totals } = await readManifest(s.stateDir);

  let verified = 0;
  let lost = 0;
  for (const clip of clips) {
    const file = join(s.dest, `${clip.relPath}.age`);
    const entry = allEntries.filter((e) => e.id === clip.relPath);
    let ok = existsSync(file) && entry.length === 1 && entry[0]?.sha256 === clip.sha256;
    if (ok) ok = sha256(await ageCliDecrypt(file, lab.identityFile)) === clip.sha256;
    if (ok) verified++;
    else lost++;
  }
  count(s.name, { verified, lost });
  expect(lost, "clips not safely in the vault").toBe(0);
  expect(
    allFiles.filter((f) => PART.test(f)),
    "`.part` strays on the destination",
  ).toEqual([]);
  expect(allFiles.filter(ofCameras)).toEqual(clips.map((c) => `${c.relPath}.age`).sort());
  expect(
    allEntries
      .map((e) => e.id)
      .filter(ofCameras)
      .sort(),
  ).toEqual(clips.map((c) => c.relPath).sort());
  expect(totals, "state.json totals").toEqual({
    clips: allEntries.length,
    bytes: allEntries.reduce((n, e) => n + e.size, 0),
  });
}
