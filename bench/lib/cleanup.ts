/**
 * Temporary trees and servers a benchmark made, removed even when the run is interrupted
 * (Ctrl-C): a 1 GiB clip must not be left behind in /tmp.
 */
const pending = new Set<() => Promise<unknown>>();
let hooked = false;

/** Registers `fn` to run on interrupt; call the returned function to run it now (once). */
export function onCleanup(fn: () => Promise<unknown>): () => Promise<void> {
  hook();
  let done = false;
  const run = async () => {
    if (done) return;
    done = true;
    pending.delete(run);
    await fn();
  };
  pending.add(run);
  return run;
}

/** Runs every registered cleanup (used on interrupt and at the end of bench/run.ts). */
export async function cleanupAll(): Promise<void> {
  await Promise.allSettled([...pending].map((fn) => fn()));
}

function hook(): void {
  if (hooked) return;
  hooked = true;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n${signal}: cleaning up benchmark files and servers\n`);
      void cleanupAll().finally(() => process.exit(130));
    });
  }
}
