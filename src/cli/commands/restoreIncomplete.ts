/**
 * After `restore`: says which restored clips are incomplete (cut-off recordings that do not
 * play as they are) and, with `--repair`, writes a playable copy of each next to it.
 */
import type { AgeVault } from "../../crypto/ageVault.js";
import type { ClipRecord } from "../../manifest/manifest.js";
import {
  describeRepair,
  type RepairOutcome,
  repairRestored,
} from "../../restore/repairRestored.js";
import type { RestoreItem, RestoreManySummary } from "../../restore/restore.js";

export interface IncompleteReport {
  id: string;
  path: string;
  repair?: RepairOutcome;
}

/** Incomplete clips now in the output folder (restored, or already there and identical). */
function incompleteOnDisk(
  items: readonly RestoreItem[],
  summary: RestoreManySummary,
): RestoreItem[] {
  return items.filter((item, i) => {
    const o = summary.outcomes[i];
    return (
      item.clip.incomplete === true &&
      (o?.status === "restored" || (o?.status === "skipped" && o.why === "identical"))
    );
  });
}

export async function reportIncomplete(
  vault: AgeVault,
  items: readonly RestoreItem[],
  summary: RestoreManySummary,
  opts: {
    repair?: boolean;
    reference?: string;
    clips: () => Promise<Iterable<ClipRecord>>;
    /** Lines for the user (stderr when stdout carries JSON). */
    say: (line: string) => void;
    signal?: AbortSignal;
  },
): Promise<IncompleteReport[]> {
  const reports: IncompleteReport[] = [];
  for (const item of incompleteOnDisk(items, summary)) {
    opts.say(
      `${item.clip.id} is incomplete: its recording was cut off (no index), so it does not play as it is${opts.repair ? "" : "; --repair makes a playable copy next to it"}`,
    );
    const report: IncompleteReport = { id: item.clip.id, path: item.outFile };
    if (opts.repair) {
      report.repair = await repairRestored(vault, item.clip, item.outFile, {
        clips: opts.clips,
        reference: opts.reference,
        signal: opts.signal,
      });
      opts.say(describeRepair(item.clip, report.repair));
    }
    reports.push(report);
  }
  return reports;
}
