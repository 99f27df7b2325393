import { spawn } from "node:child_process";

/**
 * ffmpeg and ffprobe, run as child processes (found on PATH, as Debian's `ffmpeg` package
 * installs them). The bot works without them: clips are then sent as they are, without cutting,
 * metadata or generated thumbnails.
 */

/** The tool is not on this machine (spawn said ENOENT). */
export class MissingToolError extends Error {
  constructor(readonly tool: string) {
    super(`${tool} is not installed (not found on PATH)`);
    this.name = "MissingToolError";
  }
}

/** The tool ran and failed: its exit code and the last lines it wrote to stderr. */
export class ToolFailedError extends Error {
  constructor(
    readonly tool: string,
    readonly code: number | null,
    readonly stderr: string,
  ) {
    // Only file names: the paths are the vault's temporary folders, nobody's business in a chat.
    const last = stderr
      .trim()
      .split("\n")
      .slice(-3)
      .join(" / ")
      .replace(/\/[^\s:'"]*\//g, "");
    super(`${tool} failed (exit ${code ?? "signal"}): ${last || "no message"}`);
    this.name = "ToolFailedError";
  }
}

/** Most a tool may write to stdout (ffprobe's JSON is a few KiB); more is cut off. */
const MAX_OUTPUT = 1 << 20;
/** stderr is kept only for error messages: its tail is enough. */
const MAX_STDERR = 16 * 1024;

/** Runs `tool args...` to completion and returns its stdout; aborting the signal kills it. */
export function runTool(
  tool: "ffmpeg" | "ffprobe",
  args: string[],
  opts: { signal?: AbortSignal } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, args, {
      stdio: ["ignore", "pipe", "pipe"],
      signal: opts.signal,
      killSignal: "SIGKILL",
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      if (stdout.length < MAX_OUTPUT) stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr = (stderr + d).slice(-MAX_STDERR);
    });
    child.once("error", (err: NodeJS.ErrnoException) => {
      reject(err.code === "ENOENT" ? new MissingToolError(tool) : err);
    });
    child.once("close", (code) => {
      // An abort has rejected already (spawn's 'error'); a promise settles once.
      if (code === 0) resolve(stdout);
      else reject(new ToolFailedError(tool, code, stderr));
    });
  });
}

/** Availability is looked up again after this long: ffmpeg may be installed while serve runs. */
const RECHECK_MS = 60_000;
let cached: { at: number; ok: Promise<boolean> } | undefined;

/** True when both ffmpeg and ffprobe run here. Cached for a minute. */
export function haveFfmpeg(): Promise<boolean> {
  const now = Date.now();
  if (cached && now - cached.at < RECHECK_MS) return cached.ok;
  const ok = Promise.all([
    runTool("ffmpeg", ["-hide_banner", "-version"]),
    runTool("ffprobe", ["-hide_banner", "-version"]),
  ]).then(
    () => true,
    () => false,
  );
  cached = { at: now, ok };
  return ok;
}

/** How to get ffmpeg, for the messages that need it. */
export const INSTALL_FFMPEG =
  "Install ffmpeg on the machine that runs the vault (Debian, Ubuntu, Raspberry Pi OS: sudo apt install ffmpeg; the Docker image and the Home Assistant add-on include it), then ask again.";
