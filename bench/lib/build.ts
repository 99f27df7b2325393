/**
 * The CLI compiled as `npm run build` compiles it, into bench/.work/<pid>/ (git-ignored) rather
 * than dist/, so that a benchmark measures what users run (the bin is compiled JavaScript: the
 * tsx loader that the tests use adds ~40 MB of RSS and a slower start) without touching dist/.
 * One folder per benchmark process: two runs at once must not delete each other's build.
 */
import { execFile } from "node:child_process";
import { copyFile, mkdir, rm, rmdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { onCleanup } from "./cleanup.js";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const WORK = join(REPO, "bench", ".work", String(process.pid));
let built: Promise<string> | undefined;

/**
 * Path of the compiled cli.js: built once, then reused until the benchmark's cleanup (or
 * `removeBuild`) deletes it.
 */
export function builtCli(): Promise<string> {
  built ??= (async () => {
    onCleanup(removeBuild);
    await rm(WORK, { recursive: true, force: true });
    await mkdir(WORK, { recursive: true });
    // cli.ts reads ../package.json (its version), and "type": "module" must apply.
    await copyFile(join(REPO, "package.json"), join(WORK, "package.json"));
    const tsc = join(REPO, "node_modules", ".bin", "tsc");
    const out = join(WORK, "dist");
    try {
      await promisify(execFile)(tsc, ["-p", join(REPO, "tsconfig.build.json"), "--outDir", out], {
        cwd: REPO,
      });
    } catch (err) {
      // Type errors elsewhere in the tree still emit JavaScript (as `npm run build` does).
      const stdout = (err as { stdout?: string }).stdout ?? "";
      process.stderr.write(
        `bench: tsc reported problems (built anyway):\n${stdout.slice(0, 2000)}\n`,
      );
    }
    return join(out, "cli.js");
  })();
  return built;
}

/** Removes this process's build. */
export async function removeBuild(): Promise<void> {
  built = undefined;
  await rm(WORK, { recursive: true, force: true });
  await rmdir(dirname(WORK)).catch(() => {}); // bench/.work, unless another run uses it
}
