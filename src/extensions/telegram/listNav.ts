import { createHash } from "node:crypto";
import type { ClipRecord } from "../../manifest/manifest.js";
import type { BotDeps } from "./common.js";

/** What a day's list reads: the manifest's days and clips, and the sources to name cameras. */
export type ListDeps = Pick<BotDeps, "manifest" | "sources">;

/** A clip's camera as lists show it: `<source>/<camera>` with several sources (sources.ts). */
export function cameraLabel(deps: Pick<BotDeps, "sources">, clip: ClipRecord): string {
  return deps.sources.cameraOf(clip.id, clip.camera);
}

/**
 * A camera in a button's callback data: a short hash of its label (labels may be long, and
 * `<source>/<camera>` with several sources), matched against the cameras of the day it names.
 */
export function cameraKey(camera: string): string {
  return createHash("sha256").update(camera).digest("base64url").slice(0, 6);
}

export const CAMERA_KEY = "[A-Za-z0-9_-]{6}";

/** The day's clips of one camera (by key), or all of them without a key. */
export function ofCamera(
  deps: Pick<BotDeps, "sources">,
  clips: ClipRecord[],
  key: string | undefined,
): ClipRecord[] {
  return key ? clips.filter((c) => cameraKey(cameraLabel(deps, c)) === key) : clips;
}

/**
 * The nearest earlier and later days that have clips (of the camera, when one is chosen),
 * looking at the manifest's days in order: a day whose clips are all gone is skipped.
 */
export async function neighbourDays(
  deps: ListDeps,
  date: string,
  key: string | undefined,
): Promise<{ prev?: string; next?: string }> {
  const dates = await deps.manifest.dates();
  const hasClips = async (d: string) =>
    ofCamera(deps, await deps.manifest.listDate(d), key).length > 0;
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
