#!/usr/bin/env node
import { Command, CommanderError } from "commander";
import { registerDecrypt } from "./cli/commands/decrypt.js";
import { registerImportLegacy } from "./cli/commands/importLegacy.js";
import { registerKeygen } from "./cli/commands/keygen.js";
import { registerList } from "./cli/commands/list.js";
import { registerRestore } from "./cli/commands/restore.js";
import { registerServe } from "./cli/commands/serve.js";
import { registerShell } from "./cli/commands/shell.js";
import { registerStatus } from "./cli/commands/status.js";
import { registerSync } from "./cli/commands/sync.js";
import { registerVerify } from "./cli/commands/verify.js";
import { EXIT_USAGE } from "./cli/context.js";
import { packageInfo } from "./util/package.js";

/** The only place that reads argv. Each command lives in src/commands/. */
const pkg = packageInfo();

const program = new Command()
  .name("motioneye-vault")
  .description("Back up motionEye clips off-site, age-encrypted, and restore them")
  .version(pkg.version)
  .option("-c, --config <file>", "config file (default: $MOTIONEYE_VAULT_CONFIG or ./config.yml)")
  .exitOverride()
  .showHelpAfterError();

registerKeygen(program);
registerSync(program);
registerList(program);
registerStatus(program);
registerServe(program);
registerRestore(program);
registerShell(program);
registerVerify(program);
registerDecrypt(program);
registerImportLegacy(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version end here with code 0; anything else is bad usage.
    process.exitCode = err.exitCode === 0 ? 0 : EXIT_USAGE;
  } else {
    process.stderr.write(`error: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
