import type { Command } from "commander";
import { writeNewIdentity } from "../../crypto/age/age.js";
import { EXIT_FAILED, loadOrExit } from "../context.js";

export function registerKeygen(program: Command): void {
  program
    .command("keygen")
    .description("write a new age identity (mode 0600) and print its recipient")
    .option("--out <file>", "where to write it (default: encryption.identityFile)")
    .option("--force", "overwrite an existing identity (old backups become unreadable with it)")
    .action(async (opts: { out?: string; force?: boolean }, cmd: Command) => {
      const { loaded } = loadOrExit(cmd);
      const path = opts.out ?? loaded.config.encryption.identityFile ?? "identity.txt";
      try {
        const id = await writeNewIdentity(path, opts.force === true);
        process.stderr.write(
          `wrote ${path} (mode 0600). Back it up: without it nothing can be restored.\n`,
        );
        process.stdout.write(`${id.recipient}\n`);
      } catch (err) {
        process.stderr.write(`error: ${(err as Error).message}\n`);
        process.exitCode = EXIT_FAILED;
      }
    });
}
