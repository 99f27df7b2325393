import { parse as parseYaml } from "yaml";
import type { z } from "zod";
import { isTree } from "./strict.js";
import { elementOf, type LeafKind, leafKind, shapeOf, unionOptions } from "./zodShape.js";

/**
 * `MOTIONEYE_VAULT_<SECTION>_<KEY>` environment variables (`..._SOURCE_STABLE_SECONDS` or
 * `..._SOURCE_STABLESECONDS`), and for an entry of `sources:` `MOTIONEYE_VAULT_SOURCES_<NAME>_<KEY>`
 * (the entry's name in capitals, `-` as `_`: `MOTIONEYE_VAULT_SOURCES_CAM_2_PASSWORD`). The
 * environment sets keys of entries the file lists; it does not add entries.
 */

type Tree = Record<string, unknown>;

export interface Leaf {
  path: string[];
  kind: LeafKind;
}

/** The leaf keys under `schema`; for a union, those of every option. Lists of objects are not leaves. */
export function leavesOf(schema: z.ZodType, prefix: string[] = []): Leaf[] {
  const union = unionOptions(schema);
  if (union) {
    const seen = new Map<string, Leaf>();
    for (const o of union.options) {
      for (const leaf of leavesOf(o.schema, prefix)) seen.set(leaf.path.join("."), leaf);
    }
    return [...seen.values()];
  }
  const shape = shapeOf(schema);
  if (shape) {
    return Object.entries(shape).flatMap(([k, v]) => leavesOf(v, [...prefix, k]));
  }
  const element = elementOf(schema);
  if (element && (shapeOf(element) || unionOptions(element))) return [];
  return [{ path: prefix, kind: leafKind(schema) }];
}

function camelToSnake(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase();
}

/** The names a key may have in the environment, preferred first. */
export function envNames(path: string[]): string[] {
  const snake = `MOTIONEYE_VAULT_${path.map(camelToSnake).join("_")}`;
  const flat = `MOTIONEYE_VAULT_${path.map((p) => p.toUpperCase()).join("_")}`;
  return snake === flat ? [snake] : [snake, flat];
}

/** How a source's name appears in environment variable names. */
export function envSourceName(name: string): string {
  return name.toUpperCase().replace(/-/g, "_");
}

function coerce(raw: string, kind: LeafKind, name: string, problems: string[]): unknown {
  switch (kind) {
    case "number": {
      const n = Number(raw);
      if (raw.trim() === "" || Number.isNaN(n)) {
        problems.push(`${name}: expected a number, got "${raw}"`);
        return undefined;
      }
      return n;
    }
    case "boolean": {
      const v = raw.trim().toLowerCase();
      if (["1", "true", "yes", "on"].includes(v)) return true;
      if (["0", "false", "no", "off", ""].includes(v)) return false;
      problems.push(`${name}: expected true or false, got "${raw}"`);
      return undefined;
    }
    case "array": {
      const t = raw.trim();
      if (t.startsWith("[")) {
        try {
          return parseYaml(t) as unknown;
        } catch {
          problems.push(`${name}: expected a list like [1, 2] or a comma-separated list`);
          return undefined;
        }
      }
      const items = t === "" ? [] : t.split(",").map((s) => s.trim());
      return items.map((s) => (/^-?\d+$/.test(s) ? Number(s) : s));
    }
    default:
      return raw;
  }
}

function setPath(tree: Tree, path: string[], value: unknown): void {
  let node: Tree = tree;
  for (const key of path.slice(0, -1)) {
    if (!isTree(node[key])) node[key] = {};
    node = node[key] as Tree;
  }
  const last = path[path.length - 1];
  if (last !== undefined) node[last] = value;
}

/** The keys a backend section takes from the environment, for the section's `type`. */
export interface SectionKeys {
  leaves(type: string): Leaf[];
  secrets(type: string): readonly string[];
}

export interface EnvKeys {
  /** Leaves of the sections that pick no backend (mqtt, sync, ...). */
  leaves: Leaf[];
  /** Secret keys of those sections (each also read as `<key>File`). */
  secrets: ReadonlyArray<readonly [string, string]>;
  source: SectionKeys;
  destination: SectionKeys;
  /** An entry of `sources:`. */
  entry: SectionKeys;
}

/**
 * Puts what the environment says into the config tree; bad values go to `problems`. A backend
 * section takes the keys of its type only: a variable for another type's key is not used.
 */
export function applyEnv(
  tree: Tree,
  env: NodeJS.ProcessEnv,
  keys: EnvKeys,
  problems: string[],
): void {
  const apply = (node: Tree, envPath: string[], treePath: string[], kind: LeafKind) => {
    for (const name of envNames(envPath)) {
      const raw = env[name];
      if (raw === undefined) continue;
      const value = coerce(raw, kind, name, problems);
      if (value !== undefined) setPath(node, treePath, value);
      break;
    }
  };
  for (const leaf of keys.leaves) apply(tree, leaf.path, leaf.path, leaf.kind);
  for (const [section, key] of keys.secrets) {
    apply(tree, [section, `${key}File`], [section, `${key}File`], "string");
  }

  /** One backend section: its type first (from here or the file), then that type's keys. */
  const section = (node: Tree, envBase: string[], which: SectionKeys) => {
    apply(node, [...envBase, "type"], ["type"], "string");
    const type = typeof node.type === "string" ? node.type : "local";
    for (const leaf of which.leaves(type)) {
      if (leaf.path[0] !== "type" && leaf.path[0] !== "name") {
        apply(node, [...envBase, ...leaf.path], leaf.path, leaf.kind);
      }
    }
    for (const key of which.secrets(type)) {
      apply(node, [...envBase, `${key}File`], [`${key}File`], "string");
    }
  };
  for (const name of ["source", "destination"] as const) {
    const present = isTree(tree[name]);
    const node: Tree = present ? (tree[name] as Tree) : {};
    section(node, [name], keys[name]);
    if (!present && Object.keys(node).length > 0) tree[name] = node;
  }
  const entries = Array.isArray(tree.sources) ? tree.sources : [];
  for (const entry of entries) {
    if (!isTree(entry) || typeof entry.name !== "string" || entry.name === "") continue;
    section(entry, ["sources", envSourceName(entry.name)], keys.entry);
  }
}
