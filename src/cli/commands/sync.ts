import type { Command } from "commander";
import { isDate } from "../../clips/clipId.js";
import { isInteractive } from "../../config/load.js";
import { formatBytes } from "../../util/format.js";
import { EXIT_FAILED, EXIT_OK, UsageError, withVault } from "../context.js";
import { showSyncProgress } from "../progress.js";

export function registerSync(program: Command): void {
  program
    .command("sync")
    .description("one sync run: list the source, back up new clips, record them")
    .option("--camera <camera>", "only this camera")
    .option("--date <date>", "only this day (YYYY-MM-DD)")
    .option("--dry-run", "show what would be backed up; change nothing")
    .option("--json", "print the run summary as JSON")
    .action(
      async (
        opts: { camera?: string; date?: string; dryRun?: boolean; json?: boolean },
        cmd: Command,
      ) => {
        await withVault(cmd, async (vault) => {
          if (opts.date !== undefined && !isDate(opts.date)) {
            throw new UsageError(`--date: "${opts.date}" is not a date YYYY-MM-DD`);
          }
          const stopProgress =
            isInteractive() && !opts.json ? showSyncProgress(vault.events) : undefined;
          let result: Awaited<ReturnType<typeof vault.sync.run>>;
          try {
            result = await vault.sync.run({
              trigger: "cli",
              camera: opts.camera,
              date: opts.date,
              dryRun: opts.dryRun,
            });
          } finally {
            stopProgress?.();
          }
          const { plan, ...summary } = result;
          if (opts.json) {
            const out = opts.dryRun
              ? { ...summary, wouldUpload: plan.toUpload.map((c) => c.id) }
              : summary;
            process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
          } else if (opts.dryRun) {
            for (const c of plan.toUpload)
              process.stdout.write(`would back up ${c.id} (${formatBytes(c.size)})\n`);
            for (const p of plan.pending) process.stdout.write(`still settling ${p.clip.id}\n`);
            process.stdout.write(
              `${plan.toUpload.length} to back up, ${plan.alreadyBackedUp} already backed up, ${plan.pending.length} settling\n`,
            );
          } else {
            process.stdout.write(
              `backed up ${summary.uploaded} clip(s), ${formatBytes(summary.bytes)}; ${plan.alreadyBackedUp} already in the vault; ${summary.pending} still settling; ${summary.failed} failed\n`,
            );
            if (summary.error) process.stderr.write(`error: ${summary.error}\n`);
          }
          return summary.failed > 0 ? EXIT_FAILED : EXIT_OK;
        });
      },
    );
}
