/**
 * What the faults suite did, added up across test files.
 *
 * Vitest runs each file in its own process, so every count is appended as one JSON line to a
 * file that test/faults/globalSetup.ts names for the run (one `write` of a short line with
 * O_APPEND is atomic); its teardown adds the lines up and prints the summary line.
 */
import { appendFileSync, readFileSync } from "node:fs";

export interface FaultCounts {
  /** Connections cut or servers stopped mid-run. */
  cuts: number;
  /** Processes SIGKILLed. */
  kills: number;
  /** Untrusted inputs tried. */
  fuzz: number;
  /** Clips decrypted with Debian's age and compared with the source after a scenario. */
  verified: number;
  /** Clips on the source that were not safely in the vault after the scenario's clean run. */
  lost: number;
}

export const EMPTY: FaultCounts = { cuts: 0, kills: 0, fuzz: 0, verified: 0, lost: 0 };

/** The environment variable that carries the counter file's path to the test processes. */
export const COUNTERS_ENV = "MEVAULT_FAULTS_COUNTERS";

/** Adds to the run's counters under a scenario name. A no-op outside a full vitest run. */
export function count(scenario: string, add: Partial<FaultCounts>): void {
  const file = process.env[COUNTERS_ENV];
  if (!file) return;
  appendFileSync(file, `${JSON.stringify({ scenario, ...add })}\n`);
}

export interface Summary {
  totals: FaultCounts;
  scenarios: Map<string, FaultCounts>;
}

export function summarize(file: string): Summary {
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch {
    // nothing was counted
  }
  const totals = { ...EMPTY };
  const scenarios = new Map<string, FaultCounts>();
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const entry = JSON.parse(line) as Partial<FaultCounts> & { scenario: string };
    const s = scenarios.get(entry.scenario) ?? { ...EMPTY };
    for (const key of Object.keys(EMPTY) as Array<keyof FaultCounts>) {
      const n = entry[key] ?? 0;
      s[key] += n;
      totals[key] += n;
    }
    scenarios.set(entry.scenario, s);
  }
  return { totals, scenarios };
}

export function summaryLine(s: Summary): string {
  const t = s.totals;
  return `faults suite: ${s.scenarios.size} scenarios, ${t.cuts} cuts made, ${t.kills} kills made, ${t.fuzz} fuzz inputs tried, ${t.verified} clips verified, ${t.lost} clips lost`;
}
