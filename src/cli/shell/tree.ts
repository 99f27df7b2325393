import { tryParseClipId } from "../../clips/clipId.js";
import type { ClipRecord } from "../../manifest/manifest.js";

/**
 * The restore shell's folders: the clip ids themselves, read as paths. `/Camera1/2024-05-01/`
 * holds Camera1's clips of that day; clips of a media root without camera folders sit in
 * `/2024-05-01/`. This is the layout `restore` writes, so what you see is what you get. With
 * several sources the top level is the sources (`/garage/Camera1/...`): the clips of the one
 * with unprefixed ids are shown under its name too (`pathOf`).
 */

/** A path in the tree: its segments, root = []. */
export type TreePath = string[];

interface DirNode {
  dirs: Set<string>;
  files: Map<string, ClipRecord>;
  /** Clips below, at any depth, and their bytes. */
  count: number;
  bytes: number;
}

const key = (p: TreePath) => p.join("/");

export function display(p: TreePath): string {
  return `/${p.join("/")}`;
}

/** Resolves `arg` (absolute, or relative to `cwd`; `.` and `..` allowed) to a path. */
export function resolvePath(cwd: TreePath, arg: string): TreePath {
  const out = arg.startsWith("/") ? [] : [...cwd];
  for (const seg of arg.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") out.pop();
    else out.push(seg);
  }
  return out;
}

export function hasGlob(s: string): boolean {
  return /[*?[]/.test(s);
}

/** One path segment's glob (`*`, `?`, `[abc]`, `[!abc]`) as a RegExp. */
export function globSegment(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const end = glob.indexOf("]", i + 2);
      if (end < 0) {
        re += "\\[";
        continue;
      }
      let body = glob.slice(i + 1, end);
      const negate = body.startsWith("!") || body.startsWith("^");
      if (negate) body = body.slice(1);
      re += `[${negate ? "^" : ""}${body.replace(/[\\\]]/g, "\\$&")}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

export class ClipTree {
  private readonly nodes = new Map<string, DirNode>();
  readonly size: number;

  /** Where a clip sits in the tree (its id, or `<source>/<id>`; see above). */
  readonly pathOf: (clip: ClipRecord) => TreePath;

  constructor(clips: readonly ClipRecord[], pathOf?: (clip: ClipRecord) => string) {
    this.nodes.set("", emptyNode());
    this.pathOf = (clip) => (pathOf ? pathOf(clip) : clip.id).split("/");
    let n = 0;
    for (const clip of clips) {
      const ref = tryParseClipId(clip.id);
      if (!ref) continue; // never show (or restore to) a path that is not a safe clip id
      const parts = this.pathOf(clip);
      const name = parts.pop() as string;
      for (let i = 0; i <= parts.length; i++) {
        const node = this.node(parts.slice(0, i));
        node.count++;
        node.bytes += clip.size;
        if (i < parts.length) node.dirs.add(parts[i] as string);
      }
      this.node(parts).files.set(name, clip);
      n++;
    }
    this.size = n;
  }

  private node(p: TreePath): DirNode {
    let node = this.nodes.get(key(p));
    if (!node) {
      node = emptyNode();
      this.nodes.set(key(p), node);
    }
    return node;
  }

  isDir(p: TreePath): boolean {
    return this.nodes.has(key(p));
  }

  /** The clip at a path, if it is one. */
  clip(p: TreePath): ClipRecord | undefined {
    if (p.length === 0) return undefined;
    return this.nodes.get(key(p.slice(0, -1)))?.files.get(p[p.length - 1] as string);
  }

  /** A folder's own entries, sorted. */
  entries(
    p: TreePath,
  ):
    | { dirs: Array<{ name: string; count: number; bytes: number }>; files: ClipRecord[] }
    | undefined {
    const node = this.nodes.get(key(p));
    if (!node) return undefined;
    const dirs = [...node.dirs].sort().map((name) => {
      const sub = this.nodes.get(key([...p, name])) as DirNode;
      return { name, count: sub.count, bytes: sub.bytes };
    });
    const files = [...node.files.keys()].sort().map((n) => node.files.get(n) as ClipRecord);
    return { dirs, files };
  }

  /** Clips in a folder and below. */
  clipsUnder(p: TreePath): ClipRecord[] {
    const out: ClipRecord[] = [];
    const visit = (q: TreePath) => {
      const e = this.entries(q);
      if (!e) return;
      out.push(...e.files);
      for (const d of e.dirs) visit([...q, d.name]);
    };
    visit(p);
    return out;
  }

  stats(p: TreePath): { count: number; bytes: number } | undefined {
    const node = this.nodes.get(key(p));
    return node && { count: node.count, bytes: node.bytes };
  }

  /** The paths (folders or clips) an argument names, globs expanded, sorted. */
  expand(cwd: TreePath, arg: string): TreePath[] {
    let current: TreePath[] = [arg.startsWith("/") ? [] : [...cwd]];
    for (const seg of arg.split("/")) {
      if (seg === "" || seg === ".") continue;
      const next: TreePath[] = [];
      for (const base of current) {
        if (seg === "..") {
          next.push(base.slice(0, -1));
          continue;
        }
        const e = this.nodes.get(key(base));
        if (!e) continue;
        if (!hasGlob(seg)) {
          if (e.dirs.has(seg) || e.files.has(seg)) next.push([...base, seg]);
          continue;
        }
        const re = globSegment(seg);
        for (const name of [...e.dirs, ...e.files.keys()].sort()) {
          if (re.test(name)) next.push([...base, name]);
        }
      }
      current = next;
    }
    const seen = new Set<string>();
    return current.filter((p) => {
      const k = key(p);
      if (seen.has(k) || !(this.isDir(p) || this.clip(p))) return false;
      seen.add(k);
      return true;
    });
  }
}

function emptyNode(): DirNode {
  return { dirs: new Set(), files: new Map(), count: 0, bytes: 0 };
}
