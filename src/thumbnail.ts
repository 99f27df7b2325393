import type { Store } from "./storage/store.js";

/**
 * motionEye's thumbnail of a movie: `<movie>.thumb` beside it, a JPEG frame it writes a few
 * seconds after the movie ends. Telegram's clip notes and Home Assistant's image entity show it.
 */

/** A thumbnail bigger than this is not a motionEye frame: skip it (photos may be 10 MB). */
export const MAX_THUMB_BYTES = 5 * 1024 * 1024;

/** Reads `<clip>.thumb` from the source, or undefined when there is none (or it is odd). */
export async function readThumb(source: Store, clipId: string): Promise<Buffer | undefined> {
  const path = `${clipId}.thumb`;
  const entry = await source.stat(path).catch(() => undefined);
  if (entry?.kind !== "file" || entry.size === 0 || entry.size > MAX_THUMB_BYTES) {
    return undefined;
  }
  try {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of await source.read(path)) {
      size += (chunk as Buffer).length;
      if (size > MAX_THUMB_BYTES) return undefined;
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks);
  } catch {
    return undefined;
  }
}

/** True for JPEG data (it starts with the SOI marker and a segment marker). */
export function isJpeg(data: Buffer): boolean {
  return data.length > 3 && data[0] === 0xff && data[1] === 0xd8 && data[2] === 0xff;
}
