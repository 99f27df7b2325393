import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { runCommand } from "../harness/processes.js";

/*
 * The add-on repository checked against the rules Home Assistant documents for it, written down
 * here from developers.home-assistant.io: "Add-on configuration" (docs/add-ons/configuration.md:
 * config.yaml's required and optional keys, options/schema and the schema types, build.yaml,
 * translations) and "Create an add-on repository" (repository.yaml). The Supervisor skips an
 * add-on whose config.yaml it cannot read, with only a line in its own log: the store then shows
 * the repository without the add-on. So each rule is checked here instead.
 */

const REPO_DIR = new URL("../../integrations/homeassistant-addon/", import.meta.url).pathname;
const ADDON_DIR = join(REPO_DIR, "motioneye_vault");
const yamlFile = (path: string) => parseYaml(readFileSync(path, "utf8")) as Record<string, unknown>;

const config = yamlFile(join(ADDON_DIR, "config.yaml"));
const build = yamlFile(join(ADDON_DIR, "build.yaml"));
const repository = yamlFile(join(REPO_DIR, "repository.yaml"));
const translations = yamlFile(join(ADDON_DIR, "translations", "en.yaml"));
const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));

// -- the rules, from the docs ------------------------------------------------------------------

/** "Required configuration options". */
const REQUIRED_KEYS = ["name", "version", "slug", "description", "arch"];
/** `arch`: "A list of supported architectures". */
const ARCHES = ["armhf", "armv7", "aarch64", "amd64", "i386"];
const STARTUP = ["initialize", "system", "services", "application", "once"];
const BOOT = ["auto", "manual", "manual_only"];
/** `map`: "Possible values" (plus the older `config`, which the docs' history lists). */
const MAP_TYPES = [
  "homeassistant_config",
  "addon_config",
  "ssl",
  "addons",
  "backup",
  "share",
  "media",
  "all_addon_configs",
  "data",
  "config",
];
/** `services`: "Format is `service`:`function`", functions provide, want, need. */
const SERVICE = /^(mqtt|mysql):(provide|want|need)$/;
/** `slug`: "unique in the scope of the repository ... and URI friendly". */
const SLUG = /^[-_.A-Za-z0-9]+$/;
/** `ports`: "container-port/type": host-port, null disables the mapping. */
const PORT_KEY = /^\d{1,5}\/(tcp|udp)$/;
/** `watchdog`: `http://[HOST]:[PORT:2839]/...`, `[PROTO:option]://...` or `tcp://[HOST]:[PORT:80]`. */
const WATCHDOG = /^(https?|\[PROTO:\w+\]|tcp):\/\/\[HOST\]:(\[PORT:(\d+)\]|\d+)(\/\S*)?$/;
/** `build.yaml` `build_from`: an image reference per architecture. */
const IMAGE_REF = /^([a-z0-9.-]+(:\d+)?\/)?[a-z0-9._/{}-]+(:[\w.{}-]+)?$/;

type SchemaType =
  | { kind: "str" | "password"; min?: number; max?: number }
  | { kind: "int" | "float"; min?: number; max?: number }
  | { kind: "bool" | "email" | "url" | "port" | "device" }
  | { kind: "match"; regex: RegExp }
  | { kind: "list"; values: string[] };

/**
 * One schema element, as the docs list them: `str` / `str(min,)` / `str(,max)` / `str(min,max)`,
 * the same forms for `int` and `float`, `bool`, `email`, `url`, `password`, `port`,
 * `match(REGEX)`, `list(val1|val2|...)`, `device` / `device(filter)`; a trailing `?` makes the
 * option optional. Throws for anything else.
 */
function parseSchemaType(raw: string): { type: SchemaType; optional: boolean } {
  const optional = raw.endsWith("?");
  const t = optional ? raw.slice(0, -1) : raw;
  const range = /^(str|password|int|float)(?:\((-?[\d.]*),(-?[\d.]*)\))?$/.exec(t);
  if (range) {
    const kind = range[1] as "str" | "password" | "int" | "float";
    const num = (s: string | undefined) => (s === undefined || s === "" ? undefined : Number(s));
    const [min, max] = [num(range[2]), num(range[3])];
    if ((kind === "str" || kind === "password") && [min, max].some((n) => n !== undefined && n < 0))
      throw new Error(`${raw}: a length cannot be negative`);
    return { type: { kind, min, max }, optional };
  }
  if (/^(bool|email|url|port|device(\(subsystem=[a-z]+\))?)$/.test(t)) {
    return { type: { kind: t.replace(/\(.*$/, "") as "bool" }, optional };
  }
  const match = /^match\((.+)\)$/.exec(t);
  if (match?.[1]) return { type: { kind: "match", regex: new RegExp(match[1]) }, optional };
  const list = /^list\((.+)\)$/.exec(t);
  if (list?.[1]) return { type: { kind: "list", values: list[1].split("|") }, optional };
  throw new Error(`"${raw}" is not a schema type Home Assistant knows`);
}

/** Problems with `value` as an option of type `type` (empty: valid). */
function checkValue(type: SchemaType, value: unknown): string[] {
  const bad = (why: string) => [`${JSON.stringify(value)} ${why}`];
  switch (type.kind) {
    case "str":
    case "password":
      if (typeof value !== "string") return bad("is not a string");
      if (type.min !== undefined && value.length < type.min) return bad("is too short");
      if (type.max !== undefined && value.length > type.max) return bad("is too long");
      return [];
    case "int":
    case "float":
      if (typeof value !== "number" || (type.kind === "int" && !Number.isInteger(value)))
        return bad(`is not ${type.kind === "int" ? "an integer" : "a number"}`);
      if (type.min !== undefined && value < type.min) return bad("is below the minimum");
      if (type.max !== undefined && value > type.max) return bad("is above the maximum");
      return [];
    case "bool":
      return typeof value === "boolean" ? [] : bad("is not true or false");
    case "port":
      return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 65535
        ? []
        : bad("is not a port");
    case "url":
      return typeof value === "string" && URL.canParse(value) ? [] : bad("is not a URL");
    case "email":
      return typeof value === "string" && /^[^@\s]+@[^@\s]+$/.test(value) ? [] : bad("is no email");
    case "match":
      return typeof value === "string" && type.regex.test(value) ? [] : bad("does not match");
    case "list":
      return type.values.includes(String(value)) ? [] : bad(`is not one of ${type.values}`);
    default:
      return [];
  }
}

const isMap = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Walks a schema against its options: "nested arrays and dictionaries ... a depth of two". */
function checkSchema(
  schema: Record<string, unknown>,
  options: Record<string, unknown>,
  depth = 1,
): string[] {
  const problems: string[] = [];
  if (depth > 2) return ["nested deeper than two levels"];
  for (const [key, element] of Object.entries(schema)) {
    const value = options[key];
    if (typeof element === "string") {
      let parsed: ReturnType<typeof parseSchemaType>;
      try {
        parsed = parseSchemaType(element);
      } catch (err) {
        problems.push(`${key}: ${(err as Error).message}`);
        continue;
      }
      // "To make an option truly optional ... put a `?` ... and do not define any default value
      // in the `options` dictionary. If any default value is given, the option becomes required."
      if (parsed.optional && key in options) problems.push(`${key}: optional but has a default`);
      if (!parsed.optional && !(key in options)) problems.push(`${key}: has no default`);
      if (value !== undefined && value !== null) {
        for (const p of checkValue(parsed.type, value)) problems.push(`${key}: ${p}`);
      }
    } else if (Array.isArray(element)) {
      if (element.length !== 1) problems.push(`${key}: a list schema has one element`);
      if (!Array.isArray(value)) {
        problems.push(`${key}: the default of a list must be a list`);
        continue;
      }
      const item = element[0];
      for (const v of value) {
        if (typeof item === "string") {
          for (const p of checkValue(parseSchemaType(item).type, v))
            problems.push(`${key}[]: ${p}`);
        } else if (isMap(item) && isMap(v)) {
          problems.push(...checkSchema(item, v, depth + 1).map((p) => `${key}[].${p}`));
        }
      }
    } else if (isMap(element)) {
      problems.push(
        ...checkSchema(element, isMap(value) ? value : {}, depth + 1).map((p) => `${key}.${p}`),
      );
    } else {
      problems.push(`${key}: schema element ${JSON.stringify(element)} is not a type`);
    }
  }
  for (const key of Object.keys(options)) {
    if (!(key in schema)) problems.push(`${key}: in options but not in schema`);
  }
  return problems;
}

const pngSize = (path: string): { width: number; height: number } => {
  const data = readFileSync(path);
  expect(data.subarray(0, 8).toString("hex"), path).toBe("89504e470d0a1a0a");
  return { width: data.readUInt32BE(16), height: data.readUInt32BE(20) };
};

// -- the checks --------------------------------------------------------------------------------

describe("the add-on's config.yaml, by Home Assistant's documented rules", () => {
  it("has the required keys, a URI-friendly slug (the folder's name) and package.json's version", () => {
    for (const key of REQUIRED_KEYS) expect(config[key], key).toBeTruthy();
    expect(config.slug).toBe("motioneye_vault");
    expect(String(config.slug)).toMatch(SLUG);
    expect(existsSync(join(REPO_DIR, String(config.slug), "config.yaml"))).toBe(true);
    expect(config.version).toBe(pkg.version);
    expect(typeof config.version).toBe("string");
    expect(URL.canParse(String(config.url))).toBe(true);
  });

  it("runs on aarch64, amd64 and armv7 only, values the docs list", () => {
    expect(config.arch).toEqual(expect.arrayContaining(["aarch64", "amd64", "armv7"]));
    for (const a of config.arch as string[]) expect(ARCHES).toContain(a);
  });

  it("starts as an application with the base image's own init, needing Home Assistant's MQTT", () => {
    expect(STARTUP).toContain(config.startup);
    expect(BOOT).toContain(config.boot);
    // s6-overlay v3 base images: "setting this to `false` is required or the addon won't start"
    expect(config.init).toBe(false);
    for (const s of config.services as string[]) expect(s).toMatch(SERVICE);
    expect(config.services).toContain("mqtt:need");
  });

  it("maps media read-only, share and its own config folder, with documented map types", () => {
    const maps = (config.map as unknown[]).map((m) => {
      if (typeof m === "string") {
        const [type, mode] = m.split(":");
        return { type, read_only: mode !== "rw" };
      }
      expect(isMap(m)).toBe(true);
      const entry = m as { type: string; read_only?: boolean; path?: string };
      expect(Object.keys(entry).every((k) => ["type", "read_only", "path"].includes(k))).toBe(true);
      return { type: entry.type, read_only: entry.read_only ?? true };
    });
    for (const m of maps) expect(MAP_TYPES, String(m.type)).toContain(m.type);
    expect(maps).toContainEqual({ type: "media", read_only: true });
    expect(maps.map((m) => m.type)).toEqual(expect.arrayContaining(["share", "addon_config"]));
  });

  it("exposes 8099/tcp and watches /healthz on it", () => {
    const ports = config.ports as Record<string, unknown>;
    for (const [key, host] of Object.entries(ports)) {
      expect(key).toMatch(PORT_KEY);
      expect(host === null || (Number.isInteger(host) && (host as number) <= 65535)).toBe(true);
    }
    expect(ports["8099/tcp"]).toBe(8099);
    expect(Object.keys(config.ports_description as object)).toEqual(Object.keys(ports));
    const watchdog = WATCHDOG.exec(String(config.watchdog));
    expect(watchdog, String(config.watchdog)).not.toBeNull();
    expect(`${watchdog?.[3]}/tcp` in ports).toBe(true);
    expect(config.watchdog).toBe("http://[HOST]:[PORT:8099]/healthz");
  });

  it("has a schema for every option, a default for every required one, valid defaults", () => {
    const schema = config.schema as Record<string, unknown>;
    const options = config.options as Record<string, unknown>;
    expect(checkSchema(schema, options)).toEqual([]);
    // the keys users set in the UI
    expect(Object.keys(schema)).toEqual(
      expect.arrayContaining([
        "source_path",
        "destination_type",
        "destination_path",
        "sftp_host",
        "s3_bucket",
        "encryption_recipients",
        "telegram_token",
        "telegram_allowed_chat_ids",
        "schedule",
        "http_token",
      ]),
    );
    // secrets are `password` (hidden in the UI)
    for (const key of ["sftp_password", "s3_secret_access_key", "telegram_token", "http_token"]) {
      expect(schema[key]).toBe("password?");
    }
  });

  it("the rules catch what the Supervisor would refuse", () => {
    expect(() => parseSchemaType("str=default")).toThrow();
    expect(() => parseSchemaType("string")).toThrow();
    expect(parseSchemaType("int(0,3600)?")).toEqual({
      type: { kind: "int", min: 0, max: 3600 },
      optional: true,
    });
    expect(checkSchema({ a: "int(1,5)" }, { a: 9 })).toEqual(["a: 9 is above the maximum"]);
    expect(checkSchema({ a: "str?" }, { a: "x" })).toEqual(["a: optional but has a default"]);
    expect(checkSchema({ a: "str" }, {})).toEqual(["a: has no default"]);
    expect(checkSchema({}, { a: 1 })).toEqual(["a: in options but not in schema"]);
    expect(checkSchema({ a: ["match(^age1[a-z0-9]+$)"] }, { a: ["nope"] })).toHaveLength(1);
    expect(checkSchema({ a: "list(x|y)" }, { a: "z" })).toHaveLength(1);
  });
});

describe("the rest of the add-on repository", () => {
  it("translations/en.yaml names every option and the port, and nothing else", () => {
    const conf = translations.configuration as Record<
      string,
      { name?: string; description?: string }
    >;
    expect(Object.keys(conf).sort()).toEqual(Object.keys(config.schema as object).sort());
    for (const [key, t] of Object.entries(conf)) {
      expect(t.name, key).toBeTruthy();
      expect(t.description, key).toBeTruthy();
    }
    const network = Object.keys(translations.network as object).map((k) => k.toLowerCase());
    expect(network).toEqual(Object.keys(config.ports as object));
  });

  it("build.yaml names a Home Assistant base image for each architecture, and only those", () => {
    const from = build.build_from as Record<string, string>;
    expect(Object.keys(from).sort()).toEqual([...(config.arch as string[])].sort());
    for (const [arch, image] of Object.entries(from)) {
      expect(image).toMatch(IMAGE_REF);
      expect(image).toMatch(new RegExp(`^ghcr\\.io/home-assistant/${arch}-base:`));
    }
    for (const [k, v] of Object.entries((build.args ?? {}) as object)) {
      expect(typeof k).toBe("string");
      expect(typeof v).toBe("string");
    }
  });

  it("repository.yaml has its required name; url and maintainer are text", () => {
    expect(repository.name).toEqual(expect.any(String));
    expect(URL.canParse(String(repository.url))).toBe(true);
    expect(repository.maintainer).toEqual(expect.any(String));
  });

  it("has DOCS.md, a CHANGELOG.md for this version, a square icon and a logo (PNG)", () => {
    expect(readFileSync(join(ADDON_DIR, "DOCS.md"), "utf8")).toMatch(/## Installation/);
    expect(readFileSync(join(ADDON_DIR, "CHANGELOG.md"), "utf8")).toContain(`## ${pkg.version}`);
    const icon = pngSize(join(ADDON_DIR, "icon.png"));
    expect(icon).toEqual({ width: 128, height: 128 });
    const logo = pngSize(join(ADDON_DIR, "logo.png"));
    expect(logo.width).toBeGreaterThan(logo.height);
  });

  it("the run script passes shellcheck as a POSIX sh script", async () => {
    const { stdout } = await runCommand(
      "shellcheck",
      ["--shell=sh", "--severity=style", join(ADDON_DIR, "run.sh")],
      { allowFailure: true },
    );
    expect(stdout).toBe("");
  });

  it("the Supervisor finds only the add-on's config.yaml in the repository", () => {
    // "The Supervisor does a recursive search for `config.yaml` in the add-on repository."
    const found: string[] = [];
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(dir, e.name));
        else if (/^config\.(ya?ml|json)$/.test(e.name)) found.push(join(dir, e.name));
      }
    };
    walk(REPO_DIR);
    expect(found).toEqual([join(ADDON_DIR, "config.yaml")]);
  });
});
