import { readFileSync } from "node:fs";

/** This program's version and project page, from its package.json (src/ and dist/ alike). */
export function packageInfo(): { version: string; homepage?: string } {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
    return {
      version: typeof pkg.version === "string" ? pkg.version : "unknown",
      homepage: typeof pkg.homepage === "string" ? pkg.homepage : undefined,
    };
  } catch {
    return { version: "unknown" };
  }
}
