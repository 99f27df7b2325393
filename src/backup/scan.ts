import {
  clipIdOf,
  DEFAULT_CAMERA,
  hasExtension,
  isDate,
  unsafeSegmentReason,
} from "../clips/clipId.js";
import type { Store } from "../storage/types.js";
import type { Logger } from "../util/log.js";
import type { SourceClip } from "./plan.js";

export interface ScanOptions {
  extensions: readonly string[];
  camera?: string;
  date?: string;
  logger?: Logger;
}

/**
 * Lists the clips on the source: `<root>/<date>/<file>` or `<root>/<camera>/<date>/<file>`.
 * Thumbnails (`.thumb`), other files and unsafe names are skipped.
 */
export async function scanSource(source: Store, opts: ScanOptions): Promise<SourceClip[]> {
  const out: SourceClip[] = [];
  const root = await source.list("");
  const dateDirs: Array<{ camera: string | undefined; date: string }> = [];

  for (const entry of root) {
    if (entry.kind !== "dir" || entry.name.startsWith(".") || unsafeSegmentReason(entry.name))
      continue;
    if (isDate(entry.name)) {
      dateDirs.push({ camera: undefined, date: entry.name });
      continue;
    }
    if (opts.camera !== undefined && opts.camera !== entry.name) continue;
    for (const sub of await source.list(entry.name)) {
      if (sub.kind === "dir" && isDate(sub.name))
        dateDirs.push({ camera: entry.name, date: sub.name });
    }
  }

  for (const { camera, date } of dateDirs) {
    if (opts.date !== undefined && opts.date !== date) continue;
    if (opts.camera !== undefined && (camera ?? DEFAULT_CAMERA) !== opts.camera) continue;
    const dir = camera === undefined ? date : `${camera}/${date}`;
    for (const file of await source.list(dir)) {
      if (file.kind !== "file" || !hasExtension(file.name, opts.extensions)) continue;
      const unsafe = unsafeSegmentReason(file.name);
      if (unsafe) {
        opts.logger?.warn({ dir, reason: unsafe }, "skipping a file with an unsafe name");
        continue;
      }
      out.push({
        id: clipIdOf(camera, date, file.name),
        camera: camera ?? DEFAULT_CAMERA,
        date,
        name: file.name,
        size: file.size,
        mtimeMs: file.mtimeMs,
      });
    }
  }
  return out;
}
