import type { Command } from "commander";
import { statusDocument } from "../../app/status.js";
import type { BandwidthState } from "../../util/bandwidth.js";
import { formatBytes } from "../../util/format.js";
import { withApp } from "../context.js";

/** `512 KiB/s (sync.bandwidthLimit "08:00,512k 23:00,off", changes at ...)`, or `off`. */
function describeCap(cap: BandwidthState): string {
  if (cap.configured === "off" && cap.from === "config") return "off";
  const from =
    cap.from === "override" ? "set live" : `sync.bandwidthLimit ${JSON.stringify(cap.configured)}`;
  const next = cap.nextChange ? `, changes at ${cap.nextChange}` : "";
  return `${cap.text} (${from}${next})`;
}

export function registerStatus(program: Command): void {
  program
    .command("status")
    .description("last run, totals, pending clips, last error; per source")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      await withApp(cmd, async (app) => {
        const manifest = await app.manifest();
        const parts = await app.sources();
        const vault = await app.vault();
        const doc = statusDocument(
          manifest.status,
          parts.map((p) => ({ ...p.ref, description: p.source.description })),
        );
        const st = {
          ...doc,
          ...(parts.length === 1 ? { source: parts[0]?.source.description } : {}),
          destination: vault.store.description,
          bandwidthLimit: app.bandwidth.state(),
        };
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(st, null, 2)}\n`);
          return;
        }
        const lines = [
          ...(parts.length === 1 ? [`source:       ${st.source}`] : []),
          `destination:  ${st.destination}`,
          `backed up:    ${st.totals.clips} clip(s), ${formatBytes(st.totals.bytes)}${st.totals.incomplete > 0 ? ` (${st.totals.incomplete} incomplete: cut off)` : ""}`,
          `pending:      ${st.pending}`,
          `last run:     ${st.lastRun ? `${st.lastRun.finishedAt} (${st.lastRun.trigger}): ${st.lastRun.uploaded} uploaded, ${st.lastRun.failed} failed` : "never"}`,
          `last success: ${st.lastSuccessAt ?? "never"}`,
          `last clip:    ${st.lastClip ? `${st.lastClip.id} at ${st.lastClip.at}` : "none"}`,
          `last error:   ${st.lastError ? `${st.lastError.message} (${st.lastError.at})` : "none"}`,
          `upload cap:   ${describeCap(st.bandwidthLimit)}`,
        ];
        if (parts.length > 1) {
          lines.push("sources:");
          for (const [name, s] of Object.entries(st.sources)) {
            const health = s.failing ? "FAILING" : s.lastRunAt ? "ok" : "not run yet";
            lines.push(
              `  ${name.padEnd(12)} ${health}; ${s.pending} pending; last success ${s.lastSuccessAt ?? "never"}; ${s.description}`,
            );
            if (s.failing && s.lastError)
              lines.push(`  ${"".padEnd(12)} last error: ${s.lastError.message}`);
          }
        }
        process.stdout.write(`${lines.join("\n")}\n`);
        return undefined;
      });
    });
}
