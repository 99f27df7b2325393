import type { Command } from "commander";
import { isDate } from "../../clips/clipId.js";
import { isInteractive } from "../../config/load.js";
import { formatBytes } from "../../util/format.js";
import { cameraSelection, EXIT_FAILED, EXIT_OK, UsageError, withApp } from "../context.js";
import { showSyncProgress } from "../progress.js";

export function registerSync(program: Command): void {
  program
    .command("sync")
    .description("one sync run: list the sources, back up new clips, record them")
    .option("--camera <camera>", "only this camera: SOURCE/CAMERA, a whole SOURCE, or CAMERA")
    .option("--date <date>", "only this day (YYYY-MM-DD)")
    .option("--dry-run", "show what would be backed up; change nothing")
    .option("--json", "print the run summary as JSON")
    .action(
      async (
        opts: { camera?: string; date?: string; dryRun?: boolean; json?: boolean },
        cmd: Command,
      ) => {
        await withApp(cmd, async (app) => {
          if (opts.date !== undefined && !isDate(opts.date)) {
            throw new UsageError(`--date: "${opts.date}" is not a date YYYY-MM-DD`);
          }
          const selection = cameraSelection(app, opts.camera);
          const engine = await app.engine();
          const stopProgress =
            isInteractive() && !opts.json ? showSyncProgress(app.events) : undefined;
          let result: Awaited<ReturnType<typeof engine.run>>;
          try {
            result = await engine.run({
              trigger: "cli",
              sources: selection?.source ? [selection.source.name] : undefined,
              camera: selection?.camera,
              date: opts.date,
              dryRun: opts.dryRun,
            });
          } finally {
            stopProgress?.();
          }
          const { plans, ...summary } = result;
          const planned = Object.values(plans).flatMap((p) => (p ? [p] : []));
          const toUpload = planned.flatMap((p) => p.toUpload);
          const pending = planned.flatMap((p) => p.pending);
          const alreadyBackedUp = planned.reduce((n, p) => n + p.alreadyBackedUp, 0);
          if (opts.json) {
            const out = opts.dryRun
              ? { ...summary, wouldUpload: toUpload.map((c) => c.id) }
              : summary;
            process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
          } else if (opts.dryRun) {
            for (const c of toUpload)
              process.stdout.write(`would back up ${c.id} (${formatBytes(c.size)})\n`);
            for (const p of pending) process.stdout.write(`still settling ${p.clip.id}\n`);
            process.stdout.write(
              `${toUpload.length} to back up, ${alreadyBackedUp} already backed up, ${pending.length} settling\n`,
            );
          } else {
            process.stdout.write(
              `backed up ${summary.uploaded} clip(s), ${formatBytes(summary.bytes)}; ${alreadyBackedUp} already in the vault; ${summary.pending} still settling; ${summary.failed} failed\n`,
            );
          }
          // Each source that failed, on its own line (its message names it when there are several).
          const errors = Object.values(summary.sources ?? {}).flatMap((s) =>
            s.error ? [s.error] : [],
          );
          if (!opts.json) for (const e of errors) process.stderr.write(`error: ${e}\n`);
          return summary.failed > 0 || errors.length > 0 ? EXIT_FAILED : EXIT_OK;
        });
      },
    );
}
