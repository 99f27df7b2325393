import { createInterface } from "node:readline";
import type { Command } from "commander";
import { isInteractive } from "../../config/load.js";
import { EXIT_FAILED, EXIT_OK, withApp } from "../context.js";
import { ShellSession } from "../shell/session.js";
import { parseJobs, restoreLines, restoreProgress } from "./restore.js";

/**
 * `shell`: the interactive restore shell. On a terminal: a prompt, history, tab completion and
 * progress bars. With commands piped in (`echo "get ..." | motioneye-vault shell`): no prompt,
 * no echo, only the commands' own output on stdout, problems on stderr, and exit status 1 when
 * any command failed.
 */
export function registerShell(program: Command): void {
  program
    .command("shell")
    .description("interactive restore shell: ls, cd, get, mget, lcd, info, help, exit")
    .option("--lcd <dir>", "local folder to restore into (default: the current folder)")
    .option("-j, --jobs <n>", "clips at a time for mget (default: sync.concurrency)")
    .action(async (opts: { lcd?: string; jobs?: string }, cmd: Command) => {
      await withApp(cmd, async (app) => {
        const jobs = parseJobs(opts.jobs, app.config);
        const { sourceSet } = app;
        const unprefixed = sourceSet.unprefixed;
        const terminal = Boolean(process.stdin.isTTY && process.stdout.isTTY);
        const bars = terminal && isInteractive();
        const session = await ShellSession.open(
          {
            vault: await app.vault(),
            manifest: await app.manifest(),
            // With several sources the top level is the sources: the unprefixed one's too.
            pathOf:
              sourceSet.qualified && unprefixed
                ? (clip) =>
                    sourceSet.sourceOf(clip.id) === unprefixed.name
                      ? `${unprefixed.name}/${clip.id}`
                      : clip.id
                : undefined,
          },
          {
            out: process.stdout,
            err: process.stderr,
            jobs,
            progress: (items) =>
              bars ? restoreProgress(items) : { hooks: restoreLines(process.stdout), stop() {} },
          },
          opts.lcd ?? process.cwd(),
        );
        const rl = createInterface({
          input: process.stdin,
          output: terminal ? process.stdout : undefined,
          terminal,
          historySize: 200,
          completer: terminal ? (line: string) => session.complete(line) : undefined,
        });
        // Ctrl-C stops a transfer under way (its partial file is removed); at the prompt it leaves.
        const onInterrupt = () => {
          if (!session.interrupt()) rl.close();
        };
        rl.on("SIGINT", onInterrupt);
        process.on("SIGINT", onInterrupt);
        if (terminal) {
          process.stdout.write(
            `motioneye-vault restore shell: ${session.clipCount} clip(s) in the vault; restoring into ${session.localDir}. Type help.\n`,
          );
          rl.setPrompt(session.prompt());
          rl.prompt();
        }
        try {
          for await (const line of rl) {
            if (!(await session.run(line))) break;
            if (terminal) {
              rl.setPrompt(session.prompt());
              rl.prompt();
            }
          }
        } finally {
          process.off("SIGINT", onInterrupt);
          rl.close();
        }
        return session.failures > 0 ? EXIT_FAILED : EXIT_OK;
      });
    });
}
