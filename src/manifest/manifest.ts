import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { Low } from "lowdb";
import { isDate } from "../clips/clipId.js";
import type { RunSummary } from "../util/events.js";
import { DurableJsonFile } from "./durableFile.js";

/**
 * The record of every clip in the vault, in lowdb.
 *
 * Sharded by day: `manifest/<date>.json` holds that day's clips, `state.json` the totals and run
 * history. Recording one clip rewrites one day's shard and the small state file, so the cost stays
 * flat whether the vault holds a thousand clips or a hundred thousand (see bench/manifest).
 * Every write is durable (durableFile.ts): a record reported as done survives a power cut.
 *
 * Format version 1 throughout: fields added since 0.1.0 (`source` on records, `sources` in the
 * state) are optional, so a vault of that release reads as it is.
 */

export interface ClipRecord {
  id: string;
  /** The source it came from; absent in records made before `sources:` existed. */
  source?: string;
  /** The camera as shown when it was recorded (`garage/Camera1`, or `Camera1`). */
  camera: string;
  date: string;
  name: string;
  /** Plaintext size in bytes. */
  size: number;
  mtimeMs: number;
  /** sha256 of the plaintext, hex; absent for legacy clips imported without reading them. */
  sha256?: string;
  /** Path on the destination, relative to destination.path. */
  remotePath: string;
  remoteSize: number;
  uploadedAt: string;
  format: "age" | "fernet";
  /**
   * A movie never closed (its recording was cut off), backed up as it was once it stopped
   * changing; absent for complete clips.
   */
  incomplete?: true;
}

export interface Sighting {
  size: number;
  mtimeMs: number;
  firstSeenMs: number;
}

/** One source's part of the state: what `status`, Home Assistant and the bot show per device. */
export interface SourceStatus {
  lastRunAt?: string;
  lastSuccessAt?: string;
  lastError?: { message: string; at: string };
  /** Its last run left clips not backed up, or could not list it. */
  failing: boolean;
  /** Its last run could list it. */
  reachable?: boolean;
  pending: number;
  lastClip?: { id: string; camera: string; at: string };
}

export interface StateDoc {
  version: 1;
  /** `incomplete`: clips recorded incomplete (absent in a state written before they existed). */
  totals: { clips: number; bytes: number; incomplete?: number };
  lastRun?: RunSummary;
  lastSuccessAt?: string;
  lastError?: { message: string; at: string };
  lastClip?: { id: string; camera: string; at: string };
  pending: number;
  /** Clips seen on the source but not yet settled, to tell a growing file from a finished one. */
  sightings: Record<string, Sighting>;
  runs: RunSummary[];
  /** Free-form persisted settings of extensions (e.g. Home Assistant's "Backups enabled"). */
  settings: Record<string, unknown>;
  /** Per source, by name (absent in a state written before `sources:` existed). */
  sources?: Record<string, SourceStatus>;
}

interface ShardDoc {
  clips: Record<string, ClipRecord>;
}

const MAX_RUNS = 50;

/** 1 for a clip recorded incomplete. */
const marks = (clip: ClipRecord | undefined): number => (clip?.incomplete ? 1 : 0);
export const incompleteCount = (st: Readonly<StateDoc>): number => st.totals.incomplete ?? 0;
/** Written only while there are some: a vault without incomplete clips keeps its totals as they were. */
function setIncomplete(st: StateDoc, n: number): void {
  if (n > 0) st.totals.incomplete = n;
  else delete st.totals.incomplete;
}

function compactJson<T>(path: string): DurableJsonFile<T> {
  return new DurableJsonFile<T>(path);
}

export class Manifest {
  private readonly shards = new Map<string, Low<ShardDoc>>();
  private allLoaded = false;

  private constructor(
    private readonly dir: string,
    private readonly state: Low<StateDoc>,
  ) {}

  static async open(stateDir: string): Promise<Manifest> {
    const dir = join(stateDir, "manifest");
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const state = new Low<StateDoc>(compactJson(join(stateDir, "state.json")), emptyState());
    await state.read();
    state.data = { ...emptyState(), ...state.data };
    const m = new Manifest(dir, state);
    return m;
  }

  /**
   * Drops cached data so another process's writes are seen. Call only after taking the run lock
   * fresh (no run of this process in progress): every write goes through that lock.
   */
  async reload(): Promise<void> {
    this.shards.clear();
    this.allLoaded = false;
    await this.state.read();
    this.state.data = { ...emptyState(), ...this.state.data };
  }

  /** Run history, totals and the like (small; always loaded). */
  get status(): Readonly<StateDoc> {
    return this.state.data;
  }

  private async shard(date: string): Promise<Low<ShardDoc>> {
    let s = this.shards.get(date);
    if (!s) {
      s = new Low<ShardDoc>(compactJson(join(this.dir, `${date}.json`)), { clips: {} });
      await s.read();
      this.shards.set(date, s);
    }
    return s;
  }

  /** Dates that have a shard, ascending. */
  async dates(): Promise<string[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    return names
      .filter((n) => n.endsWith(".json"))
      .map((n) => n.slice(0, -5))
      .filter(isDate)
      .sort();
  }

  async get(id: string, date: string): Promise<ClipRecord | undefined> {
    return (await this.shard(date)).data.clips[id];
  }

  async listDate(date: string): Promise<ClipRecord[]> {
    return Object.values((await this.shard(date)).data.clips).sort(byId);
  }

  /** Every clip, loading every shard once. */
  async all(): Promise<ClipRecord[]> {
    const out: ClipRecord[] = [];
    for (const date of await this.dates()) out.push(...(await this.listDate(date)));
    this.allLoaded = true;
    return out;
  }

  /** Records a clip whose encrypted copy is complete on the destination. */
  async record(clip: ClipRecord): Promise<void> {
    const s = await this.shard(clip.date);
    const previous = s.data.clips[clip.id];
    s.data.clips[clip.id] = clip;
    const st = this.state.data;
    st.totals.clips += previous ? 0 : 1;
    st.totals.bytes += clip.size - (previous?.size ?? 0);
    setIncomplete(st, incompleteCount(st) + marks(clip) - marks(previous));
    st.lastClip = { id: clip.id, camera: clip.camera, at: clip.uploadedAt };
    if (clip.source) this.sourceStatus(clip.source).lastClip = st.lastClip;
    delete st.sightings[clip.id];
    // Both files at once: after a crash between the two, reconcileTotals() repairs the totals.
    await Promise.all([s.write(), this.state.write()]);
  }

  async remove(id: string, date: string): Promise<ClipRecord | undefined> {
    const s = await this.shard(date);
    const previous = s.data.clips[id];
    if (!previous) return undefined;
    delete s.data.clips[id];
    await s.write();
    this.state.data.totals.clips -= 1;
    this.state.data.totals.bytes -= previous.size;
    setIncomplete(this.state.data, incompleteCount(this.state.data) - marks(previous));
    await this.state.write();
    return previous;
  }

  /** Recomputes totals from the shards (after a crash between a shard write and the state write). */
  async reconcileTotals(): Promise<void> {
    const all = await this.all();
    const incomplete = all.reduce((n, c) => n + marks(c), 0);
    const totals = {
      clips: all.length,
      bytes: all.reduce((n, c) => n + c.size, 0),
      ...(incomplete > 0 ? { incomplete } : {}),
    };
    const t = this.state.data.totals;
    if (
      t.clips !== totals.clips ||
      t.bytes !== totals.bytes ||
      incompleteCount(this.state.data) !== incomplete
    ) {
      this.state.data.totals = totals;
      await this.state.write();
    }
  }

  /**
   * Records a finished run. `scope`, for a run that listed its sources completely, says which
   * sightings it owns: those are replaced by the run's; others (other sources) are kept.
   */
  async recordRun(
    run: RunSummary,
    sightings: Record<string, Sighting>,
    opts: { scope?: (id: string) => boolean },
  ): Promise<void> {
    const st = this.state.data;
    st.lastRun = run;
    if (opts.scope) {
      for (const id of Object.keys(st.sightings)) if (opts.scope(id)) delete st.sightings[id];
    }
    Object.assign(st.sightings, sightings);
    if (run.error) st.lastError = { message: run.error, at: run.finishedAt };
    else st.lastSuccessAt = run.finishedAt;
    for (const [name, r] of Object.entries(run.sources ?? {})) {
      const s = this.sourceStatus(name);
      s.lastRunAt = run.finishedAt;
      s.pending = r.pending + r.failed;
      s.failing = r.error !== undefined;
      s.reachable = r.reachable;
      if (r.error) s.lastError = { message: r.error, at: run.finishedAt };
      else s.lastSuccessAt = run.finishedAt;
    }
    st.pending = st.sources
      ? Object.values(st.sources).reduce((n, s) => n + s.pending, 0)
      : run.pending + run.failed;
    st.runs = [run, ...st.runs].slice(0, MAX_RUNS);
    await this.state.write();
  }

  private sourceStatus(name: string): SourceStatus {
    this.state.data.sources ??= {};
    const sources = this.state.data.sources;
    sources[name] ??= { failing: false, pending: 0 };
    return sources[name];
  }

  async setSetting(key: string, value: unknown): Promise<void> {
    this.state.data.settings[key] = value;
    await this.state.write();
  }

  get loadedEverything(): boolean {
    return this.allLoaded;
  }
}

function emptyState(): StateDoc {
  return {
    version: 1,
    totals: { clips: 0, bytes: 0 },
    pending: 0,
    sightings: {},
    runs: [],
    settings: {},
  };
}

function byId(a: ClipRecord, b: ClipRecord): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}
