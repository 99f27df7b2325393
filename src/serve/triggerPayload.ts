import { isDate, parseClipId, stripControl, unsafeSegmentReason } from "../clips/clipId.js";
import { SOURCE_NAME } from "../config/schema.js";
import type { TriggerRequest } from "../extensions/contract.js";

/**
 * What an MQTT trigger asks for. The payload is untrusted (anyone who can publish on the broker
 * sends it): empty, a plain token (the original motioneye.sh), or JSON such as
 * `{"camera":"Camera1","file":"/data/output/Camera1/2024-05-01/12-00-00.mp4","source":"garage"}`
 * (`source`: which camera device, when the vault has several). Whatever is odd
 * about it is reported in `problems` and the message still counts as a plain trigger: a bad
 * payload never costs a backup, and never names a path outside the vault.
 */

/** motioneye.sh sends ~150 bytes; anything much larger is not from it. */
export const MAX_PAYLOAD_BYTES = 4096;
const MAX_FIELD_CHARS = 1024;
const LOG_CHARS = 120;

export interface PayloadOptions {
  /** Video extensions (source.extensions): a named file must be a clip. */
  extensions: readonly string[];
  /**
   * The media root as the vault sees it, when that is a local folder (source.path): an absolute
   * file under it maps exactly. Otherwise (FTP, or motionEye in a container with other mounts)
   * the trailing `[camera/]date/name` segments of the path decide.
   */
  mediaRoot?: string;
}

export interface TriggerOptions {
  extensions: readonly string[];
  /** The sources that are local folders: a file under one of them is that source's. */
  localRoots?: ReadonlyArray<{ source: string; root: string }>;
}

export interface ParsedTrigger {
  request: TriggerRequest;
  /** The payload's camera, safe to log (control characters replaced, shortened). */
  camera?: string;
  /** The payload's file, safe to log. */
  file?: string;
  /** Why (part of) the payload was ignored; empty when it was fine. */
  problems: string[];
}

/** For logs: no control characters, bounded length. */
export function printable(s: string): string {
  const clean = stripControl(s);
  return clean.length > LOG_CHARS ? `${clean.slice(0, LOG_CHARS - 3)}...` : clean;
}

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
  const fields = doc as Record<string, unknown>;
  const problems: string[] = [];
  const out: ParsedTrigger = { request: { origin: "mqtt" }, problems };

  const source = fields.source;
  if (typeof source === "string") {
    if (SOURCE_NAME.test(source)) out.request.source = source;
    else if (source !== "") problems.push(`"source" ignored: not a source name`);
  } else if (source !== undefined && source !== null) {
    problems.push(`"source" must be a string, not ${typeName(source)}`);
  }

  const camera = fields.camera;
  if (typeof camera === "string") {
    if (camera.length > 0) out.camera = printable(camera.slice(0, MAX_FIELD_CHARS));
  } else if (camera !== undefined && camera !== null) {
    problems.push(`"camera" must be a string, not ${typeName(camera)}`);
  }

  const file = fields.file;
  if (typeof file === "string") {
    if (file.length > 0) {
      out.file = printable(file);
      // Under a local source's folder: that source's clip, exactly.
      const local = opts.localRoots?.find((l) => file.startsWith(`${l.root.replace(/\/+$/, "")}/`));
      const mapped = clipIdsForPath(file, { extensions: opts.extensions, mediaRoot: local?.root });
      if ("ids" in mapped) {
        out.request.clipPaths = mapped.ids;
        if (local && out.request.source === undefined) out.request.source = local.source;
      } else problems.push(`"file" ignored: ${mapped.problem}`);
    }
  } else if (file !== undefined && file !== null) {
    problems.push(`"file" must be a string, not ${typeName(file)}`);
  }
  return out;
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
  if (path.length > MAX_FIELD_CHARS) return { problem: "the path is too long" };
  const parts = path.split("/").filter((s) => s !== "");
  // The same segment check as clip ids: no "..", ".", backslashes or control characters.
  for (const seg of parts) {
    const reason = unsafeSegmentReason(seg);
    if (reason) return { problem: reason };
  }

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
