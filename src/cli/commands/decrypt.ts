import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { open, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, extname, join, resolve } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Command } from "commander";
import { AGE_MAGIC, AgeError, decryptStream, loadIdentity } from "../../crypto/age/age.js";
import {
  decryptFernetStream,
  FernetError,
  loadFernetKeyFile,
  looksLikeFernet,
} from "../../crypto/fernet/fernet.js";
import { partName } from "../../storage/types.js";
import { errorMessage } from "../../util/log.js";
import { EXIT_FAILED, EXIT_OK, loadOrExit } from "../context.js";

/**
 * `decrypt FILE [--out F]`: one local file, age or legacy Fernet, told apart by its content
 * (`age-encryption.org/v1` header vs a `gAAAAA` token). No vault is opened: this works on a file
 * copied off the server with nothing but the key.
 */

export type FileFormat = "age" | "fernet" | "age-armored" | "unknown";

export function detectFormat(head: Uint8Array): FileFormat {
  const text = Buffer.from(head).toString("latin1");
  if (text.startsWith(AGE_MAGIC)) return "age";
  if (text.startsWith("-----BEGIN AGE ENCRYPTED FILE-----")) return "age-armored";
  if (looksLikeFernet(head)) return "fernet";
  return "unknown";
}

async function readHeadOf(file: string): Promise<Buffer> {
  const fh = await open(file, "r");
  try {
    const buf = Buffer.alloc(64);
    const { bytesRead } = await fh.read(buf, 0, 64, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** `clip.mp4.age` -> `clip.mp4`; a legacy `clip.mp4` -> `clip.decrypted.mp4` (never its own name). */
export function defaultOutput(file: string): string {
  if (file.endsWith(".age") && basename(file) !== ".age") return file.slice(0, -4);
  const ext = extname(file);
  return join(dirname(file), `${basename(file, ext)}.decrypted${ext}`);
}

function describe(err: unknown, opts: { identity?: string; key?: string }): string {
  if (err instanceof AgeError && err.kind === "no match") {
    return `the age identity ${opts.identity} cannot decrypt it: the file was encrypted to another key`;
  }
  if (err instanceof AgeError) return `damaged or altered (${err.message})`;
  if (err instanceof FernetError && err.reason === "signature") {
    return `the Fernet token's HMAC does not match: ${opts.key} is not the key it was made with, or the file is damaged or altered`;
  }
  if (err instanceof FernetError) return `not a readable Fernet token (${err.message})`;
  return errorMessage(err);
}

export function registerDecrypt(program: Command): void {
  program
    .command("decrypt <file>")
    .description("decrypt one local file, age or legacy Fernet (told apart by its content)")
    .option("-o, --out <file>", "where to write the plaintext (`-` for stdout)")
    .option("-i, --identity <file>", "age identity (default: encryption.identityFile)")
    .option(
      "-k, --key <file>",
      "legacy Fernet key, filekey.key (default: encryption.fernetKeyFile)",
    )
    .option("--force", "overwrite the output file")
    .action(
      async (
        file: string,
        opts: { out?: string; identity?: string; key?: string; force?: boolean },
        cmd: Command,
      ) => {
        const { loaded } = loadOrExit(cmd);
        const keys = {
          identity: opts.identity ? resolve(opts.identity) : loaded.config.encryption.identityFile,
          key: opts.key ? resolve(opts.key) : loaded.config.encryption.fernetKeyFile,
        };
        const input = resolve(file);
        const toStdout = opts.out === "-";
        const output = toStdout ? "-" : resolve(opts.out ?? defaultOutput(input));
        const temp = partName(output, randomBytes(6).toString("hex"));
        try {
          if (output === input) throw new Error("the output would overwrite the input");
          const format = detectFormat(await readHeadOf(input));
          let plain: Readable;
          if (format === "age") {
            if (!keys.identity) throw new Error("no age identity: give --identity FILE");
            const { secret } = await loadIdentity(keys.identity);
            plain = await decryptStream(createReadStream(input), [secret]);
          } else if (format === "fernet") {
            if (!keys.key) {
              throw new Error(
                "it is a legacy Fernet token: give --key filekey.key or set encryption.fernetKeyFile",
              );
            }
            const key = await loadFernetKeyFile(keys.key);
            plain = await decryptFernetStream(async () => createReadStream(input), key);
          } else if (format === "age-armored") {
            throw new Error("ASCII-armored age files are not supported here: use `age -d`");
          } else {
            throw new Error(
              "neither an age file (age-encryption.org/v1) nor a Fernet token (gAAAAA...)",
            );
          }
          if (toStdout) {
            await pipeline(plain, process.stdout, { end: false });
          } else {
            if (!opts.force && (await stat(output).catch(() => undefined))) {
              plain.destroy();
              throw new Error(`${output} already exists (--force overwrites it)`);
            }
            await pipeline(plain, createWriteStream(temp, { mode: 0o600, flags: "wx" }));
            await rename(temp, output);
            process.stderr.write(`decrypted ${format} ${input} -> ${output}\n`);
          }
          process.exitCode = EXIT_OK;
        } catch (err) {
          await rm(temp, { force: true });
          process.stderr.write(`error: ${input}: ${describe(err, keys)}\n`);
          process.exitCode = EXIT_FAILED;
        }
      },
    );
}
