import { DEFAULT_CAMERA } from "../clips/clipId.js";
import type { Source } from "../storage/types.js";

/**
 * Where a source's media root is configured, to name it when it is missing: the key as the
 * strict config names it (`source.path`, `sources[1].path`) and the value written there.
 */
export interface SourceRootInfo {
  key: string;
  path: string;
}

/** The source's root (or the camera folder a run is limited to) does not exist. */
export class MissingSourceRoot extends Error {
  readonly code = "ENOENT";
}

/**
 * Fails when the source's root is absent or not a folder. A listing cannot tell: an absent folder
 * lists as [] (right for a date folder that vanished mid-run, wrong for the root, where it means an
 * unmounted disk, an unmapped add-on folder or a typo, and would pass for a quiet day).
 */
export async function checkSourceRoot(source: Source, root: SourceRootInfo): Promise<void> {
  const entry = await source.stat("");
  if (entry?.kind === "dir") return;
  const what = entry ? "is not a folder" : "does not exist";
  const on = source.server ? ` on ${source.server}` : "";
  throw new MissingSourceRoot(`${root.key}: ${root.path} ${what}${on}`);
}

/**
 * Fails when the camera folder a run is limited to (`sync --camera garage/Camera1`) is not on the
 * source: "0 clips" would read as a quiet day. `default` (date folders at the root) is not a folder.
 */
export async function checkCameraFolder(
  source: Source,
  root: SourceRootInfo,
  camera: string,
): Promise<void> {
  if (camera === DEFAULT_CAMERA) return;
  const entry = await source.stat(camera);
  if (entry?.kind === "dir") return;
  const on = source.server ? ` on ${source.server}` : "";
  throw new MissingSourceRoot(
    `--camera: there is no camera folder ${camera} in ${root.path} (${root.key})${on}`,
  );
}
