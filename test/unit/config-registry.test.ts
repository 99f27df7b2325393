import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { ConfigError, loadConfig } from "../../src/config/load.js";
import { defaultRegistries } from "../../src/config/schema.js";
import { editDistance, nearestKey } from "../../src/config/strict.js";
import { defineBackend, Registry } from "../../src/storage/registry.js";
import { sourceBackends } from "../../src/storage/source/registry.js";
import type { VaultStore } from "../../src/storage/types.js";
import { vaultBackends } from "../../src/storage/vault/registry.js";

/**
 * The config's backend sections are built from the storage registries, and every object in the
 * config is strict. (The black-box config tests of `sources:` live with the end-to-end suite.)
 */

function load(yaml: string, env: Record<string, string> = {}, registries = defaultRegistries) {
  const dir = mkdtempSync(join(tmpdir(), "mev-registry-"));
  writeFileSync(join(dir, "secret"), "from-a-file\n");
  writeFileSync(join(dir, "config.yml"), yaml);
  return loadConfig({ file: join(dir, "config.yml"), env, registries });
}

function problems(yaml: string, env: Record<string, string> = {}, registries = defaultRegistries) {
  try {
    load(yaml, env, registries);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

/** A vault backend as a new one would be: one definition, added to a registry. */
const memoryVault = defineBackend({
  type: "memory",
  schema: z.object({ bucket: z.string().min(1), secret: z.string().optional() }),
  secrets: ["secret"],
  create: async (): Promise<VaultStore> => {
    throw new Error("not made in this test");
  },
});

describe("the config schema comes from the backend registries", () => {
  it("names the registered types when a type is unknown", () => {
    expect(problems("source:\n  type: nfs\ndestination:\n  type: dropbox\n")).toEqual([
      `source.type: unknown source type "nfs" (known: ${sourceBackends.types.join(", ")})`,
      `destination.type: unknown destination type "dropbox" (known: ${vaultBackends.types.join(", ")})`,
    ]);
  });

  it("takes a newly registered backend with its own keys, secrets and strictness", () => {
    const registries = {
      sources: defaultRegistries.sources,
      vaults: new Registry<VaultStore>([...vaultBackends.all, memoryVault]),
    };
    const { config } = load(
      "destination:\n  type: memory\n  bucket: clips\n  secretFile: secret\n",
      {},
      registries,
    );
    expect(config.destination).toEqual({ type: "memory", bucket: "clips", secret: "from-a-file" });
    expect(
      problems("destination:\n  type: memory\n  bucket: b\n  buckt: c\n", {}, registries),
    ).toEqual(["destination.buckt: unknown key (did you mean bucket?)"]);
    // Without the registry line, the same config names the type as unknown.
    expect(problems("destination:\n  type: memory\n  bucket: clips\n")[0]).toMatch(
      /^destination\.type: unknown destination type "memory" \(known: /,
    );
  });

  it("checks a backend's keys for its type only: a key of another type is unknown", () => {
    expect(problems("source:\n  type: local\n  host: cam.local\n")).toEqual([
      "source.host: unknown key",
    ]);
    // An environment variable for another type's key is not used (it may be set for others).
    expect(
      load("source:\n  type: local\n", { MOTIONEYE_VAULT_SOURCE_HOST: "x" }).config.sources[0],
    ).not.toHaveProperty("host");
  });
});

describe("strict keys", () => {
  it("names unknown keys at any depth, with the nearest known key when one is close", () => {
    expect(
      problems(
        "sorces: []\nsource:\n  stableSecond: 5\nmqtt:\n  homeassistant:\n    enabeld: false\ntelegram:\n  notify:\n    clip: true\nfoo: 1\n",
      ),
    ).toEqual([
      "sorces: unknown key (did you mean sources?)",
      "source.stableSecond: unknown key (did you mean stableSeconds?)",
      "mqtt.homeassistant.enabeld: unknown key (did you mean enabled?)",
      "telegram.notify.clip: unknown key (did you mean clips?)",
      "foo: unknown key",
    ]);
  });

  it("suggests across case and separators, not for far-off words", () => {
    expect(nearestKey("stable_seconds", ["stableSeconds", "extensions"])).toBe("stableSeconds");
    expect(nearestKey("StableSeconds", ["stableSeconds"])).toBe("stableSeconds");
    expect(nearestKey("hots", ["host", "port"])).toBe("host");
    expect(nearestKey("password", ["path", "port"])).toBeUndefined();
    expect(editDistance("sorces", "sources")).toBe(1);
    expect(editDistance("tpye", "type")).toBe(1);
  });
});

describe("sources:", () => {
  const two = [
    "sources:",
    "  - name: garage",
    "    type: ftp",
    "    host: 192.168.1.21",
    "    passwordFile: secret",
    "    path: /sdcard",
    "  - name: porch",
    "    type: local",
    "    path: ./porch",
    "    stableSeconds: 3",
    "",
  ].join("\n");

  it("is a list of named sources with prefixed ids; a single source: is a list of one", () => {
    const { config } = load(two);
    expect(config.sources.map((s) => [s.name, s.prefix, s.type])).toEqual([
      ["garage", "garage", "ftp"],
      ["porch", "porch", "local"],
    ]);
    expect(config.sources[0]?.password).toBe("from-a-file");
    expect(String(config.sources[1]?.path)).toMatch(/\/porch$/);
    const single = load("source:\n  type: local\n  path: /media\n").config.sources;
    expect(single).toEqual([
      expect.objectContaining({ name: "default", prefix: "", path: "/media" }),
    ]);
  });

  it("takes each entry's keys from MOTIONEYE_VAULT_SOURCES_<NAME>_<KEY>", () => {
    const { config } = load(two, {
      MOTIONEYE_VAULT_SOURCES_GARAGE_PORT: "2121",
      MOTIONEYE_VAULT_SOURCES_GARAGE_USER: "admin",
      MOTIONEYE_VAULT_SOURCES_PORCH_STABLE_SECONDS: "7",
    });
    expect(config.sources[0]).toMatchObject({ port: 2121, user: "admin" });
    expect(config.sources[1]).toMatchObject({ stableSeconds: 7 });
  });

  it("refuses duplicate names, two unprefixed sources, bad names and both forms, one line each", () => {
    expect(
      problems(
        [
          "sources:",
          "  - { name: home, prefix: '' }",
          "  - { name: garage }",
          "  - { name: garage }",
          "  - { name: old, prefix: '' }",
          "  - { name: Front Door }",
          "",
        ].join("\n"),
      ),
    ).toEqual([
      'sources[2].name: "garage" is the name of sources[1] too; each source needs its own name',
      'sources[3].prefix: only one source may keep unprefixed clip ids (prefix: ""); sources[0] does already',
      "sources[4].name: must be lowercase letters, digits, - and _ (like garage or cam-2)",
    ]);
    expect(problems("source:\n  type: local\nsources:\n  - name: a\n")).toEqual([
      "sources: give either source: (one camera device) or sources: (several), not both",
    ]);
    expect(problems("sources:\n  - name: a\n    stableSecond: 1\n")).toEqual([
      "sources[0].stableSecond: unknown key (did you mean stableSeconds?)",
    ]);
  });
});
