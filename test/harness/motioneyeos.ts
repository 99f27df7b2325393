/**
 * motionEyeOS's side of the camera, for tests: its PATH (busybox's applets and curl; no
 * mosquitto_pub, no GNU coreutils) and motioneye.sh installed as a user installs it, a copy
 * with its settings in a `motioneye.env` beside it.
 */
import { chmod, copyFile, mkdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { REPO } from "./cli.js";
import { runCommand } from "./processes.js";

export const MOTIONEYE_SH = path.join(REPO, "integrations", "motioneye", "motioneye.sh");

/**
 * Makes `<dir>/bin` with every busybox applet (sh, timeout, date, sed...) and curl, and returns
 * it as a PATH: what a hook finds on motionEyeOS.
 */
export async function motioneyeOsPath(dir: string): Promise<string> {
  const bin = path.join(dir, "bin");
  await mkdir(bin, { recursive: true });
  const busybox = (await runCommand("sh", ["-c", "command -v busybox"])).stdout.trim();
  const curl = (await runCommand("sh", ["-c", "command -v curl"])).stdout.trim();
  const applets = (await runCommand(busybox, ["--list"])).stdout.split("\n").filter(Boolean);
  for (const applet of [...applets, "busybox"]) {
    await symlink(busybox, path.join(bin, applet));
  }
  await symlink(curl, path.join(bin, "curl"));
  return bin;
}

/**
 * Copies integrations/motioneye/motioneye.sh into `dir` with a `motioneye.env` beside it
 * (one `NAME=value` line per setting); returns the script's path.
 */
export async function installMotioneyeSh(
  dir: string,
  settings: Record<string, string>,
): Promise<string> {
  await mkdir(dir, { recursive: true });
  const script = path.join(dir, "motioneye.sh");
  await copyFile(MOTIONEYE_SH, script);
  await chmod(script, 0o755);
  const lines = Object.entries(settings).map(([name, value]) => {
    if (!/^[A-Z_][A-Z0-9_]*$/.test(name) || /[\n'"\\$`]/.test(value)) {
      throw new Error(`installMotioneyeSh: unsafe setting ${name}`);
    }
    return `${name}=${value}`;
  });
  await writeFile(path.join(dir, "motioneye.env"), `${lines.join("\n")}\n`, { mode: 0o600 });
  return script;
}
