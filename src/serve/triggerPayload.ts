import {
  hasExtension,
  isDate,
  parseClipId,
  stripControl,
  unsafeSegmentReason,
} from "../clips/clipId.js";
import { SOURCE_NAME } from "../config/schema.js";
import type { TriggerOrigin, TriggerRequest } from "../extensions/contract.js";

/**
 * What a trigger asks for. MQTT payloads and HTTP hook fields are untrusted (anyone who can
 * publish on the broker, or reach the hook, sends them): empty, a plain token (the original
 * motioneye.sh), or fields such as
 * `{"camera":"Camera1","file":"/data/output/Camera1/2024-05-01/12-00-00.mp4","event":"movie_end"}`,
 * and `"source":"garage"` (which camera device, when the vault has several).
 * Whatever is odd about them is reported in `problems`; a picture or any other file that is not
 * a clip asks for no run at all (`ignored`). A bad trigger never names a path outside the vault.
 */

/** motioneye.sh sends ~150 bytes; anything much larger is not from it. */
export const MAX_PAYLOAD_BYTES = 4096;
const MAX_FIELD_CHARS = 1024;
const LOG_CHARS = 120;

/** What motion saves besides movies: a `picture_save` event without a file is about one. */
const PICTURE_EXTENSIONS = [".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm"];

export interface PayloadOptions {
  /** Clip extensions (source.extensions): a named file must be a clip. */
  extensions: readonly string[];
  /**
   * The media root as the vault sees it, when that is a local folder (source.path): an absolute
   * file under it maps exactly. Otherwise (FTP, or motionEye in a container with other mounts)
   * the trailing `[camera/]date/name` segments of the path decide.
   */
  mediaRoot?: string;
}

export interface TriggerOptions {
  /** Clip extensions of every source. */
  extensions: readonly string[];
  /** The sources that are local folders: a file under one of them is that source's clip. */
  localRoots?: ReadonlyArray<{ source: string; root: string }>;
}

export interface ParsedTrigger {
  request: TriggerRequest;
  /** The trigger's camera, safe to log (control characters replaced, shortened). */
  camera?: string;
  /** The trigger's file, safe to log. */
  file?: string;
  /** motioneye.sh's event label (movie_end, picture_save, event_end...), safe to log. */
  event?: string;
  /** The source the trigger names, safe to log (with one source, every trigger is for it). */
  source?: string;
  /** Why this trigger asks for no run at all (a picture, a thumbnail); worth a debug line only. */
  ignored?: string;
  /** Why (part of) the trigger was ignored; empty when it was fine. */
  problems: string[];
}

/** For logs: no control characters, bounded length. */
export function printable(s: string): string {
  const clean = stripControl(s);
  return clean.length > LOG_CHARS ? `${clean.slice(0, LOG_CHARS - 3)}...` : clean;
}

/** An MQTT message's payload: decoded, then read as `parseTriggerFields` reads hook fields. */
export function parseTriggerPayload(payload: Uint8Array, opts: TriggerOptions): ParsedTrigger {
  const plain = (problems: string[] = []): ParsedTrigger => ({
    request: { origin: "mqtt" },
    problems,
  });
  if (payload.length === 0) return plain();
  if (payload.length > MAX_PAYLOAD_BYTES) {
    return plain([`payload of ${payload.length} bytes is too large (max ${MAX_PAYLOAD_BYTES})`]);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(payload).replace(/^\uFEFF/, "");
  } catch {
    return plain(["payload is not UTF-8 text"]);
  }
  if (hasBinary(text)) {
    return plain(["payload holds control characters (binary?)"]);
  }
  const trimmed = text.trim();
  // A plain token (the original motioneye.sh sent one) or a bare JSON scalar: just a trigger.
  if (!trimmed.startsWith("{") && !trimmed.startsWith("[")) return plain();

  let doc: unknown;
  try {
    doc = JSON.parse(trimmed);
  } catch {
    return plain(["payload looks like JSON but does not parse"]);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    return plain(["JSON payload must be an object"]);
  }
  return parseTriggerFields(doc as Record<string, unknown>, opts, "mqtt");
}

/**
 * A trigger's fields (`camera`, `file`, `event`, `source`; others are ignored), from a JSON
 * object or an HTTP query or form. Values must be strings; null or "" counts as absent.
 */
export function parseTriggerFields(
  fields: Readonly<Record<string, unknown>>,
  opts: TriggerOptions,
  via: TriggerOrigin,
): ParsedTrigger {
  const problems: string[] = [];
  const out: ParsedTrigger = { request: { origin: via }, problems };
  const text = (key: string): string | undefined => {
    const v = fields[key];
    if (typeof v === "string") return v.length > 0 ? v : undefined;
    if (v !== undefined && v !== null)
      problems.push(`"${key}" must be a string, not ${typeName(v)}`);
    return undefined;
  };

  const camera = text("camera");
  if (camera !== undefined) out.camera = printable(camera.slice(0, MAX_FIELD_CHARS));
  const event = text("event");
  if (event !== undefined) out.event = printable(event);
  const source = text("source");
  if (source !== undefined) {
    out.source = printable(source);
    // A name this config does not have runs every source (the queue says so); junk is refused.
    if (SOURCE_NAME.test(source)) out.request.source = source;
    else problems.push(`"source" ignored: not a source name ([a-z0-9][a-z0-9_-]*)`);
  }

  const file = text("file");
  if (file !== undefined) {
    out.file = printable(file);
    const unsafe = unsafePathReason(file);
    const notClip = unsafe ? undefined : notAClip(file, opts.extensions);
    if (unsafe) {
      problems.push(`"file" ignored: ${unsafe}`);
    } else if (notClip) {
      out.ignored = notClip;
    } else {
      // Under a local source's folder: that source's clip, exactly.
      const local = opts.localRoots?.find((l) => file.startsWith(`${l.root.replace(/\/+$/, "")}/`));
      const mapped = clipIdsForPath(file, { extensions: opts.extensions, mediaRoot: local?.root });
      if ("ids" in mapped) {
        out.request.clipPaths = mapped.ids;
        if (local && out.request.source === undefined) out.request.source = local.source;
      } else problems.push(`"file" ignored: ${mapped.problem}`);
    }
  } else if (event === "picture_save" && !opts.extensions.some(isPictureExtension)) {
    out.ignored = "a picture_save event, and source.extensions lists no picture type";
  }
  return out;
}

/** Why `path` is not a clip (a thumbnail, a picture, any other file), or undefined for a clip. */
function notAClip(path: string, extensions: readonly string[]): string | undefined {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const dot = name.lastIndexOf(".");
  const ext = dot > 0 ? name.slice(dot).toLowerCase() : "";
  // motionEye's `<movie>.thumb` is a JPEG frame of a movie: never a clip, whatever is listed.
  if (ext === ".thumb") return "a motionEye thumbnail (.thumb) is never backed up";
  if (hasExtension(name, extensions)) return undefined;
  return `not a clip: ${ext ? `"${printable(ext)}"` : "a name without an extension"} is not in source.extensions (${extensions.join(" ")})`;
}

function isPictureExtension(ext: string): boolean {
  return PICTURE_EXTENSIONS.includes(ext.toLowerCase());
}

/** C0 controls other than tab, newline and carriage return, or DEL: not text a script sends. */
function hasBinary(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) || c === 0x7f) return true;
  }
  return false;
}

function typeName(v: unknown): string {
  if (Array.isArray(v)) return "an array";
  if (v === null) return "null";
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

/**
 * Clip paths (on a source) a camera file path may stand for, most likely first. motionEye's path is
 * `<media root>/<camera>/<YYYY-MM-DD>/<name>`; the vault's media root may hold the camera folders
 * (id `camera/date/name`) or be that one camera's folder (id `date/name`), and the camera's view
 * of its disk need not match ours, so both candidates are given. They only set the order of a
 * run's uploads: an id that is not on the source is simply not found.
 */
export function clipIdsForPath(
  path: string,
  opts: PayloadOptions,
): { ids: string[] } | { problem: string } {
  const unsafe = unsafePathReason(path);
  if (unsafe) return { problem: unsafe };
  const parts = path.split("/").filter((s) => s !== "");

  const root = opts.mediaRoot?.replace(/\/+$/, "");
  if (root && path.startsWith(`${root}/`)) {
    const rel = path
      .slice(root.length + 1)
      .split("/")
      .filter((s) => s !== "")
      .join("/");
    return check([rel], opts);
  }

  const name = parts.at(-1);
  const date = parts.at(-2);
  if (name === undefined || date === undefined || !isDate(date)) {
    return { problem: "not a clip in a date folder (.../YYYY-MM-DD/NAME) of the media root" };
  }
  const camera = parts.at(-3);
  return check(
    camera === undefined ? [`${date}/${name}`] : [`${camera}/${date}/${name}`, `${date}/${name}`],
    opts,
  );
}

/** Why a path from a trigger is not to be trusted at all, or undefined. */
function unsafePathReason(path: string): string | undefined {
  if (path.length > MAX_FIELD_CHARS) return "the path is too long";
  // The same segment check as clip ids: no "..", ".", backslashes or control characters.
  for (const seg of path.split("/")) {
    if (seg === "") continue;
    const reason = unsafeSegmentReason(seg);
    if (reason) return reason;
  }
  return undefined;
}

function check(
  candidates: string[],
  opts: PayloadOptions,
): { ids: string[] } | { problem: string } {
  const ids: string[] = [];
  let problem = "";
  for (const id of candidates) {
    // A path on a source is `[camera/]date/name`: a source's own prefix is never part of it.
    if (id.split("/").length > 3) {
      problem ||= `"${printable(id)}" is deeper than [camera/]date/name`;
      continue;
    }
    try {
      ids.push(parseClipId(id, opts.extensions).id);
    } catch (err) {
      problem ||= (err as Error).message;
    }
  }
  return ids.length > 0 ? { ids } : { problem };
}
