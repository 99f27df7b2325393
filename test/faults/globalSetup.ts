/**
 * Vitest global setup: gives the faults suite a counter file for this run (test processes are
 * forked after this runs and inherit the variable) and prints its totals at the very end.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { COUNTERS_ENV, summarize, summaryLine } from "./counters.js";

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), "mev-faults-"));
  const file = join(dir, "counters.jsonl");
  process.env[COUNTERS_ENV] = file;
  return () => {
    const summary = summarize(file);
    rmSync(dir, { recursive: true, force: true });
    if (summary.scenarios.size === 0) return; // the faults suite did not run
    const lines = [...summary.scenarios].map(
      ([name, c]) =>
        `  ${name}: ${c.cuts} cuts, ${c.kills} kills, ${c.fuzz} fuzz, ${c.verified} verified, ${c.lost} lost`,
    );
    process.stdout.write(`\n${lines.join("\n")}\n${summaryLine(summary)}\n`);
  };
}
