import { existsSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { REPO } from "../harness/cli.js";

/**
 * `docker build` cannot run here (no engine), so what can go wrong without one is checked: every
 * file a Dockerfile copies is in its build context and not dropped by `.dockerignore`, the
 * install is `npm ci` from the lock file, nothing is tied to one architecture, the image has
 * ffmpeg and a health check on /healthz, and docker/compose.yml is YAML with the vault service.
 */

interface Instruction {
  line: number;
  keyword: string;
  args: string;
}

/** Instructions of a Dockerfile: continuation lines joined, comments and blanks dropped. */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = "";
  let start = 0;
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (pending === "" && (line === "" || line.startsWith("#"))) return;
    if (pending === "") start = i + 1;
    if (line.startsWith("#")) return; // a comment inside a continued instruction
    pending += `${line.replace(/\\$/, "")} `;
    if (line.endsWith("\\")) return;
    const [keyword = "", ...rest] = pending.trim().split(/\s+/);
    out.push({ line: start, keyword: keyword.toUpperCase(), args: rest.join(" ") });
    pending = "";
  });
  return out;
}

/** The sources of a COPY/ADD that come from the build context (not `--from=` a stage). */
function contextSources(ins: Instruction): string[] {
  if (ins.keyword !== "COPY" && ins.keyword !== "ADD") return [];
  const words = ins.args.startsWith("[")
    ? (JSON.parse(ins.args) as string[])
    : ins.args.split(/\s+/);
  if (words.some((w) => w.startsWith("--from="))) return [];
  const paths = words.filter((w) => !w.startsWith("--"));
  return paths.slice(0, -1);
}

/** `.dockerignore` as Docker reads it: patterns from the context root, `!` re-includes. */
function dockerignore(file: string): (path: string) => boolean {
  if (!existsSync(file)) return () => false;
  const rules = readFileSync(file, "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => {
      const negate = l.startsWith("!");
      const pattern = (negate ? l.slice(1) : l).replace(/^\/+|\/+$/g, "");
      const source = pattern
        .split("")
        .map((c, i, all) => {
          if (c === "*") return all[i + 1] === "*" ? "" : all[i - 1] === "*" ? ".*" : "[^/]*";
          if (c === "?") return "[^/]";
          return c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
        })
        .join("");
      return { negate, regex: new RegExp(`^${source}$`) };
    });
  return (path: string) => {
    // a path is excluded when it, or a folder above it, matches (the last matching rule wins)
    const parts = path.split("/");
    let excluded = false;
    for (const rule of rules) {
      for (let i = 1; i <= parts.length; i++) {
        if (rule.regex.test(parts.slice(0, i).join("/"))) excluded = !rule.negate;
      }
    }
    return excluded;
  };
}

const DOCKERFILES = [
  { file: "docker/Dockerfile", context: "." },
  {
    file: "integrations/homeassistant-addon/motioneye_vault/Dockerfile",
    context: "integrations/homeassistant-addon/motioneye_vault",
  },
];

describe("the Dockerfiles", () => {
  for (const { file, context } of DOCKERFILES) {
    it(`${file}: every file it copies is in its build context (${context})`, () => {
      const text = readFileSync(join(REPO, file), "utf8");
      const ignored = dockerignore(join(REPO, context, ".dockerignore"));
      const sources = instructions(text).flatMap(contextSources);
      expect(sources.length).toBeGreaterThan(0);
      for (const src of sources) {
        const path = relative(".", src.replace(/^\.\//, "")) || ".";
        expect(existsSync(join(REPO, context, path)), `${file}: COPY ${src}`).toBe(true);
        expect(ignored(path), `${file}: COPY ${src} is excluded by .dockerignore`).toBe(false);
      }
    });

    it(`${file}: installs with npm ci (the lock file), then only production dependencies`, () => {
      const runs = instructions(readFileSync(join(REPO, file), "utf8"))
        .filter((i) => i.keyword === "RUN")
        .map((i) => i.args);
      expect(runs.join("\n")).not.toMatch(/npm (install|i)\b/);
      const commands = runs.flatMap((r) => r.split(/&&|;/)).map((c) => c.trim());
      const npmCi = commands.filter((c) => /^npm ci\b/.test(c));
      expect(npmCi.some((c) => !c.includes("--omit=dev"))).toBe(true);
      expect(npmCi.some((c) => c.includes("--omit=dev"))).toBe(true);
      expect(runs.some((r) => /(apt-get install|apk add)[^&]*\bffmpeg\b/.test(r))).toBe(true);
    });
  }

  it("docker/Dockerfile: multi-arch (no architecture in it), health check on /healthz, runs serve", () => {
    const text = readFileSync(join(REPO, "docker/Dockerfile"), "utf8");
    const steps = instructions(text);
    const code = steps.map((i) => `${i.keyword} ${i.args}`).join("\n");
    expect(code).not.toMatch(/amd64|x86_64|aarch64|arm64|armv7|armhf|--platform/);
    for (const from of steps.filter((i) => i.keyword === "FROM")) {
      expect(from.args).toMatch(/^node:20-bookworm-slim\b/); // published for amd64, arm64, arm/v7
    }
    const health = steps.find((i) => i.keyword === "HEALTHCHECK");
    expect(health?.args).toMatch(/127\.0\.0\.1:.*8099.*\/healthz/);
    expect(steps.find((i) => i.keyword === "EXPOSE")?.args).toBe("8099");
    const entry = JSON.parse(steps.find((i) => i.keyword === "ENTRYPOINT")?.args ?? "[]");
    const cmd = JSON.parse(steps.find((i) => i.keyword === "CMD")?.args ?? "[]");
    expect([...entry, ...cmd]).toEqual([
      "node",
      "/app/dist/cli.js",
      "serve",
      "--config",
      "/config/config.yml",
    ]);
    expect(text).toContain(
      "docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 -f docker/Dockerfile",
    );
  });

  it("the add-on's Dockerfile builds on Home Assistant's base image and runs the run script", () => {
    const steps = instructions(
      readFileSync(
        join(REPO, "integrations/homeassistant-addon/motioneye_vault/Dockerfile"),
        "utf8",
      ),
    );
    expect(steps.filter((i) => i.keyword === "FROM").map((i) => i.args)).toEqual([
      `\${BUILD_FROM} AS build`,
      `\${BUILD_FROM}`,
    ]);
    expect(steps.find((i) => i.keyword === "CMD")?.args).toBe('["/run.sh"]');
  });

  it("the checks see what they are meant to see", () => {
    const steps = instructions("FROM a\n# c\nCOPY x \\\n  # inner\n  y /z/\nCOPY --from=b /p /q\n");
    expect(steps.map((i) => i.keyword)).toEqual(["FROM", "COPY", "COPY"]);
    expect(steps.flatMap(contextSources)).toEqual(["x", "y"]);
    const ignored = dockerignore(join(REPO, ".dockerignore"));
    expect(ignored("node_modules/x/index.js")).toBe(true);
    expect(ignored("docker/config/config.yml")).toBe(true);
    expect(ignored("debug.log")).toBe(true);
    expect(ignored("src/cli.ts")).toBe(false);
  });
});

describe("docker/compose.yml", () => {
  it("is YAML with the vault built from docker/Dockerfile and its broker", () => {
    const compose = parseYaml(readFileSync(join(REPO, "docker/compose.yml"), "utf8")) as {
      services: Record<string, Record<string, unknown>>;
    };
    expect(Object.keys(compose.services).sort()).toEqual(["mosquitto", "vault"]);
    const vault = compose.services.vault as {
      build: { context: string; dockerfile: string };
      volumes: string[];
    };
    const context = join(REPO, "docker", vault.build.context);
    expect(existsSync(join(context, vault.build.dockerfile))).toBe(true);
    expect(join(context, vault.build.dockerfile)).toBe(join(REPO, "docker/Dockerfile"));
    expect(vault.volumes).toEqual(expect.arrayContaining(["./config:/config:ro"]));
    expect(compose.services.vault?.depends_on).toEqual(["mosquitto"]);
    const broker = compose.services.mosquitto as { volumes: string[] };
    for (const v of broker.volumes.filter((x) => x.startsWith("./"))) {
      expect(existsSync(join(REPO, "docker", v.split(":")[0] ?? ""))).toBe(true);
    }
  });
});
