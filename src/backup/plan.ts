import type { Sighting } from "../manifest/manifest.js";

/** What the planner looks at of a listed clip (scan.ts's SourceClip has more). */
export interface PlanClip {
  /** Its id in the vault. */
  id: string;
  size: number;
  /** 0 when the source does not say. */
  mtimeMs: number;
}

export interface PlanInput<C extends PlanClip> {
  listing: readonly C[];
  /** Size of each clip already in the vault, by id. */
  backedUp: ReadonlyMap<string, number>;
  /** What earlier runs saw of clips that were not yet settled. */
  sightings: Readonly<Record<string, Sighting>>;
  nowMs: number;
  stableMs: number;
  /** Ids to upload first (a clip named by the trigger). */
  priority?: readonly string[];
  /**
   * Ids known to be finished whatever their mtime: motionEye's storage command ("Run A Command")
   * names the movie only after closing it, so waiting `stableSeconds` would only add latency.
   * A clip that still changes fails the size check on upload and is retried.
   */
  settled?: readonly string[];
}

export interface PendingClip<C extends PlanClip = PlanClip> {
  clip: C;
  /** When it should have settled, ms since epoch. */
  settleAt: number;
}

export interface Plan<C extends PlanClip = PlanClip> {
  toUpload: C[];
  pending: Array<PendingClip<C>>;
  alreadyBackedUp: number;
  /** Sightings to keep for the pending clips. */
  sightings: Record<string, Sighting>;
}

/**
 * What a run must do for one source: a pure function of its listing and the manifest.
 *
 * A clip is settled when its mtime is at least `stableMs` old, or, when the camera's clock or
 * mtime cannot be trusted, when an earlier run saw it with the same size at least `stableMs` ago.
 * A clip whose size changed since it was last seen is still growing, whatever its mtime says.
 */
export function planSync<C extends PlanClip>(input: PlanInput<C>): Plan<C> {
  const { nowMs, stableMs } = input;
  const toUpload: C[] = [];
  const pending: Array<PendingClip<C>> = [];
  const sightings: Record<string, Sighting> = {};
  let alreadyBackedUp = 0;
  const namedSettled = new Set(input.settled ?? []);

  for (const clip of input.listing) {
    const doneSize = input.backedUp.get(clip.id);
    if (doneSize !== undefined && doneSize === clip.size) {
      alreadyBackedUp++;
      continue;
    }
    const seen = input.sightings[clip.id];
    const unchanged =
      seen !== undefined && seen.size === clip.size && seen.mtimeMs === clip.mtimeMs;
    const firstSeenMs = unchanged ? seen.firstSeenMs : nowMs;
    // Growth is a size change; a touched mtime alone (same size) is judged by the mtime rule.
    const grewSinceLastSeen = seen !== undefined && seen.size !== clip.size;
    const mtimeSettled =
      clip.mtimeMs > 0 && clip.mtimeMs <= nowMs && nowMs - clip.mtimeMs >= stableMs;
    const sightingSettled = unchanged && nowMs - firstSeenMs >= stableMs;

    if (namedSettled.has(clip.id) || (!grewSinceLastSeen && (mtimeSettled || sightingSettled))) {
      toUpload.push(clip);
    } else {
      const byMtime =
        clip.mtimeMs > 0 && clip.mtimeMs <= nowMs ? clip.mtimeMs + stableMs : Infinity;
      pending.push({ clip, settleAt: Math.min(byMtime, firstSeenMs + stableMs) });
    }
    // Every clip not yet in the vault keeps a sighting, so the next run can tell growth from rest.
    sightings[clip.id] = { size: clip.size, mtimeMs: clip.mtimeMs, firstSeenMs };
  }

  const priority = new Set(input.priority ?? []);
  toUpload.sort((a, b) => {
    const pa = priority.has(a.id) ? 0 : 1;
    const pb = priority.has(b.id) ? 0 : 1;
    return pa - pb || a.mtimeMs - b.mtimeMs || (a.id < b.id ? -1 : 1);
  });
  return { toUpload, pending, alreadyBackedUp, sightings };
}
