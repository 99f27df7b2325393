import { unsafeSegmentReason } from "../../clips/clipId.js";
import type { SourceSet } from "../../clips/sources.js";
import type { Manifest } from "../../manifest/manifest.js";
import { errorMessage, type Logger } from "../../util/log.js";
import type { SourceView } from "../contract.js";
import type { LastClip } from "./states.js";

/**
 * The cameras Home Assistant shows, by label (`Camera1`, or `garage/Camera1` with several
 * sources): each source's top folders, with each camera's last clip and today's clip count read
 * from the manifest. What the devices themselves say (reachable, pending) is the service
 * state's, not kept here.
 */

interface CameraInfo {
  source: string;
  lastClip?: LastClip;
  /** Ids of clips from today's date folder: their count is "clips today". */
  today: Set<string>;
}

export class CameraBook {
  private readonly cameras = new Map<string, CameraInfo>();

  constructor(
    private readonly deps: {
      sources: SourceSet;
      views: readonly SourceView[];
      manifest: Pick<Manifest, "dates" | "listDate">;
      logger: Logger;
    },
  ) {}

  get labels(): string[] {
    return [...this.cameras.keys()].sort();
  }

  entries(): Array<[string, CameraInfo]> {
    return [...this.cameras];
  }

  /** The cameras of one source, as folder names. */
  folders(source: string): string[] {
    return [...this.cameras]
      .filter(([, i]) => i.source === source)
      .map(([label]) => this.folderOf(label));
  }

  has(label: string): boolean {
    return this.cameras.has(label);
  }

  /** Adds a camera (by label) if new; returns its entry. */
  add(label: string, source?: string): CameraInfo {
    let info = this.cameras.get(label);
    if (!info) {
      info = { source: source ?? this.sourceOfLabel(label), today: new Set() };
      this.cameras.set(label, info);
    }
    return info;
  }

  /** Restores the cameras an earlier run published (labels of this config only). */
  restore(labels: readonly string[]): void {
    for (const label of labels) {
      if (label.split("/").some((s) => unsafeSegmentReason(s))) continue;
      const source = this.sourceOfLabel(label);
      if (this.deps.sources.get(source)) this.add(label, source);
    }
  }

  /**
   * Lists each source's top folders. A source that cannot be listed keeps the cameras it had.
   * Returns the labels that went away and whether the set changed.
   */
  async refresh(): Promise<{ changed: boolean; gone: string[] }> {
    const before = this.labels.join("\n");
    const gone: string[] = [];
    await Promise.all(
      this.deps.views.map(async (view) => {
        let folders: string[];
        try {
          folders = await view.cameras();
        } catch (err) {
          this.deps.logger.debug(
            { source: view.name, err: errorMessage(err) },
            "camera listing failed",
          );
          return;
        }
        const ref = this.deps.sources.get(view.name);
        if (!ref) return;
        const found = new Set(folders.map((f) => this.deps.sources.cameraLabel(ref, f)));
        for (const [label, info] of this.cameras) {
          if (info.source === view.name && !found.has(label)) {
            this.cameras.delete(label);
            gone.push(label);
          }
        }
        for (const label of found) this.add(label, view.name);
      }),
    );
    return { changed: before !== this.labels.join("\n"), gone };
  }

  /** Each camera's last clip (newest date folders first, a month at most) and today's count. */
  async loadClips(today: string): Promise<void> {
    const { manifest, sources } = this.deps;
    const missing = new Set([...this.cameras].filter(([, i]) => !i.lastClip).map(([c]) => c));
    const dates = (await manifest.dates()).reverse().slice(0, 31);
    for (const date of dates) {
      if (missing.size === 0) break;
      const newest = new Map<string, LastClip>();
      for (const clip of await manifest.listDate(date)) {
        const camera = sources.cameraOf(clip.id, clip.camera);
        if (!missing.has(camera)) continue;
        const seen = newest.get(camera);
        if (!seen || clip.uploadedAt > seen.at) {
          newest.set(camera, { id: clip.id, camera, at: clip.uploadedAt });
        }
      }
      for (const [camera, clip] of newest) {
        this.add(camera).lastClip = clip;
        missing.delete(camera);
      }
    }
    await this.countToday(today);
  }

  async countToday(today: string): Promise<void> {
    const byCamera = new Map<string, Set<string>>();
    for (const clip of await this.deps.manifest.listDate(today)) {
      const camera = this.deps.sources.cameraOf(clip.id, clip.camera);
      const ids = byCamera.get(camera) ?? new Set<string>();
      ids.add(clip.id);
      byCamera.set(camera, ids);
    }
    for (const [camera, info] of this.cameras) info.today = byCamera.get(camera) ?? new Set();
  }

  private sourceOfLabel(label: string): string {
    const { sources } = this.deps;
    if (!sources.qualified) return sources.list[0]?.name ?? "";
    return label.slice(0, Math.max(0, label.indexOf("/")));
  }

  private folderOf(label: string): string {
    return this.deps.sources.qualified ? label.slice(label.indexOf("/") + 1) : label;
  }
}
