import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Decrypts with Debian's `age` CLI: what a user without this program would do. */
export async function ageCliDecrypt(file: string, identityFile: string): Promise<Buffer> {
  const { stdout } = await run("age", ["-d", "-i", identityFile, file], {
    encoding: "buffer",
    maxBuffer: 1 << 30,
  });
  return stdout;
}

/** The recipient of an identity file, by `age-keygen -y`. */
export async function ageKeygenRecipient(identityFile: string): Promise<string> {
  const { stdout } = await run("age-keygen", ["-y", identityFile]);
  return stdout.trim();
}
