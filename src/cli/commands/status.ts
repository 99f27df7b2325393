import type { Command } from "commander";
import type { Vault } from "../../app/vault.js";
import { formatBytes } from "../../util/format.js";
import { withVault } from "../context.js";

/** What `status`, the bot and Home Assistant report: one shape. */
export function statusSnapshot(vault: Vault) {
  const s = vault.manifest.status;
  return {
    lastRun: s.lastRun ?? null,
    lastSuccessAt: s.lastSuccessAt ?? null,
    lastError: s.lastError ?? null,
    lastClip: s.lastClip ?? null,
    totals: s.totals,
    pending: s.pending,
    source: vault.source.description,
    destination: vault.destination.description,
  };
}

export function registerStatus(program: Command): void {
  program
    .command("status")
    .description("last run, totals, pending clips, last error")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      await withVault(cmd, async (vault) => {
        const st = statusSnapshot(vault);
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(st, null, 2)}\n`);
          return;
        }
        const lines = [
          `source:       ${st.source}`,
          `destination:  ${st.destination}`,
          `backed up:    ${st.totals.clips} clip(s), ${formatBytes(st.totals.bytes)}`,
          `pending:      ${st.pending}`,
          `last run:     ${st.lastRun ? `${st.lastRun.finishedAt} (${st.lastRun.trigger}): ${st.lastRun.uploaded} uploaded, ${st.lastRun.failed} failed` : "never"}`,
          `last success: ${st.lastSuccessAt ?? "never"}`,
          `last clip:    ${st.lastClip ? `${st.lastClip.id} at ${st.lastClip.at}` : "none"}`,
          `last error:   ${st.lastError ? `${st.lastError.message} (${st.lastError.at})` : "none"}`,
        ];
        process.stdout.write(`${lines.join("\n")}\n`);
        return undefined;
      });
    });
}
