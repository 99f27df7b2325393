import { copyFile, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO } from "../harness/cli.js";
import { tempDir } from "../harness/files.js";
import { runCommand } from "../harness/processes.js";

/**
 * A reproducible install on every machine people run this on: `npm ci` from the committed lock
 * file, on x64 and on a Raspberry Pi (arm64, armv7; glibc, or musl as in the Home Assistant
 * add-on's Alpine image). npm itself is asked, offline and with an empty cache, what `npm ci`
 * would install on each of them (`--os`, `--cpu`, `--libc` pick the platform): that needs a lock
 * in sync with package.json that names every platform's builds, and nothing from the network.
 */

interface LockEntry {
  version?: string;
  os?: string[];
  cpu?: string[];
  libc?: string[];
  optionalDependencies?: Record<string, string>;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  dev?: boolean;
}
interface Lock {
  lockfileVersion: number;
  packages: Record<string, LockEntry>;
}

let lock: Lock;
let pkg: Record<string, Record<string, string> | string>;
let work: string;

beforeAll(async () => {
  lock = JSON.parse(await readFile(join(REPO, "package-lock.json"), "utf8")) as Lock;
  pkg = JSON.parse(await readFile(join(REPO, "package.json"), "utf8"));
  work = await tempDir();
  await copyFile(join(REPO, "package.json"), join(work, "package.json"));
  await copyFile(join(REPO, "package-lock.json"), join(work, "package-lock.json"));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const name = (path: string) => path.replace(/^.*node_modules\//, "");

/**
 * Native builds (a `cpu` set: one per processor), by the package that lists them. fsevents
 * (macOS only, any cpu) is no such build: Linux never needs it.
 */
function platformFamilies(): Map<string, string[]> {
  const families = new Map<string, string[]>();
  for (const [path, entry] of Object.entries(lock.packages)) {
    for (const dep of Object.keys(entry.optionalDependencies ?? {})) {
      const built = lock.packages[`node_modules/${dep}`];
      if (!built?.cpu) continue;
      const parent = path === "" ? "(root)" : name(path);
      families.set(parent, [...(families.get(parent) ?? []), dep]);
    }
  }
  return families;
}

/** What `npm ci` would add on that platform, as npm itself works it out (dry run, offline). */
async function npmCiPlan(platform: { cpu: string; libc?: string }): Promise<string[]> {
  const args = ["ci", "--dry-run", "--offline", "--ignore-scripts", "--no-audit", "--no-fund"];
  args.push("--os=linux", `--cpu=${platform.cpu}`, `--cache=${join(work, "npm-cache")}`);
  if (platform.libc) args.push(`--libc=${platform.libc}`);
  const { stdout, stderr } = await runCommand("npm", args, { cwd: work, timeoutMs: 120_000 });
  expect(stdout + stderr).toMatch(/added \d+ packages/);
  return [...stdout.matchAll(/^add (\S+) \S+$/gm)].map((m) => m[1] ?? "");
}

describe("the lock file", { timeout: 180_000 }, () => {
  it("is npm's v3 format and names exactly package.json's dependencies", () => {
    expect(lock.lockfileVersion).toBe(3);
    const root = lock.packages[""];
    expect(root?.dependencies).toEqual(pkg.dependencies);
    expect(root?.devDependencies).toEqual(pkg.devDependencies);
  });

  it("lists the linux arm64, armv7 and x64 builds of every platform-specific package", () => {
    const families = platformFamilies();
    // biome (lint), esbuild (tsx), rollup (vitest), typescript 7 (tsc): native builds each
    expect([...families.keys()].sort()).toEqual(
      expect.arrayContaining(["@biomejs/biome", "esbuild", "rollup", "typescript"]),
    );
    for (const [family, builds] of families) {
      const entries = builds.map((b) => ({ name: b, ...lock.packages[`node_modules/${b}`] }));
      const on = (cpu: string) =>
        entries.filter((e) => e.os?.includes("linux") && e.cpu?.includes(cpu)).map((e) => e.name);
      expect(on("arm64"), `${family}: linux arm64`).not.toEqual([]);
      expect(on("x64"), `${family}: linux x64`).not.toEqual([]);
      // Every armv7 build the package declares is in the lock (biome publishes none).
      const declared = Object.keys(
        lock.packages[`node_modules/${family}`]?.optionalDependencies ?? {},
      ).filter((d) => /linux-arm(?!64)/.test(d));
      for (const d of declared) expect(lock.packages[`node_modules/${d}`], d).toBeDefined();
      if (family !== "@biomejs/biome") expect(on("arm"), `${family}: linux armv7`).not.toEqual([]);
    }
  });

  const platforms = [
    { label: "Raspberry Pi OS 64-bit (arm64)", cpu: "arm64", tag: "arm64" },
    { label: "Raspberry Pi OS 32-bit (armv7)", cpu: "arm", tag: "arm" },
    { label: "x64", cpu: "x64", tag: "x64" },
    { label: "the add-on's Alpine on arm64 (musl)", cpu: "arm64", libc: "musl", tag: "arm64" },
  ];
  for (const p of platforms) {
    it(`npm ci on ${p.label} installs that platform's builds, offline`, async () => {
      const plan = await npmCiPlan(p);
      const builds = plan.filter((n) =>
        /^@(biomejs\/cli-|esbuild\/|rollup\/rollup-|typescript\/typescript-)/.test(n),
      );
      expect(builds.length).toBeGreaterThanOrEqual(p.cpu === "arm" ? 3 : 4);
      for (const b of builds) {
        expect(b, "a build for this cpu").toMatch(new RegExp(`linux-${p.tag}(?![0-9])`));
        if (p.libc === "musl" && /rollup|biomejs/.test(b)) expect(b).toMatch(/musl/);
        if (!p.libc && /rollup/.test(b)) expect(b).toMatch(/gnu/);
      }
      expect(plan).toContain(`@typescript/typescript-linux-${p.tag}`);
    });
  }
});
