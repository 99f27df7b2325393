import type { Command } from "commander";
import { isDate } from "../../clips/clipId.js";
import { hasProblems, verifyVault } from "../../restore/verify.js";
import { EXIT_FAILED, EXIT_OK, UsageError, withApp } from "../context.js";
import { abortOnSigint, parseJobs } from "./restore.js";

export function registerVerify(program: Command): void {
  program
    .command("verify")
    .description(
      "read back remote files, decrypt them, compare with the manifest's sha256; report missing, corrupt and orphaned files",
    )
    .option("--sample <n>", "check only N clips, picked at random")
    .option("--date <date>", "only this day (YYYY-MM-DD)")
    .option("-j, --jobs <n>", "clips at a time (default: sync.concurrency)")
    .option("--json", "print the report as JSON")
    .action(
      async (
        opts: { sample?: string; date?: string; jobs?: string; json?: boolean },
        cmd: Command,
      ) => {
        await withApp(cmd, async (app) => {
          if (opts.date !== undefined && !isDate(opts.date)) {
            throw new UsageError(`--date: "${opts.date}" is not a date YYYY-MM-DD`);
          }
          let sample: number | undefined;
          if (opts.sample !== undefined) {
            sample = Number(opts.sample);
            if (!Number.isInteger(sample) || sample < 1) {
              throw new UsageError(`--sample: "${opts.sample}" is not a whole number above 0`);
            }
          }
          const jobs = parseJobs(opts.jobs, app.config);
          const interrupt = abortOnSigint();
          let report: Awaited<ReturnType<typeof verifyVault>>;
          try {
            const deps = {
              vault: await app.vault(),
              manifest: await app.manifest(),
              prefixes: app.sourceSet.prefixes,
              extensions: app.extensions,
              stateDir: app.config.state.dir,
            };
            report = await verifyVault(deps, {
              sample,
              date: opts.date,
              jobs,
              signal: interrupt.signal,
            });
          } finally {
            interrupt.dispose();
          }
          if (interrupt.signal.aborted) throw new Error("interrupted");
          if (opts.json) {
            process.stdout.write(
              `${JSON.stringify({ clean: !hasProblems(report), ...report }, null, 2)}\n`,
            );
          } else {
            const out = process.stdout;
            for (const m of report.missing)
              out.write(`MISSING  ${m.id} (${m.path} is not on the destination)\n`);
            for (const c of report.corrupt) out.write(`CORRUPT  ${c.error}\n`);
            for (const f of report.failed) out.write(`FAILED   ${f.error}\n`);
            for (const o of report.orphaned) {
              const hint = o.endsWith(".age") ? "" : " (a legacy backup? see import-legacy)";
              out.write(`ORPHAN   ${o}: on the destination, not in the manifest${hint}\n`);
            }
            for (const s of report.strays) {
              out.write(
                `STRAY    ${s}: an unfinished upload (safe to delete when no sync is running)\n`,
              );
            }
            const unverified = report.unverified.length
              ? `, ${report.unverified.length} legacy clip(s) authenticated by their HMAC (no sha256 recorded)`
              : "";
            out.write(
              `checked ${report.checked} clip(s): ${report.ok} ok${unverified}, ${report.missing.length} missing, ${report.corrupt.length} corrupt, ${report.failed.length} could not be checked; ${report.orphaned.length} orphaned file(s), ${report.strays.length} stray temp file(s)\n`,
            );
          }
          return hasProblems(report) ? EXIT_FAILED : EXIT_OK;
        });
      },
    );
}
