/**
 * Vitest global setup: the tests run the compiled CLI (`dist/cli.js`), as users run the bin, and
 * it starts in half the time of the TypeScript source under tsx. So that a test never runs
 * older code than `src/`, the build is redone here when a file under `src/` is newer than it
 * (`npm test` builds first, so there this finds it current).
 */
import { execFileSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { CLI_BIN, REPO } from "./cli.js";

function newestMtimeMs(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const t = entry.isDirectory() ? newestMtimeMs(path) : statSync(path).mtimeMs;
    if (t > newest) newest = t;
  }
  return newest;
}

export default function setup(): void {
  const built = statSync(CLI_BIN, { throwIfNoEntry: false })?.mtimeMs ?? 0;
  if (built >= newestMtimeMs(join(REPO, "src"))) return;
  process.stdout.write("dist/ is older than src/: building it for the tests (npm run build)\n");
  execFileSync("npm", ["run", "--silent", "build"], { cwd: REPO, stdio: "inherit" });
}
