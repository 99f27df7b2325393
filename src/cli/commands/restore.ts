import { resolve } from "node:path";
import type { Command } from "commander";
import { InvalidClipIdError } from "../../clips/clipId.js";
import type { Config } from "../../config/load.js";
import { isInteractive } from "../../config/load.js";
import {
  type RestoreItem,
  type RestoreManyHooks,
  type RestoreManySummary,
  restoreMany,
} from "../../restore/restore.js";
import {
  AmbiguousClipError,
  localPathOf,
  parseSelection,
  type Selection,
  SelectionError,
  selectClips,
} from "../../restore/select.js";
import { formatBytes } from "../../util/format.js";
import { cameraSelection, EXIT_FAILED, EXIT_OK, UsageError, withApp } from "../context.js";
import { ClipProgressBar } from "../progress.js";
import { reportIncomplete } from "./restoreIncomplete.js";

/** `--jobs N`: 1..16, default sync.concurrency. */
export function parseJobs(value: string | undefined, config: Pick<Config, "sync">): number {
  if (value === undefined) return config.sync.concurrency;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 16) {
    throw new UsageError(`--jobs: "${value}" is not a whole number from 1 to 16`);
  }
  return n;
}

/** A terminal progress bar for a restore (files and bytes), on stderr. */
export function restoreProgress(items: readonly RestoreItem[]): {
  hooks: RestoreManyHooks;
  stop(): void;
} {
  const bar = new ClipProgressBar();
  bar.start(
    items.length,
    items.reduce((n, i) => n + i.clip.size, 0),
  );
  return {
    hooks: {
      onBytes: (item, n) => bar.progress(item.clip.id, n),
      onDone: (item) => bar.done(item.clip.id, item.clip.size),
    },
    stop: () => bar.stop(),
  };
}

/** One line per clip for logs and pipes (no bar there). */
export function restoreLines(out: NodeJS.WritableStream): RestoreManyHooks {
  return {
    onDone(item, o) {
      if (o.status === "restored") {
        const check = o.result.verified ? "sha256 verified" : "HMAC checked, no sha256 recorded";
        out.write(`restored ${item.outFile} (${formatBytes(o.result.size)}, ${check})\n`);
      } else if (o.status === "skipped") {
        out.write(
          o.why === "identical"
            ? `already there: ${item.outFile}\n`
            : `kept ${item.outFile} (legacy clip without a checksum to compare; --force replaces it)\n`,
        );
      }
    },
  };
}

/** `"incomplete": true` and the repair's outcome, for `restore --json`. */
function incompleteFields(
  report: Awaited<ReturnType<typeof reportIncomplete>>[number] | undefined,
) {
  if (report === undefined) return {};
  const repair = report.repair;
  if (repair === undefined) return { incomplete: true };
  return repair.status === "repaired"
    ? { incomplete: true, repaired: repair.result.path, repairedSeconds: repair.result.seconds }
    : { incomplete: true, repairError: repair.why };
}

/** Failures on stderr, whatever else is shown. */
function reportFailures(summary: RestoreManySummary): void {
  for (const o of summary.outcomes) {
    if (o.status === "failed") process.stderr.write(`failed: ${o.error}\n`);
  }
}

/** Ctrl-C stops the restore cleanly: clips under way are dropped, none is left half-written. */
export function abortOnSigint(): { signal: AbortSignal; dispose(): void } {
  const ac = new AbortController();
  const onSigint = () => ac.abort();
  process.once("SIGINT", onSigint);
  return { signal: ac.signal, dispose: () => process.off("SIGINT", onSigint) };
}

export function registerRestore(program: Command): void {
  program
    .command("restore <target>")
    .description(
      "download, decrypt and verify clips into a folder, in the vault's layout: a clip id, a day YYYY-MM-DD, a range FROM..TO, or all",
    )
    .option("-o, --out <dir>", "output folder", "./restored")
    .option("--camera <camera>", "only this camera: SOURCE/CAMERA, a whole SOURCE, or CAMERA")
    .option("-j, --jobs <n>", "clips at a time (default: sync.concurrency)")
    .option("--force", "replace files in the output folder that differ from the backup")
    .option("--json", "print the summary as JSON")
    .option(
      "--repair",
      "for an incomplete (cut-off) movie, also write a playable copy <name>.repaired.mp4 next to it (needs ffmpeg)",
    )
    .option(
      "--reference <file>",
      "a complete movie of the same camera to repair with (default: one from the vault)",
    )
    .action(
      async (
        target: string,
        opts: {
          out: string;
          camera?: string;
          jobs?: string;
          force?: boolean;
          json?: boolean;
          repair?: boolean;
          reference?: string;
        },
        cmd: Command,
      ) => {
        await withApp(cmd, async (app) => {
          const jobs = parseJobs(opts.jobs, app.config);
          const camera = cameraSelection(app, opts.camera);
          let selection: Selection;
          try {
            selection = parseSelection(target);
          } catch (err) {
            if (err instanceof SelectionError) throw new UsageError(err.message);
            throw err;
          }
          let clips: Awaited<ReturnType<typeof selectClips>>;
          try {
            clips = await selectClips(
              await app.manifest(),
              selection,
              camera && ((c) => app.sourceSet.matches(camera, c.id, c.camera)),
            );
          } catch (err) {
            if (err instanceof InvalidClipIdError || err instanceof AmbiguousClipError) {
              throw new UsageError(err.message);
            }
            throw err;
          }
          if (clips.length === 0) {
            process.stderr.write(
              `no clips in the vault match ${target}${opts.camera ? ` for camera ${opts.camera}` : ""}\n`,
            );
            return EXIT_FAILED;
          }
          const outDir = resolve(opts.out);
          const items = clips.map((clip) => ({ clip, outFile: localPathOf(outDir, clip) }));
          const bar = isInteractive() && !opts.json ? restoreProgress(items) : undefined;
          const interrupt = abortOnSigint();
          let summary: RestoreManySummary;
          const manifest = await app.manifest();
          let incomplete: Awaited<ReturnType<typeof reportIncomplete>>;
          try {
            summary = await restoreMany(await app.vault(), items, {
              jobs,
              force: opts.force,
              signal: interrupt.signal,
              hooks: bar?.hooks ?? (opts.json ? {} : restoreLines(process.stdout)),
            });
            bar?.stop();
            incomplete = await reportIncomplete(await app.vault(), items, summary, {
              repair: opts.repair,
              reference: opts.reference && resolve(opts.reference),
              clips: () => manifest.all(),
              say: (line) => (opts.json ? process.stderr : process.stdout).write(`${line}\n`),
              signal: interrupt.signal,
            });
          } finally {
            bar?.stop();
            interrupt.dispose();
          }
          reportFailures(summary);
          if (opts.json) {
            process.stdout.write(
              `${JSON.stringify(
                {
                  out: outDir,
                  restored: summary.restored,
                  skipped: summary.skipped,
                  failed: summary.failed,
                  bytes: summary.bytes,
                  clips: summary.outcomes.map((o) => ({
                    id: o.id,
                    path: o.path,
                    status: o.status,
                    ...incompleteFields(incomplete.find((r) => r.id === o.id)),
                    ...(o.status === "restored"
                      ? {
                          size: o.result.size,
                          sha256: o.result.sha256,
                          verified: o.result.verified,
                        }
                      : o.status === "failed"
                        ? { error: o.error }
                        : { why: o.why }),
                  })),
                },
                null,
                2,
              )}\n`,
            );
          } else {
            process.stdout.write(
              `restored ${summary.restored} clip(s), ${formatBytes(summary.bytes)}, into ${outDir}; ${summary.skipped} already there; ${summary.failed} failed\n`,
            );
          }
          return summary.failed > 0 ? EXIT_FAILED : EXIT_OK;
        });
      },
    );
}
