import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { stringify } from "yaml";

/** Every file below `root`, as sorted `/`-separated relative paths. */
export async function walk(root: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (dir: string) => {
    let entries: import("node:fs").Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const full = join(dir, e.name);
      if (e.isDirectory()) await visit(full);
      else out.push(relative(root, full).split("\\").join("/"));
    }
  };
  await visit(root);
  return out.sort();
}

export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

export async function sha256File(path: string): Promise<string> {
  return sha256(await readFile(path));
}

export function tempDir(prefix = "mev-test-"): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Writes a config.yml made from a plain object, returns its path. */
export async function writeConfig(dir: string, config: Record<string, unknown>): Promise<string> {
  const path = join(dir, "config.yml");
  await writeFile(path, stringify(config), { mode: 0o600 });
  return path;
}
