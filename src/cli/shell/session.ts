import { readdirSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import type { AgeVault } from "../../crypto/ageVault.js";
import type { ClipRecord, Manifest } from "../../manifest/manifest.js";
import {
  type RestoreItem,
  type RestoreManyHooks,
  type RestoreManySummary,
  restoreMany,
} from "../../restore/restore.js";
import { clipTime, formatBytes, isoSeconds } from "../../util/format.js";
import { errorMessage } from "../../util/log.js";
import { splitWords } from "./args.js";
import { ClipTree, display, resolvePath, type TreePath } from "./tree.js";

/**
 * The restore shell's commands, independent of readline: `run(line)` executes one line, output
 * goes to `out`, problems to `err`. The original DownloadAndDecrypt.py's pseudo-shell, done
 * properly: folders are cameras and days, `get`/`mget` restore (decrypt + sha256 check) into the
 * local folder set with `lcd`.
 */

export interface ShellIo {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  /** Progress bars for get/mget (a terminal), or one line per clip. */
  progress(items: readonly RestoreItem[]): { hooks: RestoreManyHooks; stop(): void };
  jobs: number;
}

const HELP: Array<[string, string]> = [
  ["ls [PATH|GLOB...]", "list a folder (cameras, days) or clips"],
  ["cd [PATH]", "change folder (`..` up, `/` the top; no argument: the top)"],
  ["pwd", "show the current folder"],
  ["get [-f] CLIP [LOCAL]", "restore one clip into the local folder (or to LOCAL)"],
  ["mget [-f] GLOB|FOLDER...", "restore many, e.g. `mget *`, `mget 2024-05-0?/*`, `mget Camera1`"],
  ["lcd [DIR]", "change (or show) the local folder files are restored into"],
  ["info PATH...", "details of a clip (size, sha256, format, remote path) or a folder"],
  ["refresh", "read the manifest again (clips backed up since the shell started)"],
  ["help", "this list"],
  ["exit", "leave (also quit, or Ctrl-D)"],
];

export const COMMANDS = [
  "ls",
  "cd",
  "pwd",
  "get",
  "mget",
  "lcd",
  "lpwd",
  "info",
  "refresh",
  "help",
  "exit",
  "quit",
];

/** Commands whose arguments are paths in the vault (for completion). */
const REMOTE_ARGS = new Set(["ls", "cd", "get", "mget", "info"]);

/** What the shell reads from and restores with. */
export interface ShellDeps {
  vault: AgeVault;
  manifest: Pick<Manifest, "all">;
  /** Where a clip sits in the shell's tree (default: its id). */
  pathOf?: (clip: ClipRecord) => string;
}

export class ShellSession {
  cwd: TreePath = [];
  localDir: string;
  /** Commands that failed (exit status of a scripted session). */
  failures = 0;
  private current: AbortController | undefined;

  private tree: ClipTree;

  constructor(
    private readonly deps: ShellDeps,
    clips: readonly ClipRecord[],
    private readonly io: ShellIo,
    localDir: string,
  ) {
    this.tree = new ClipTree(clips, deps.pathOf);
    this.localDir = resolve(localDir);
  }

  static async open(deps: ShellDeps, io: ShellIo, localDir: string): Promise<ShellSession> {
    return new ShellSession(deps, await deps.manifest.all(), io, localDir);
  }

  get clipCount(): number {
    return this.tree.size;
  }

  prompt(): string {
    return `vault:${display(this.cwd)}> `;
  }

  /** Stops a transfer under way (Ctrl-C); true when there was one. */
  interrupt(): boolean {
    if (!this.current) return false;
    this.current.abort();
    return true;
  }

  /** Runs one line; false when the session should end. */
  async run(line: string): Promise<boolean> {
    let words: string[];
    try {
      words = splitWords(line);
    } catch (err) {
      return this.fail(errorMessage(err));
    }
    const [cmd, ...args] = words;
    if (cmd === undefined || cmd.startsWith("#")) return true;
    try {
      switch (cmd) {
        case "exit":
        case "quit":
        case "bye":
          return false;
        case "help":
        case "?":
          this.help();
          return true;
        case "ls":
        case "dir":
          return this.ls(args);
        case "cd":
          return this.cd(args);
        case "pwd":
          this.print(display(this.cwd));
          return true;
        case "lcd":
          return this.lcd(args);
        case "lpwd":
          this.print(this.localDir);
          return true;
        case "info":
          return this.info(args);
        case "get":
          return await this.get(args);
        case "mget":
          return await this.mget(args);
        case "refresh":
          this.tree = new ClipTree(await this.deps.manifest.all(), this.deps.pathOf);
          this.print(`${this.tree.size} clip(s) in the vault`);
          return true;
        default:
          return this.fail(`unknown command "${cmd}" (help lists them)`);
      }
    } catch (err) {
      return this.fail(errorMessage(err));
    }
  }

  private print(text: string): void {
    this.io.out.write(`${text}\n`);
  }

  private fail(message: string): true {
    this.failures++;
    this.io.err.write(`${message}\n`);
    return true;
  }

  private help(): void {
    const w = Math.max(...HELP.map(([c]) => c.length));
    for (const [c, d] of HELP) this.print(`  ${c.padEnd(w)}  ${d}`);
  }

  private ls(args: string[]): boolean {
    const targets = args.length ? args : ["."];
    for (const arg of targets) {
      const paths = this.tree.expand(this.cwd, arg);
      if (paths.length === 0) {
        this.fail(`ls: ${arg}: no such folder or clip`);
        continue;
      }
      for (const p of paths) {
        const clip = this.tree.clip(p);
        if (clip) {
          this.print(clipLine(clip, p[p.length - 1] as string));
          continue;
        }
        if (targets.length > 1 || paths.length > 1) this.print(`${display(p)}:`);
        const e = this.tree.entries(p);
        if (!e) continue;
        for (const d of e.dirs) {
          this.print(
            `  ${`${d.name}/`.padEnd(24)} ${String(d.count).padStart(6)} clip(s)  ${formatBytes(d.bytes).padStart(9)}`,
          );
        }
        for (const c of e.files) this.print(clipLine(c, c.id.slice(c.id.lastIndexOf("/") + 1)));
        if (e.dirs.length === 0 && e.files.length === 0)
          this.print("  (empty: no clips in the vault yet)");
      }
    }
    return true;
  }

  /** One folder, from a path or a glob that names exactly one. */
  private oneDir(arg: string): TreePath {
    const paths = this.tree.expand(this.cwd, arg);
    if (paths.length === 0) throw new Error(`${arg}: no such folder`);
    if (paths.length > 1) throw new Error(`${arg}: names ${paths.length} folders`);
    const p = paths[0] as TreePath;
    if (!this.tree.isDir(p)) throw new Error(`${arg}: is a clip, not a folder (get restores it)`);
    return p;
  }

  private cd(args: string[]): boolean {
    if (args.length > 1) return this.fail("usage: cd [PATH]");
    this.cwd = args[0] === undefined ? [] : this.oneDir(args[0]);
    return true;
  }

  private lcd(args: string[]): boolean {
    if (args.length > 1) return this.fail("usage: lcd [DIR]");
    if (args[0] !== undefined) {
      const dir = resolve(this.localDir, args[0]);
      let isDir = false;
      try {
        isDir = statSync(dir).isDirectory();
      } catch {
        isDir = false;
      }
      if (!isDir) return this.fail(`lcd: ${dir}: no such local folder`);
      this.localDir = dir;
    }
    this.print(`local folder: ${this.localDir}`);
    return true;
  }

  private info(args: string[]): boolean {
    if (args.length === 0) args = ["."];
    for (const arg of args) {
      const paths = this.tree.expand(this.cwd, arg);
      if (paths.length === 0) {
        this.fail(`info: ${arg}: no such folder or clip`);
        continue;
      }
      for (const p of paths) {
        const clip = this.tree.clip(p);
        if (!clip) {
          const s = this.tree.stats(p);
          this.print(
            `${display(p)}: folder, ${s?.count ?? 0} clip(s), ${formatBytes(s?.bytes ?? 0)}`,
          );
          continue;
        }
        const legacy = clip.format === "fernet";
        const rows: Array<[string, string]> = [
          ["clip id", clip.id],
          ["camera", clip.camera],
          ["date", `${clip.date} ${clipTime(clip.name)}`],
          [
            "size",
            legacy && !clip.sha256
              ? `at least ${formatBytes(clip.size)} (legacy: exact once read)`
              : `${formatBytes(clip.size)} (${clip.size} bytes)`,
          ],
          ["sha256", clip.sha256 ?? "(not recorded)"],
          ["format", legacy ? "legacy Fernet (encryption.fernetKeyFile)" : "age"],
          ["remote", `${clip.remotePath} (${formatBytes(clip.remoteSize)})`],
          ["backed up", clip.uploadedAt],
          ["modified", clip.mtimeMs > 0 ? isoSeconds(clip.mtimeMs) : "unknown"],
          ...(clip.incomplete
            ? [
                ["state", "incomplete: its recording was cut off (restore --repair)"] as [
                  string,
                  string,
                ],
              ]
            : []),
        ];
        for (const [k, v] of rows) this.print(`  ${k.padEnd(10)} ${v}`);
      }
    }
    return true;
  }

  /** Where a clip goes locally: its path below the current folder, under the local folder. */
  private localTarget(p: TreePath): string {
    const below =
      p.length > this.cwd.length && this.cwd.every((s, i) => p[i] === s)
        ? p.slice(this.cwd.length)
        : p.slice(-1);
    return join(this.localDir, ...below);
  }

  private async get(args: string[]): Promise<boolean> {
    const force = args.includes("-f") || args.includes("--force");
    const rest = args.filter((a) => a !== "-f" && a !== "--force");
    if (rest.length === 0 || rest.length > 2) return this.fail("usage: get [-f] CLIP [LOCAL]");
    const [arg, local] = rest as [string, string | undefined];
    const paths = this.tree.expand(this.cwd, arg);
    if (paths.length === 0) return this.fail(`get: ${arg}: no such clip`);
    if (paths.length > 1)
      return this.fail(`get: ${arg}: names ${paths.length} clips (mget takes many)`);
    const p = paths[0] as TreePath;
    const clip = this.tree.clip(p);
    if (!clip) return this.fail(`get: ${arg}: is a folder (mget ${arg} restores everything in it)`);
    let outFile = this.localTarget(p);
    if (local !== undefined) {
      outFile = resolve(this.localDir, local);
      if (isDirectory(outFile)) outFile = join(outFile, basename(clip.name));
    }
    return this.transfer([{ clip, outFile }], force);
  }

  private async mget(args: string[]): Promise<boolean> {
    const force = args.includes("-f") || args.includes("--force");
    const patterns = args.filter((a) => a !== "-f" && a !== "--force");
    if (patterns.length === 0) return this.fail("usage: mget [-f] GLOB|FOLDER...");
    const items = new Map<string, RestoreItem>();
    for (const pattern of patterns) {
      const paths = this.tree.expand(this.cwd, pattern);
      if (paths.length === 0) {
        this.fail(`mget: ${pattern}: no match`);
        continue;
      }
      for (const p of paths) {
        const clip = this.tree.clip(p);
        const clips: Array<[ClipRecord, TreePath]> = clip
          ? [[clip, p]]
          : this.tree.clipsUnder(p).map((c) => [c, this.tree.pathOf(c)]);
        for (const [c, cp] of clips) {
          if (!items.has(c.id)) items.set(c.id, { clip: c, outFile: this.localTarget(cp) });
        }
      }
    }
    if (items.size === 0) return true;
    return this.transfer([...items.values()], force);
  }

  private async transfer(items: RestoreItem[], force: boolean): Promise<boolean> {
    const progress = this.io.progress(items);
    this.current = new AbortController();
    let summary: RestoreManySummary;
    try {
      summary = await restoreMany(this.deps.vault, items, {
        jobs: this.io.jobs,
        force,
        signal: this.current.signal,
        hooks: progress.hooks,
      });
    } finally {
      progress.stop();
      this.current = undefined;
    }
    for (const o of summary.outcomes) if (o.status === "failed") this.fail(o.error);
    if (items.length > 1 || summary.failed > 0) {
      this.print(
        `${summary.restored} restored (${formatBytes(summary.bytes)}), ${summary.skipped} already there, ${summary.failed} failed`,
      );
    }
    return true;
  }

  /** Tab completion: commands, then paths in the vault (or local folders for lcd). */
  complete(line: string): [string[], string] {
    const words = line.split(/\s+/);
    const word = words[words.length - 1] ?? "";
    if (words.length <= 1) {
      return [COMMANDS.filter((c) => c.startsWith(word)).map((c) => `${c} `), word];
    }
    const cmd = words[0] ?? "";
    if (cmd === "lcd") return [completeLocal(this.localDir, word), word];
    if (!REMOTE_ARGS.has(cmd)) return [[], word];
    const slash = word.lastIndexOf("/");
    const dirPart = slash >= 0 ? word.slice(0, slash + 1) : "";
    const prefix = word.slice(slash + 1);
    const e = this.tree.entries(resolvePath(this.cwd, dirPart || "."));
    if (!e) return [[], word];
    const hits = [
      ...e.dirs.map((d) => `${dirPart}${d.name}/`),
      ...(cmd === "cd"
        ? []
        : e.files.map((f) => `${dirPart}${f.id.slice(f.id.lastIndexOf("/") + 1)}`)),
    ].filter((h) => h.slice(dirPart.length).startsWith(prefix));
    return [hits, word];
  }
}

function clipLine(clip: ClipRecord, name: string): string {
  const legacy = clip.format === "fernet" ? "  legacy" : "";
  const incomplete = clip.incomplete ? "  incomplete (cut off)" : "";
  return `  ${name.padEnd(24)} ${formatBytes(clip.size).padStart(9)}  ${clip.date} ${clipTime(clip.name)}${legacy}${incomplete}`;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function completeLocal(base: string, word: string): string[] {
  const slash = word.lastIndexOf("/");
  const dirPart = slash >= 0 ? word.slice(0, slash + 1) : "";
  const prefix = word.slice(slash + 1);
  try {
    return readdirSync(resolve(base, dirPart || "."), { withFileTypes: true })
      .filter((d) => d.isDirectory() && d.name.startsWith(prefix))
      .map((d) => `${dirPart}${d.name}/`);
  } catch {
    return [];
  }
}
