import { createHash } from "node:crypto";
import type { Vault } from "../app.js";
import type { ClipRecord } from "../manifest.js";

/**
 * A camera in a button's callback data: a short hash of its name (names may be long, and
 * `<source>/<camera>` with several sources), matched against the cameras of the day it names.
 */
export function cameraKey(camera: string): string {
  return createHash("sha256").update(camera).digest("base64url").slice(0, 6);
}

export const CAMERA_KEY = "[A-Za-z0-9_-]{6}";

/** The day's clips of one camera (by key), or all of them without a key. */
export function ofCamera(clips: ClipRecord[], key: string | undefined): ClipRecord[] {
  return key ? clips.filter((c) => cameraKey(c.camera) === key) : clips;
}

/**
 * The nearest earlier and later days that have clips (of the camera, when one is chosen),
 * looking at the manifest's days in order: a day whose clips are all gone is skipped.
 */
export async function neighbourDays(
  vault: Vault,
  date: string,
  key: string | undefined,
): Promise<{ prev?: string; next?: string }> {
  const dates = await vault.manifest.dates();
  const hasClips = async (d: string) => ofCamera(await vault.manifest.listDate(d), key).length > 0;
  let prev: string | undefined;
  for (const d of dates.filter((d) => d < date).reverse()) {
    if (await hasClips(d)) {
      prev = d;
      break;
    }
  }
  let next: string | undefined;
  for (const d of dates.filter((d) => d > date)) {
    if (await hasClips(d)) {
      next = d;
      break;
    }
  }
  return { prev, next };
}
