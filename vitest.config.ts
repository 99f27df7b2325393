import { defineConfig } from "vitest/config";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/**
 * The long, mostly waiting files (faults, then integration) first and the quick unit files last,
 * so neither of the two workers sits idle at the end while the other runs a minute-long file.
 * Within each group, vitest's own order (longest last time, or largest file on a fresh clone).
 */
class SlowFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const group = (f: TestSpecification) =>
      f.moduleId.includes("/test/faults/") ? 0 : f.moduleId.includes("/test/integration/") ? 1 : 2;
    return (await super.sort(files)).sort((a, b) => group(a) - group(b));
  }
}

// Tests start real servers (sshd, vsftpd, mosquitto) on free loopback ports; the machine this
// was tuned on has 2 cores, so at most 2 test files run at once, each in its own process
// (pool "forks": servers are tracked and killed per process, see test/harness/processes.ts).
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Builds dist/ when src/ is newer (the tests run the compiled CLI), and prints the faults
    // suite's totals (cuts, kills, fuzz inputs, clips verified/lost) at the end.
    globalSetup: ["test/harness/buildSetup.ts", "test/faults/globalSetup.ts"],
    pool: "forks",
    sequence: { sequencer: SlowFirstSequencer },
    fileParallelism: true,
    maxWorkers: 2,
    minWorkers: 1,
    // Generous: on a busy 2-core machine a real-server test can take several times its usual time.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
  },
});
