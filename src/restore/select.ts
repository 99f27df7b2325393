import { join, relative, resolve, sep } from "node:path";
import {
  DEFAULT_CAMERA,
  InvalidClipIdError,
  isDate,
  parseClipId,
  stripControl,
} from "../clips/clipId.js";
import type { ClipRecord, Manifest } from "../manifest/manifest.js";

/** Which clips a restore names: `all`, days, a range, or one clip id (full or `<date>/<name>`). */

export class ClipNotFoundError extends Error {
  override name = "ClipNotFoundError";
}

export class AmbiguousClipError extends Error {
  override name = "AmbiguousClipError";
  constructor(
    query: string,
    readonly candidates: string[],
  ) {
    const shown = candidates.slice(0, 5).join(", ");
    const more = candidates.length > 5 ? ` and ${candidates.length - 5} more` : "";
    super(
      `"${shorten(query)}" matches ${candidates.length} clips (${shown}${more}): give the full clip id`,
    );
  }
}

function shorten(s: string): string {
  const clean = stripControl(s);
  return clean.length > 120 ? `${clean.slice(0, 117)}...` : clean;
}

/**
 * Full clip id, or the short `<date>/<name>` form when unique. Throws InvalidClipIdError
 * (src/clipId.ts), ClipNotFoundError, AmbiguousClipError — all with messages fit to show a user.
 */
export async function findClip(
  manifest: Pick<Manifest, "get" | "listDate">,
  query: string,
): Promise<ClipRecord> {
  const ref = parseClipId(query);
  const exact = await manifest.get(ref.id, ref.date);
  if (exact) return exact;
  if (ref.camera === DEFAULT_CAMERA && query.split("/").length === 2) {
    const same = (await manifest.listDate(ref.date)).filter((c) => c.name === ref.name);
    if (same.length === 1 && same[0]) return same[0];
    if (same.length > 1)
      throw new AmbiguousClipError(
        query,
        same.map((c) => c.id),
      );
  }
  throw new ClipNotFoundError(
    `clip not found: "${shorten(query)}" is not in the vault (\`list ${ref.date}\` shows that day's clips)`,
  );
}

/** What `restore` was asked for. */
export type Selection =
  | { kind: "all" }
  /** Inclusive; an open end means "from the first" / "to the last". */
  | { kind: "dates"; from?: string; to?: string }
  | { kind: "clip"; query: string };

/** A restore target that is neither `all`, a date, a range nor a clip id. */
export class SelectionError extends Error {
  override name = "SelectionError";
}

/** `all`, `YYYY-MM-DD`, `FROM..TO` (either end may be left out), or a clip id. */
export function parseSelection(target: string): Selection {
  if (target === "all") return { kind: "all" };
  if (isDate(target)) return { kind: "dates", from: target, to: target };
  const range = /^([^/]*)\.\.([^/]*)$/.exec(target);
  if (range) {
    const [, from = "", to = ""] = range;
    for (const d of [from, to]) {
      if (d !== "" && !isDate(d)) {
        throw new SelectionError(
          `"${shorten(d)}" in "${shorten(target)}" is not a date YYYY-MM-DD`,
        );
      }
    }
    if (from === "" && to === "") {
      throw new SelectionError("a range needs at least one date: FROM..TO, FROM.. or ..TO");
    }
    if (from !== "" && to !== "" && from > to) {
      throw new SelectionError(`"${shorten(target)}": ${from} is after ${to}`);
    }
    return { kind: "dates", from: from || undefined, to: to || undefined };
  }
  if (!target.includes("/")) {
    throw new SelectionError(
      `"${shorten(target)}" is neither \`all\`, a date YYYY-MM-DD, a range FROM..TO nor a clip id`,
    );
  }
  return { kind: "clip", query: target };
}

/** The clips a selection names, in id order, optionally only those `keep` accepts (a camera). */
export async function selectClips(
  manifest: Manifest,
  selection: Selection,
  keep?: (clip: ClipRecord) => boolean,
): Promise<ClipRecord[]> {
  let clips: ClipRecord[];
  if (selection.kind === "clip") {
    clips = [await findClip(manifest, selection.query)];
  } else {
    const { from, to } =
      selection.kind === "dates" ? selection : { from: undefined, to: undefined };
    clips = [];
    for (const date of await manifest.dates()) {
      if ((from && date < from) || (to && date > to)) continue;
      clips.push(...(await manifest.listDate(date)));
    }
  }
  return keep ? clips.filter(keep) : clips;
}

/** Where a clip goes under `outDir`: its id as a relative path (the vault's own layout). */
export function localPathOf(outDir: string, clip: Pick<ClipRecord, "id">): string {
  const ref = parseClipId(clip.id); // a manifest edited by hand must not write outside outDir
  const root = resolve(outDir);
  const path = join(root, ...ref.id.split("/"));
  const rel = relative(root, path);
  if (rel.startsWith("..") || rel.startsWith(sep)) {
    throw new InvalidClipIdError(clip.id, "resolves outside the output folder");
  }
  return path;
}
