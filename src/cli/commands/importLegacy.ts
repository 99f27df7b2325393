import type { Command } from "commander";
import { importLegacy } from "../../restore/importLegacy.js";
import { EXIT_FAILED, EXIT_OK, withApp } from "../context.js";
import { abortOnSigint, parseJobs } from "./restore.js";

export function registerImportLegacy(program: Command): void {
  program
    .command("import-legacy")
    .description(
      "find the original tool's Fernet backups (<date>/<name>, no .age) on the destination and record them in the manifest",
    )
    .option(
      "--reencrypt",
      "also rewrite each as age under the new layout (<id>.age); the old file is removed once the new one reads back",
    )
    .option("-j, --jobs <n>", "clips at a time for --reencrypt (default: sync.concurrency)")
    .option("--json", "print the report as JSON")
    .action(async (opts: { reencrypt?: boolean; jobs?: string; json?: boolean }, cmd: Command) => {
      await withApp(cmd, async (app) => {
        const jobs = parseJobs(opts.jobs, app.config);
        const interrupt = abortOnSigint();
        let report: Awaited<ReturnType<typeof importLegacy>>;
        try {
          const deps = {
            vault: await app.vault(),
            keys: await app.keys(),
            manifest: await app.manifest(),
            lock: await app.lock(),
            extensions: app.extensions,
            stateDir: app.config.state.dir,
          };
          report = await importLegacy(deps, {
            reencrypt: opts.reencrypt,
            jobs,
            signal: interrupt.signal,
            onLine: opts.json ? undefined : (line) => process.stdout.write(`${line}\n`),
          });
        } finally {
          interrupt.dispose();
        }
        for (const f of report.failed) process.stderr.write(`failed: ${f.error}\n`);
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        } else {
          for (const s of report.skipped) process.stdout.write(`skipped ${s.path}: ${s.why}\n`);
          for (const s of report.strays) {
            process.stdout.write(`skipped ${s}: an unfinished upload\n`);
          }
          const re = opts.reencrypt
            ? `; ${report.reencrypted.length} re-encrypted as age, ${report.removedDuplicates.length} duplicate legacy file(s) removed`
            : "";
          process.stdout.write(
            `imported ${report.imported.length} legacy clip(s), ${report.alreadyImported.length} already imported, ${report.duplicates.length} also in the vault as age${re}; ${report.failed.length} failed\n`,
          );
        }
        return report.failed.length > 0 ? EXIT_FAILED : EXIT_OK;
      });
    });
}
