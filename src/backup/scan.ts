import { clipIdOf, DEFAULT_CAMERA, hasExtension, unsafeSegmentReason } from "../clips/clipId.js";
import type { SourceRef, SourceSet } from "../clips/sources.js";
import { dateFolders } from "../clips/walk.js";
import type { Source } from "../storage/types.js";
import type { Logger } from "../util/log.js";

/** A clip as found on a source. */
export interface SourceClip {
  /** Its id in the vault (prefixed with the source's name unless its prefix is ""). */
  id: string;
  /** Its path on the source. */
  path: string;
  source: string;
  /** The camera as shown to users (`garage/Camera1`, or `Camera1` with one unprefixed source). */
  camera: string;
  date: string;
  name: string;
  size: number;
  /** 0 when the source does not say. */
  mtimeMs: number;
}

export interface ScanOptions {
  extensions: readonly string[];
  /** Only this camera folder of the source. */
  camera?: string;
  date?: string;
  logger?: Logger;
}

/**
 * Lists the clips on one source. Thumbnails (`.thumb`), other files and unsafe names are
 * skipped. The unprefixed source leaves out top folders named like another source's prefix:
 * their ids would be that source's.
 */
export async function scanSource(
  source: Source,
  ref: SourceRef,
  sources: SourceSet,
  opts: ScanOptions,
): Promise<SourceClip[]> {
  const skip = new Set(ref.prefix === "" ? sources.prefixes : []);
  const list = (dir: string) => source.list(dir);
  const out: SourceClip[] = [];
  for (const { camera, date, dir } of await dateFolders(list, { ...opts, skip })) {
    for (const file of await source.list(dir)) {
      if (file.kind !== "file" || !hasExtension(file.name, opts.extensions)) continue;
      const unsafe = unsafeSegmentReason(file.name);
      if (unsafe) {
        opts.logger?.warn({ dir, reason: unsafe }, "skipping a file with an unsafe name");
        continue;
      }
      const path = clipIdOf(camera, date, file.name);
      out.push({
        id: sources.idOf(ref, path),
        path,
        source: ref.name,
        camera: sources.cameraLabel(ref, camera ?? DEFAULT_CAMERA),
        date,
        name: file.name,
        size: file.size,
        mtimeMs: file.mtimeMs,
      });
    }
  }
  return out;
}
