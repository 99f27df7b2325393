import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import type { z } from "zod";
import type { Registry } from "../storage/registry.js";
import { applyEnv, type EnvKeys, leavesOf, type SectionKeys } from "./env.js";
import {
  backendSchemas,
  buildConfigSchema,
  type configSchema,
  defaultRegistries,
  PATH_KEYS,
  type Registries,
  SECRET_KEYS,
} from "./schema.js";
import { checkSources } from "./sources.js";
import { formatPath, isTree, unknownKeyProblems } from "./strict.js";

/**
 * The one config loader: YAML file + `MOTIONEYE_VAULT_...` environment + `<key>File` secrets,
 * checked by one schema with strict keys. It is also the only module that reads `process.env`.
 * A single `source:` becomes a list of one (`default`, prefix ""), so the rest of the program
 * only ever sees `sources`.
 */

type Parsed = z.output<typeof configSchema>;

/** One camera device: its name, id prefix, the keys every source has, and its backend's keys. */
export interface SourceConfig extends Record<string, unknown> {
  name: string;
  /** "" for unprefixed clip ids. */
  prefix: string;
  type: string;
  stableSeconds: number;
  incompleteAfterSeconds: number;
  extensions: string[];
  /** Overrides the top-level `alerts` for this source. */
  alerts?: { staleAfterHours?: number };
}

export interface DestinationConfig extends Record<string, unknown> {
  type: string;
}

export type Config = Omit<Parsed, "source" | "sources" | "destination"> & {
  sources: SourceConfig[];
  destination: DestinationConfig;
};

/** The name of the source a single `source:` becomes. */
export const DEFAULT_SOURCE_NAME = "default";

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join("\n"));
    this.name = "ConfigError";
  }
}

export interface LoadedConfig {
  config: Config;
  /** The file it came from, or undefined when running on embedded defaults. */
  file: string | undefined;
  /** Folder that relative paths were resolved against. */
  baseDir: string;
}

export interface LoadOptions {
  /** `--config FILE` */
  file?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** The backends a config may name (default: every registered one). */
  registries?: Registries;
}

type Tree = Record<string, unknown>;

/** The environment keys of a backend section: the common keys plus those of its type. */
function sectionKeys(registry: Registry<unknown>, schema: z.ZodType): SectionKeys {
  const all = leavesOf(schema);
  return {
    leaves(type) {
      const own = registry.get(type)?.schema.shape;
      // An unknown type is reported by the schema; its keys are still read (and checked).
      if (!own) return all;
      return all.filter((l) => !isBackendKey(registry, l.path[0]) || (l.path[0] ?? "") in own);
    },
    secrets: (type) => registry.get(type)?.secrets ?? [],
  };
}

/** True when a key belongs to some backend (not to every source). */
function isBackendKey(registry: Registry<unknown>, key: string | undefined): boolean {
  return registry.all.some((b) => key !== undefined && key in b.schema.shape);
}

/** The config's schema and environment keys for a set of backends (the registries'). */
function schemasFor(registries: Registries) {
  const schema = buildConfigSchema(registries);
  const backends = backendSchemas(registries);
  const env: EnvKeys = {
    leaves: leavesOf(schema.omit({ source: true, sources: true, destination: true })),
    secrets: SECRET_KEYS,
    source: sectionKeys(registries.sources, backends.source),
    destination: sectionKeys(registries.vaults, backends.destination),
    entry: sectionKeys(registries.sources, backends.sourceEntry),
  };
  return { schema, env };
}

const DEFAULT = schemasFor(defaultRegistries);

/** Finds the config file: `--config`, else `$MOTIONEYE_VAULT_CONFIG`, else `./config.yml` if present. */
export function findConfigFile(opts: LoadOptions): string | undefined {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const explicit = opts.file ?? env.MOTIONEYE_VAULT_CONFIG;
  if (explicit) return resolve(cwd, explicit);
  const local = resolve(cwd, "config.yml");
  return existsSync(local) ? local : undefined;
}

export function loadConfig(opts: LoadOptions = {}): LoadedConfig {
  const registries = opts.registries ?? defaultRegistries;
  const { schema: configSchema, env: envKeys } = opts.registries
    ? schemasFor(opts.registries)
    : DEFAULT;
  const { sources: sourceBackends, vaults: vaultBackends } = registries;
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const file = findConfigFile(opts);
  const tree = file ? readTree(file) : {};
  const baseDir = file ? dirname(file) : cwd;
  const problems: string[] = [];

  applyEnv(tree, env, envKeys, problems);
  if (tree.source !== undefined && tree.sources !== undefined) {
    problems.push(
      "sources: give either source: (one camera device) or sources: (several), not both",
    );
  }
  if (tree.source === undefined && tree.sources === undefined) tree.source = {};
  const backendSections = [
    ...(isTree(tree.source)
      ? [{ at: ["source"], node: tree.source, registry: sourceBackends }]
      : []),
    ...(Array.isArray(tree.sources) ? tree.sources : []).flatMap((node, i) =>
      isTree(node) ? [{ at: ["sources", i], node, registry: sourceBackends }] : [],
    ),
    ...(isTree(tree.destination)
      ? [{ at: ["destination"], node: tree.destination, registry: vaultBackends }]
      : []),
  ];
  for (const { node } of backendSections) node.type ??= "local";
  for (const [section, key] of SECRET_KEYS) {
    const node = tree[section];
    if (isTree(node)) readSecretFile(node, key, [section], baseDir, problems);
  }
  for (const { at, node, registry } of backendSections) {
    const backend = registry.get(String(node.type));
    for (const key of backend?.secrets ?? []) readSecretFile(node, key, at, baseDir, problems);
  }

  problems.push(...unknownKeyProblems(tree, configSchema));
  if (Array.isArray(tree.sources)) problems.push(...checkSources(tree.sources));
  const result = configSchema.safeParse(tree);
  if (!result.success) {
    for (const issue of result.error.issues) {
      problems.push(`${formatPath(issue.path)}: ${issue.message}`);
    }
  }
  if (!result.success || problems.length > 0) throw new ConfigError(problems);

  const { source, sources, destination, ...rest } = result.data;
  const list: SourceConfig[] = sources
    ? (sources as SourceConfig[]).map((s) => ({ ...s, prefix: s.prefix ?? s.name }))
    : [{ ...(source as SourceConfig), name: DEFAULT_SOURCE_NAME, prefix: "" }];

  const config: Config = { ...rest, sources: list, destination: destination as DestinationConfig };
  resolvePaths(config, baseDir, registries);
  return { config, file, baseDir };
}

function readTree(file: string): Tree {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError([`config file ${file}: cannot be read (${(err as Error).message})`]);
  }
  try {
    const parsed: unknown = parseYaml(text) ?? {};
    if (!isTree(parsed)) throw new Error("the top level must be a mapping of sections");
    return parsed;
  } catch (err) {
    throw new ConfigError([`config file ${file}: invalid YAML: ${(err as Error).message}`]);
  }
}

/** `<key>File: path` -> `<key>: <the file's content>` (Docker secrets style). */
function readSecretFile(
  node: Tree,
  key: string,
  at: PropertyKey[],
  baseDir: string,
  problems: string[],
): void {
  const fileKey = `${key}File`;
  const value = node[fileKey];
  if (value === undefined) return;
  delete node[fileKey];
  const where = formatPath([...at, fileKey]);
  if (typeof value !== "string" || value === "") {
    problems.push(`${where}: must be a file path`);
    return;
  }
  const path = isAbsolute(value) ? value : resolve(baseDir, value);
  try {
    // Docker secrets and `echo secret > file` both leave a trailing newline.
    node[key] = readFileSync(path, "utf8").replace(/\r?\n$/, "");
  } catch (err) {
    problems.push(
      `${where}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
}

function resolvePaths(config: Config, baseDir: string, registries: Registries): void {
  const { sources: sourceBackends, vaults: vaultBackends } = registries;
  const abs = (v: unknown) => (typeof v === "string" && !isAbsolute(v) ? resolve(baseDir, v) : v);
  const sections = config as unknown as Record<string, Record<string, unknown>>;
  for (const [section, key] of PATH_KEYS) {
    const s = sections[section];
    if (s && s[key] !== undefined) s[key] = abs(s[key]);
  }
  for (const s of config.sources) {
    for (const key of sourceBackends.get(s.type)?.paths ?? []) {
      if (s[key] !== undefined) s[key] = abs(s[key]);
    }
  }
  const d = config.destination;
  for (const key of vaultBackends.get(d.type)?.paths ?? []) {
    if (d[key] !== undefined) d[key] = abs(d[key]);
  }
  config.encryption.identityFile ??= resolve(config.state.dir, "identity.txt");
}

/** True when the process runs under a terminal (progress bars) and not in CI. */
export function isInteractive(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(process.stderr.isTTY) && !env.CI;
}
