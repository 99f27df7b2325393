import type { SourceSet } from "../clips/sources.js";
import type { SourceView } from "./contract.js";

/**
 * motionEye's thumbnail of a movie: `<movie>.thumb` beside it on its source, a JPEG frame it
 * writes a few seconds after the movie ends. Telegram's clip notes and Home Assistant's image
 * entity show it.
 */

/** A thumbnail bigger than this is not a motionEye frame: skip it (photos may be 10 MB). */
export const MAX_THUMB_BYTES = 5 * 1024 * 1024;

/** Reads a clip's `.thumb` from its source, or undefined when there is none (or it is odd). */
export async function readThumb(
  deps: { sources: SourceSet; sourceViews: readonly SourceView[] },
  clipId: string,
): Promise<Buffer | undefined> {
  const at = deps.sources.locate(clipId);
  const view = at && deps.sourceViews.find((v) => v.name === at.source.name);
  if (!at || !view) return undefined;
  try {
    const thumb = await view.readSmall(`${at.path}.thumb`, MAX_THUMB_BYTES);
    return thumb && thumb.length > 0 ? thumb : undefined;
  } catch {
    return undefined;
  }
}

/** True for JPEG data (it starts with the SOI marker and a segment marker). */
export function isJpeg(data: Buffer): boolean {
  return data.length > 3 && data[0] === 0xff && data[1] === 0xd8 && data[2] === 0xff;
}
