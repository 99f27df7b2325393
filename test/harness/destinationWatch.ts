/**
 * Watches a vault destination folder for the whole of a test and remembers every content each
 * final name (`<clip id>.age`) was ever seen with, to show that nothing partial or stale ever
 * had a final name: a polling scan every `intervalMs` plus inotify (fs.watch, recursive) for
 * the moments in between. Temporary names (`.part-...`) are not final and are ignored.
 */
import { createHash } from "node:crypto";
import { type FSWatcher, watch } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { walk } from "./files.js";

/** One content a final name held. */
export interface SeenContent {
  sha256: string;
  size: number;
}

export interface DestinationWatch {
  /** Every distinct content each final name held, in the order seen (relative paths). */
  contents(): Map<string, SeenContent[]>;
  /** Final names seen with more than one content, with those contents. */
  rewritten(): Map<string, SeenContent[]>;
  /** Times a final file's bytes were read and hashed. */
  readonly reads: number;
  /** Scans of the whole tree so far. */
  readonly scans: number;
  /** One last scan, then stops watching. */
  stop(): Promise<void>;
}

/** Final names end in `.age`; anything else (a `.part-xxx` upload) is temporary. */
export const isFinalName = (relPath: string): boolean => relPath.endsWith(".age");

export function watchDestination(
  root: string,
  opts: { intervalMs?: number } = {},
): DestinationWatch {
  const seen = new Map<string, SeenContent[]>();
  // What a name looked like when last hashed: re-read only when it changed.
  const lastStat = new Map<string, string>();
  let reads = 0;
  let scans = 0;
  let stopped = false;

  const look = async (rel: string) => {
    if (!isFinalName(rel)) return;
    const file = join(root, rel);
    try {
      const before = await stat(file);
      const key = `${before.ino}:${before.size}:${before.mtimeMs}:${before.ctimeMs}`;
      if (lastStat.get(rel) === key) return;
      const bytes = await readFile(file);
      reads++;
      const after = await stat(file);
      // read across a change: look again next time
      if (`${after.ino}:${after.size}:${after.mtimeMs}:${after.ctimeMs}` === key) {
        lastStat.set(rel, key);
      }
      const hash = createHash("sha256").update(bytes).digest("hex");
      const list = seen.get(rel) ?? [];
      if (!list.some((c) => c.sha256 === hash)) list.push({ sha256: hash, size: bytes.length });
      seen.set(rel, list);
    } catch {
      // gone between listing and reading (renamed over, deleted): the next scan sees the rest
    }
  };

  let scanning: Promise<void> | null = null;
  const scan = () => {
    scanning ??= (async () => {
      for (const rel of await walk(root)) await look(rel);
      scans++;
    })().finally(() => {
      scanning = null;
    });
    return scanning;
  };

  let watcher: FSWatcher | null = null;
  try {
    watcher = watch(root, { recursive: true }, (_event, name) => {
      if (!stopped && typeof name === "string") void look(name.split("\\").join("/"));
    });
    watcher.on("error", () => {});
  } catch {
    watcher = null; // the polling alone still sees every name that lives longer than a scan
  }
  const timer = setInterval(() => void scan(), opts.intervalMs ?? 100);
  timer.unref();
  void scan();

  return {
    contents: () => new Map([...seen].map(([k, v]) => [k, v.map((c) => ({ ...c }))])),
    rewritten: () => new Map([...seen].filter(([, v]) => v.length > 1)),
    get reads() {
      return reads;
    },
    get scans() {
      return scans;
    },
    stop: async () => {
      clearInterval(timer);
      await scanning;
      await scan();
      stopped = true;
      watcher?.close();
    },
  };
}
