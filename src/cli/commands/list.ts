import type { Command } from "commander";
import { isDate } from "../../clips/clipId.js";
import type { ClipRecord } from "../../manifest/manifest.js";
import { clipTime, formatBytes } from "../../util/format.js";
import { cameraSelection, UsageError, withApp } from "../context.js";

export function registerList(program: Command): void {
  program
    .command("list [date]")
    .description("backed-up clips from the manifest (all days, or one YYYY-MM-DD)")
    .option("--camera <camera>", "only this camera: SOURCE/CAMERA, a whole SOURCE, or CAMERA")
    .option("--json", "print JSON")
    .action(
      async (date: string | undefined, opts: { camera?: string; json?: boolean }, cmd: Command) => {
        await withApp(cmd, async (app) => {
          if (date !== undefined && !isDate(date))
            throw new UsageError(`"${date}" is not a date YYYY-MM-DD`);
          const selection = cameraSelection(app, opts.camera);
          const manifest = await app.manifest();
          const { sourceSet } = app;
          let clips: ClipRecord[] = date ? await manifest.listDate(date) : await manifest.all();
          if (selection) clips = clips.filter((c) => sourceSet.matches(selection, c.id, c.camera));
          // The camera as this config shows it (`garage/Camera1` with several sources).
          const shown = clips.map((c) => ({
            ...c,
            camera: sourceSet.cameraOf(c.id, c.camera),
            ...(c.source === undefined && sourceSet.sourceOf(c.id)
              ? { source: sourceSet.sourceOf(c.id) }
              : {}),
          }));
          if (opts.json) {
            process.stdout.write(`${JSON.stringify(shown, null, 2)}\n`);
            return;
          }
          for (const c of shown) {
            process.stdout.write(
              `${c.date}  ${clipTime(c.name).padEnd(8)}  ${c.camera.padEnd(12)}  ${formatBytes(c.size).padStart(9)}  ${c.id}${c.format === "fernet" ? "  (legacy)" : ""}${c.incomplete ? "  (incomplete: cut off)" : ""}\n`,
            );
          }
          process.stderr.write(`${clips.length} clip(s)\n`);
          return undefined;
        });
      },
    );
}
