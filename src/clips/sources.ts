import { DEFAULT_CAMERA, parseClipId } from "./clipId.js";

/**
 * The camera devices of a vault, as far as clip ids go. A source's clips have ids prefixed with
 * its name (`garage/Camera1/2024-05-01/12-00-00.mp4`), except the one source with prefix ""
 * (a vault made with a single `source:` keeps its ids). Cameras are shown as `<name>/<camera>`
 * wherever they are listed, unless the vault has that single unprefixed source only (then as
 * before: `Camera1`).
 */

export interface SourceRef {
  name: string;
  /** "" keeps unprefixed ids. */
  prefix: string;
}

export interface LocatedClip {
  source: SourceRef;
  /** The clip's path on its source (its id without the prefix). */
  path: string;
  /** The camera folder on the source (`default` for date folders at the root). */
  camera: string;
}

export class SourceSet {
  readonly list: readonly SourceRef[];
  private readonly byName = new Map<string, SourceRef>();
  private readonly byPrefix = new Map<string, SourceRef>();
  /** The source with prefix "", if any. */
  readonly unprefixed: SourceRef | undefined;

  constructor(sources: readonly SourceRef[]) {
    this.list = sources;
    for (const s of sources) {
      this.byName.set(s.name, s);
      if (s.prefix !== "") this.byPrefix.set(s.prefix, s);
    }
    this.unprefixed = sources.find((s) => s.prefix === "");
  }

  get names(): string[] {
    return this.list.map((s) => s.name);
  }

  /** Cameras are shown as `<name>/<camera>` (see above). */
  get qualified(): boolean {
    return !(this.list.length === 1 && this.unprefixed !== undefined);
  }

  get(name: string): SourceRef | undefined {
    return this.byName.get(name);
  }

  /** Prefixes of the prefixed sources: top folders the unprefixed source must not claim. */
  get prefixes(): string[] {
    return [...this.byPrefix.keys()];
  }

  /** The vault id of a clip found at `path` on `source`. */
  idOf(source: SourceRef, path: string): string {
    return source.prefix === "" ? path : `${source.prefix}/${path}`;
  }

  /** A camera as shown to users. */
  cameraLabel(source: SourceRef, camera: string): string {
    return this.qualified ? `${source.name}/${camera}` : camera;
  }

  /** Which source a vault id belongs to, or undefined when none of this config's does. */
  locate(id: string): LocatedClip | undefined {
    const slash = id.indexOf("/");
    const prefixed = slash > 0 ? this.byPrefix.get(id.slice(0, slash)) : undefined;
    if (prefixed) {
      const path = id.slice(slash + 1);
      const ref = tryParse(path);
      if (ref) return { source: prefixed, path, camera: ref.camera };
    }
    if (!this.unprefixed) return undefined;
    const ref = tryParse(id);
    return ref ? { source: this.unprefixed, path: id, camera: ref.camera } : undefined;
  }

  /** The camera of a clip as shown to users; `fallback` when the clip is no source's. */
  cameraOf(id: string, fallback: string): string {
    const at = this.locate(id);
    return at ? this.cameraLabel(at.source, at.camera) : fallback;
  }

  /** The source name of a clip, or undefined. */
  sourceOf(id: string): string | undefined {
    return this.locate(id)?.source.name;
  }

  /**
   * What `--camera X` selects: `<name>/<camera>`, `<name>` (a whole source), or a bare camera
   * name (that camera on every source). Undefined when it names nothing of this config.
   */
  selectCamera(filter: string): CameraSelection | undefined {
    const slash = filter.indexOf("/");
    if (slash > 0) {
      const source = this.byName.get(filter.slice(0, slash));
      const camera = filter.slice(slash + 1);
      if (source && camera !== "" && !camera.includes("/")) return { source, camera };
    }
    const whole = this.byName.get(filter);
    if (whole && this.qualified) return { source: whole };
    if (slash < 0) return { camera: filter };
    return undefined;
  }

  /** True when a clip (by id) is one `selection` picks. */
  matches(selection: CameraSelection, id: string, fallbackCamera: string): boolean {
    const at = this.locate(id);
    if (!at) return selection.source === undefined && selection.camera === fallbackCamera;
    if (selection.source && selection.source.name !== at.source.name) return false;
    return selection.camera === undefined || selection.camera === at.camera;
  }
}

export interface CameraSelection {
  source?: SourceRef;
  camera?: string;
}

function tryParse(path: string): { camera: string } | undefined {
  const parts = path.split("/");
  if (parts.length < 2 || parts.length > 3) return undefined;
  try {
    const ref = parseClipId(path);
    return { camera: parts.length === 2 ? DEFAULT_CAMERA : ref.camera };
  } catch {
    return undefined;
  }
}
