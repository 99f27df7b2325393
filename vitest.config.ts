import { defineConfig } from "vitest/config";

// Tests start real servers (sshd, vsftpd, mosquitto) on free loopback ports; the machine this
// was tuned on has 2 cores, so at most 2 test files run at once, each in its own process
// (pool "forks": servers are tracked and killed per process, see test/harness/processes.ts).
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Prints the faults suite's totals (cuts, kills, fuzz inputs, clips verified/lost) at the end.
    globalSetup: ["test/faults/globalSetup.ts"],
    pool: "forks",
    fileParallelism: true,
    maxWorkers: 2,
    minWorkers: 1,
    // Generous: on a busy 2-core machine a real-server test can take several times its usual time.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
  },
});
