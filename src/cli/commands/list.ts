import type { Command } from "commander";
import { isDate } from "../../clips/clipId.js";
import type { ClipRecord } from "../../manifest/manifest.js";
import { clipTime, formatBytes } from "../../util/format.js";
import { UsageError, withVault } from "../context.js";

export function registerList(program: Command): void {
  program
    .command("list [date]")
    .description("backed-up clips from the manifest (all days, or one YYYY-MM-DD)")
    .option("--camera <camera>", "only this camera")
    .option("--json", "print JSON")
    .action(
      async (date: string | undefined, opts: { camera?: string; json?: boolean }, cmd: Command) => {
        await withVault(cmd, async (vault) => {
          if (date !== undefined && !isDate(date))
            throw new UsageError(`"${date}" is not a date YYYY-MM-DD`);
          let clips: ClipRecord[] = date
            ? await vault.manifest.listDate(date)
            : await vault.manifest.all();
          if (opts.camera !== undefined) clips = clips.filter((c) => c.camera === opts.camera);
          if (opts.json) {
            process.stdout.write(`${JSON.stringify(clips, null, 2)}\n`);
            return;
          }
          for (const c of clips) {
            process.stdout.write(
              `${c.date}  ${clipTime(c.name).padEnd(8)}  ${c.camera.padEnd(12)}  ${formatBytes(c.size).padStart(9)}  ${c.id}${c.format === "fernet" ? "  (legacy)" : ""}\n`,
            );
          }
          process.stderr.write(`${clips.length} clip(s)\n`);
          return undefined;
        });
      },
    );
}
