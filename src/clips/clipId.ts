/**
 * The one path-safety check. A clip id is the clip's path relative to the motionEye media root:
 * `Camera1/2024-05-01/12-00-00.mp4` or `2024-05-01/12-00-00.mp4`, prefixed with its source's name
 * when the vault has several (`garage/Camera1/2024-05-01/12-00-00.mp4`). Everything that turns user or
 * network input into a path goes through here, so no `../` can escape the vault.
 */

export const DEFAULT_CAMERA = "default";

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;

export interface ClipRef {
  id: string;
  camera: string;
  date: string;
  name: string;
}

export class InvalidClipIdError extends Error {
  constructor(input: string, reason: string) {
    super(`invalid clip id "${truncate(input)}": ${reason}`);
    this.name = "InvalidClipIdError";
  }
}

function truncate(s: string): string {
  const clean = stripControl(s);
  return clean.length > 120 ? `${clean.slice(0, 117)}...` : clean;
}

/** Replaces control characters (C0 and DEL) with `?`, so input can be echoed safely. */
export function stripControl(s: string): string {
  let out = "";
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    out += c < 0x20 || c === 0x7f ? "?" : ch;
  }
  return out;
}

/** A real calendar date `YYYY-MM-DD`. */
export function isDate(s: string): boolean {
  const m = DATE_RE.exec(s);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const t = new Date(Date.UTC(y, mo - 1, d));
  return t.getUTCFullYear() === y && t.getUTCMonth() === mo - 1 && t.getUTCDate() === d;
}

/** Why a single path segment is unsafe, or undefined when it is fine. */
export function unsafeSegmentReason(seg: string): string | undefined {
  if (seg === "") return "empty path segment";
  if (seg === "." || seg === "..") return `"${seg}" is not allowed`;
  if (seg.includes("\\")) return "backslashes are not allowed";
  if (stripControl(seg) !== seg) return "control characters are not allowed";
  if (seg.length > 255) return "a path segment is longer than 255 characters";
  return undefined;
}

/** Parses and checks a clip id; throws InvalidClipIdError naming the problem. */
export function parseClipId(input: string, extensions?: readonly string[]): ClipRef {
  if (input.length > 1024) throw new InvalidClipIdError(input, "too long");
  if (input.startsWith("/")) throw new InvalidClipIdError(input, "must be relative (no leading /)");
  const parts = input.split("/");
  for (const seg of parts) {
    const reason = unsafeSegmentReason(seg);
    if (reason) throw new InvalidClipIdError(input, reason);
  }
  // [prefix/][camera/]date/name: the source's prefix (several devices) and camera are optional.
  if (parts.length < 2 || parts.length > 4) {
    throw new InvalidClipIdError(
      input,
      "expected [SOURCE/]CAMERA/YYYY-MM-DD/NAME or YYYY-MM-DD/NAME",
    );
  }
  const name = parts[parts.length - 1] as string;
  const date = parts[parts.length - 2] as string;
  const camera = parts.slice(0, -2).join("/") || DEFAULT_CAMERA;
  if (!isDate(date))
    throw new InvalidClipIdError(input, `"${truncate(date)}" is not a date YYYY-MM-DD`);
  if (extensions && !hasExtension(name, extensions)) {
    throw new InvalidClipIdError(input, `not a video file (${extensions.join(" ")})`);
  }
  return { id: input, camera, date, name };
}

/** Non-throwing variant. */
export function tryParseClipId(input: string, extensions?: readonly string[]): ClipRef | undefined {
  try {
    return parseClipId(input, extensions);
  } catch {
    return undefined;
  }
}

export function hasExtension(name: string, extensions: readonly string[]): boolean {
  const lower = name.toLowerCase();
  return extensions.some((ext) => lower.endsWith(ext.toLowerCase()) && lower.length > ext.length);
}

/** Builds the id of a clip found in `date` folder under `camera` (undefined: the root holds dates). */
export function clipIdOf(camera: string | undefined, date: string, name: string): string {
  return camera === undefined ? `${date}/${name}` : `${camera}/${date}/${name}`;
}

/** Remote path of a clip's encrypted copy, relative to destination.path. */
export function remotePathOf(id: string): string {
  return `${id}.age`;
}
