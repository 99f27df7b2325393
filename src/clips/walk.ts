import type { Entry } from "../storage/types.js";
import { DEFAULT_CAMERA, isDate, unsafeSegmentReason } from "./clipId.js";

/**
 * The one walk of motionEye's layout, for cameras and vaults alike: `<root>/<date>/<file>` or
 * `<root>/<camera>/<date>/<file>`. Hidden and unsafe folder names are skipped.
 */

export interface DateFolder {
  /** The camera folder, or undefined when the root holds date folders directly. */
  camera: string | undefined;
  date: string;
  /** The folder's path from the lister's root (`root/camera/date`). */
  dir: string;
}

export interface WalkOptions {
  /** Where the layout starts ("" for the lister's root, or a source's prefix in the vault). */
  root?: string;
  /** Only this camera (`default` for date folders at the root). */
  camera?: string;
  /** Only this day. */
  date?: string;
  /** Top folders that are not cameras here (the prefixes of other sources in the vault). */
  skip?: ReadonlySet<string>;
}

const join = (a: string, b: string) => (a === "" ? b : `${a}/${b}`);

function usable(e: Entry): boolean {
  return e.kind === "dir" && !e.name.startsWith(".") && !unsafeSegmentReason(e.name);
}

/** The camera folders at the top of a root (`default` when it holds date folders directly). */
export async function cameraFolders(
  list: (dir: string) => Promise<Entry[]>,
  opts: Pick<WalkOptions, "root" | "skip"> = {},
): Promise<string[]> {
  const found = new Set<string>();
  for (const e of await list(opts.root ?? "")) {
    if (!usable(e) || opts.skip?.has(e.name)) continue;
    found.add(isDate(e.name) ? DEFAULT_CAMERA : e.name);
  }
  return [...found];
}

export async function dateFolders(
  list: (dir: string) => Promise<Entry[]>,
  opts: WalkOptions = {},
): Promise<DateFolder[]> {
  const root = opts.root ?? "";
  const out: DateFolder[] = [];
  const wanted = (camera: string | undefined, date: string) =>
    (opts.date === undefined || opts.date === date) &&
    (opts.camera === undefined || (camera ?? DEFAULT_CAMERA) === opts.camera);
  for (const entry of await list(root)) {
    if (!usable(entry) || opts.skip?.has(entry.name)) continue;
    if (isDate(entry.name)) {
      if (wanted(undefined, entry.name)) {
        out.push({ camera: undefined, date: entry.name, dir: join(root, entry.name) });
      }
      continue;
    }
    if (opts.camera !== undefined && opts.camera !== entry.name) continue;
    const cameraDir = join(root, entry.name);
    for (const sub of await list(cameraDir)) {
      if (sub.kind === "dir" && isDate(sub.name) && wanted(entry.name, sub.name)) {
        out.push({ camera: entry.name, date: sub.name, dir: join(cameraDir, sub.name) });
      }
    }
  }
  return out;
}
