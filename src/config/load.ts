import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { isValidCron } from "../util/cron.js";

/**
 * The one config loader: YAML file + `MOTIONEYE_VAULT_<SECTION>_<KEY>` environment + `<key>File`
 * secrets, validated by one schema. It is also the only module that reads `process.env`.
 */

const DEFAULT_EXTENSIONS = [".mp4", ".avi", ".mkv", ".mov"];

const fingerprint = z
  .string()
  .regex(
    /^SHA256:[A-Za-z0-9+/]{43}=?$/,
    "must be a SHA256 fingerprint as `ssh-keygen -lf` prints it",
  );

const sourceSchema = z
  .object({
    type: z.enum(["ftp", "local"]).default("local"),
    host: z.string().min(1).optional(),
    port: z.number().int().min(1).max(65535).default(21),
    user: z.string().default("anonymous"),
    password: z.string().default(""),
    secure: z.boolean().default(false),
    /** FTPS: a CA (or the camera's own self-signed certificate, PEM) to trust for it. */
    caFile: z.string().min(1).optional(),
    path: z.string().min(1).default("./samples/motioneye"),
    stableSeconds: z.number().min(0).default(10),
    extensions: z
      .array(z.string().regex(/^\.[A-Za-z0-9]+$/, "like .mp4"))
      .default(DEFAULT_EXTENSIONS),
    maxConnections: z.number().int().min(1).max(8).default(2),
    timeoutSeconds: z.number().positive().default(30),
  })
  .superRefine((s, ctx) => {
    if (s.type === "ftp" && !s.host) {
      ctx.addIssue({ code: "custom", path: ["host"], message: "is required when type is ftp" });
    }
  });

const destinationSchema = z
  .object({
    type: z.enum(["sftp", "local"]).default("local"),
    host: z.string().min(1).optional(),
    port: z.number().int().min(1).max(65535).default(22),
    username: z.string().min(1).optional(),
    privateKeyFile: z.string().min(1).optional(),
    passphrase: z.string().optional(),
    password: z.string().optional(),
    hostKey: fingerprint.optional(),
    path: z.string().min(1).default("./data/vault"),
    timeoutSeconds: z.number().positive().default(30),
  })
  .superRefine((d, ctx) => {
    if (d.type !== "sftp") return;
    if (!d.host)
      ctx.addIssue({ code: "custom", path: ["host"], message: "is required when type is sftp" });
    if (!d.username)
      ctx.addIssue({
        code: "custom",
        path: ["username"],
        message: "is required when type is sftp",
      });
    if (!d.privateKeyFile && d.password === undefined)
      ctx.addIssue({
        code: "custom",
        path: ["privateKeyFile"],
        message: "privateKeyFile or password is required when type is sftp",
      });
  });

const encryptionSchema = z.object({
  identityFile: z.string().min(1).optional(),
  recipients: z
    .array(z.string().regex(/^age1[0-9a-z]+$/, "must be an age recipient (age1...)"))
    .default([]),
  fernetKeyFile: z.string().min(1).optional(),
});

const stateSchema = z.object({ dir: z.string().min(1).default("./data") });

const mqttSchema = z.object({
  url: z
    .string()
    .regex(/^(mqtts?|wss?|tcp|ssl):\/\/.+/, "must be a URL like mqtt://host:1883")
    .optional(),
  username: z.string().optional(),
  password: z.string().optional(),
  caFile: z.string().optional(),
  triggerTopic: z.string().min(1).default("motioneye/+/event"),
  baseTopic: z.string().min(1).default("motioneye-vault"),
  embeddedBroker: z
    .object({
      enabled: z.boolean().default(true),
      host: z.string().default("127.0.0.1"),
      port: z.number().int().min(1).max(65535).default(1883),
    })
    .default({ enabled: true, host: "127.0.0.1", port: 1883 }),
  homeassistant: z
    .object({
      enabled: z.boolean().default(true),
      discoveryPrefix: z.string().min(1).default("homeassistant"),
      /** Where Home Assistant announces itself (`online`); discovery is sent again then. */
      statusTopic: z.string().min(1).default("homeassistant/status"),
      /** Discovery is re-sent after a random delay of up to this many seconds (spreads load). */
      rediscoverDelaySeconds: z.number().min(0).max(10).default(5),
      /** motionEye's web UI (http:// or https://), linked from the devices in Home Assistant. */
      motioneyeUrl: z
        .string()
        .regex(/^https?:\/\/\S+$/, "must be an http:// or https:// URL")
        .optional(),
    })
    .default({
      enabled: true,
      discoveryPrefix: "homeassistant",
      statusTopic: "homeassistant/status",
      rediscoverDelaySeconds: 5,
    }),
});

const cron = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .refine((s) => s.trim() === "" || isValidCron(s), {
      message: 'is not a valid cron expression (like "*/15 * * * *")',
    });

const scheduleSchema = z.object({
  /** Empty disables the catch-up runs. */
  sync: cron("*/15 * * * *"),
});

const retentionSchema = z.object({
  remoteDays: z.number().int().positive().optional(),
  schedule: cron("30 3 * * *"),
  dryRun: z.boolean().default(false),
});

const syncSchema = z.object({
  concurrency: z.number().int().min(1).max(16).default(2),
  retries: z.number().int().min(0).max(10).default(3),
  /** A clip whose transfer moves no byte for this long fails its attempt (a stalled server). */
  idleTimeoutSeconds: z.number().positive().default(120),
  /** A clip that takes longer than this in all fails its attempt (a server that trickles). */
  clipTimeoutSeconds: z
    .number()
    .positive()
    .default(4 * 3600),
});

const telegramSchema = z.object({
  token: z.string().min(1).optional(),
  allowedChatIds: z.array(z.number().int()).default([]),
  apiRoot: z.string().url("must be a URL").default("https://api.telegram.org"),
  maxUploadMB: z.number().positive().default(50),
  notify: z
    .object({
      failures: z.boolean().default(false),
      clips: z.boolean().default(false),
    })
    .default({ failures: false, clips: false }),
});

export const configSchema = z.object({
  source: sourceSchema.default(() => sourceSchema.parse({})),
  destination: destinationSchema.default(() => destinationSchema.parse({})),
  encryption: encryptionSchema.default(() => encryptionSchema.parse({})),
  state: stateSchema.default(() => stateSchema.parse({})),
  mqtt: mqttSchema.default(() => mqttSchema.parse({})),
  schedule: scheduleSchema.default(() => scheduleSchema.parse({})),
  retention: retentionSchema.default(() => retentionSchema.parse({})),
  sync: syncSchema.default(() => syncSchema.parse({})),
  telegram: telegramSchema.default(() => telegramSchema.parse({})),
  /** Unset: `serve` logs at info, one-shot commands at warn (their output says what happened). */
  log: z
    .object({
      level: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).optional(),
    })
    .default({}),
});

export type Config = z.infer<typeof configSchema>;

/** Keys that may hold secrets: each may instead be given as `<key>File` (Docker secrets). */
const SECRET_KEYS: ReadonlyArray<readonly [string, string]> = [
  ["source", "password"],
  ["destination", "password"],
  ["destination", "passphrase"],
  ["mqtt", "password"],
  ["telegram", "token"],
];

/** Relative paths in these keys are resolved against the config file's folder. */
const PATH_KEYS: ReadonlyArray<readonly [string, string]> = [
  ["source", "caFile"],
  ["destination", "privateKeyFile"],
  ["encryption", "identityFile"],
  ["encryption", "fernetKeyFile"],
  ["state", "dir"],
  ["mqtt", "caFile"],
];

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
}

type Json = unknown;
type Tree = Record<string, Json>;

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
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const file = findConfigFile(opts);
  const problems: string[] = [];

  let tree: Tree = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      throw new ConfigError([`config file ${file}: cannot be read (${(err as Error).message})`]);
    }
    try {
      const parsed: unknown = parseYaml(text) ?? {};
      if (!isTree(parsed)) throw new Error("the top level must be a mapping of sections");
      tree = parsed;
    } catch (err) {
      throw new ConfigError([`config file ${file}: invalid YAML: ${(err as Error).message}`]);
    }
  }
  const baseDir = file ? dirname(file) : cwd;

  applyEnv(tree, env, problems);
  resolveSecretFiles(tree, baseDir, problems);

  const result = configSchema.safeParse(tree);
  if (!result.success) {
    for (const issue of result.error.issues) {
      problems.push(`${issue.path.join(".") || "(config)"}: ${issue.message}`);
    }
  }
  if (problems.length > 0 || !result.success) throw new ConfigError(problems);

  const config = result.data;
  resolvePaths(config, baseDir);
  return { config, file, baseDir };
}

function isTree(v: unknown): v is Tree {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function camelToSnake(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase();
}

/** Leaf keys of the schema as paths, with the kind of value each expects (for env coercion). */
type LeafKind = "string" | "number" | "boolean" | "array";
interface Leaf {
  path: string[];
  kind: LeafKind;
}

interface ZodDefLike {
  type: string;
  innerType?: { _zod: { def: ZodDefLike } };
  in?: { _zod: { def: ZodDefLike } };
  shape?: Record<string, { _zod: { def: ZodDefLike } }>;
}

function unwrap(def: ZodDefLike): ZodDefLike {
  let d = def;
  while (d.innerType || d.in) {
    const next = d.innerType ?? d.in;
    if (!next) break;
    d = next._zod.def;
  }
  return d;
}

function schemaLeaves(def: ZodDefLike, prefix: string[] = []): Leaf[] {
  const d = unwrap(def);
  if (d.type === "object" && d.shape) {
    return Object.entries(d.shape).flatMap(([k, v]) => schemaLeaves(v._zod.def, [...prefix, k]));
  }
  const kind: LeafKind =
    d.type === "number"
      ? "number"
      : d.type === "boolean"
        ? "boolean"
        : d.type === "array"
          ? "array"
          : "string";
  return [{ path: prefix, kind }];
}

const LEAVES = schemaLeaves(configSchema._zod.def as unknown as ZodDefLike);

function envNames(path: string[]): string[] {
  const snake = `MOTIONEYE_VAULT_${path.map(camelToSnake).join("_")}`;
  const flat = `MOTIONEYE_VAULT_${path.map((p) => p.toUpperCase()).join("_")}`;
  return snake === flat ? [snake] : [snake, flat];
}

function coerce(raw: string, kind: LeafKind, name: string, problems: string[]): Json {
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
          return parseYaml(t) as Json;
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

function setPath(tree: Tree, path: string[], value: Json): void {
  let node: Tree = tree;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (!isTree(next)) node[key] = {};
    node = node[key] as Tree;
  }
  const last = path[path.length - 1];
  if (last !== undefined) node[last] = value;
}

function getPath(tree: Tree, path: string[]): Json {
  let node: Json = tree;
  for (const key of path) {
    if (!isTree(node)) return undefined;
    node = node[key];
  }
  return node;
}

function applyEnv(tree: Tree, env: NodeJS.ProcessEnv, problems: string[]): void {
  for (const leaf of LEAVES) {
    for (const name of envNames(leaf.path)) {
      const raw = env[name];
      if (raw === undefined) continue;
      const value = coerce(raw, leaf.kind, name, problems);
      if (value !== undefined) setPath(tree, leaf.path, value);
      break;
    }
  }
  for (const [section, key] of SECRET_KEYS) {
    for (const name of envNames([section, `${key}File`])) {
      const raw = env[name];
      if (raw !== undefined) setPath(tree, [section, `${key}File`], raw);
    }
  }
}

function resolveSecretFiles(tree: Tree, baseDir: string, problems: string[]): void {
  for (const [section, key] of SECRET_KEYS) {
    const fileKey = `${key}File`;
    const fileValue = getPath(tree, [section, fileKey]);
    if (fileValue === undefined) continue;
    const sectionTree = getPath(tree, [section]);
    if (isTree(sectionTree)) delete sectionTree[fileKey];
    if (typeof fileValue !== "string" || fileValue === "") {
      problems.push(`${section}.${fileKey}: must be a file path`);
      continue;
    }
    const path = isAbsolute(fileValue) ? fileValue : resolve(baseDir, fileValue);
    try {
      // Docker secrets and `echo secret > file` both leave a trailing newline.
      setPath(tree, [section, key], readFileSync(path, "utf8").replace(/\r?\n$/, ""));
    } catch (err) {
      problems.push(
        `${section}.${fileKey}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? "error"})`,
      );
    }
  }
}

function resolvePaths(config: Config, baseDir: string): void {
  const sections = config as unknown as Record<string, Record<string, unknown>>;
  for (const [section, key] of PATH_KEYS) {
    const s = sections[section];
    const v = s?.[key];
    if (s && typeof v === "string" && !isAbsolute(v)) s[key] = resolve(baseDir, v);
  }
  if (config.source.type === "local" && !isAbsolute(config.source.path)) {
    config.source.path = resolve(baseDir, config.source.path);
  }
  if (config.destination.type === "local" && !isAbsolute(config.destination.path)) {
    config.destination.path = resolve(baseDir, config.destination.path);
  }
  config.encryption.identityFile ??= resolve(config.state.dir, "identity.txt");
}

/** True when the process runs under a terminal (progress bars) and not in CI. */
export function isInteractive(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(process.stderr.isTTY) && !env.CI;
}
