import { type Completeness, isCheckable } from "../clips/completeness.js";
import type { Sighting } from "../manifest/manifest.js";

/** What the planner looks at of a listed clip (scan.ts's SourceClip has more). */
export interface PlanClip {
  /** Its id in the vault. */
  id: string;
  /** Its file name (its extension says whether its completeness can be checked). */
  name: string;
  size: number;
  /** 0 when the source does not say. */
  mtimeMs: number;
}

export interface PlanInput<C extends PlanClip> {
  listing: readonly C[];
  /** Size of each clip already in the vault, by id. */
  backedUp: ReadonlyMap<string, number>;
  /** What earlier runs saw of clips that were not yet backed up. */
  sightings: Readonly<Record<string, Sighting>>;
  nowMs: number;
  /** How long a clip that cannot be checked must stay unchanged between two sightings. */
  stableMs: number;
  /** Ids to upload first (a clip named by the trigger). */
  priority?: readonly string[];
  /**
   * Ids motion said are finished: motionEye's storage command ("Run A Command") and web hook
   * name a movie only after closing it. That spares a clip that cannot be checked its wait;
   * an MP4/MOV is still judged by its own boxes.
   */
  settled?: readonly string[];
  /** What the file says, for every clip `needsCheck` picked (the engine reads them). */
  verdicts?: ReadonlyMap<string, Completeness>;
  /**
   * How long a movie that is not complete must stay unchanged (size and mtime, across two
   * sightings) before it is backed up as it is, marked incomplete: its recording was cut off
   * (motion killed, power lost) and it will never be closed. Default: never.
   */
  incompleteAfterMs?: number;
  /** Clips in the vault recorded incomplete: the mtime they had, by id (see isBackedUp). */
  backedUpIncomplete?: ReadonlyMap<string, number>;
}

export interface PendingClip<C extends PlanClip = PlanClip> {
  clip: C;
  /** When a run should look at it again, ms since epoch. */
  settleAt: number;
  /** Why it waits, for logs. */
  reason: string;
}

export interface Plan<C extends PlanClip = PlanClip> {
  toUpload: C[];
  pending: Array<PendingClip<C>>;
  alreadyBackedUp: number;
  /** Clips in `toUpload` whose backed-up copy has another size: the size of that copy. */
  changedAfterBackup: Map<string, number>;
  /** Ids in `toUpload` that go up as they are, never closed: recorded `incomplete`. */
  incomplete: Set<string>;
  /** Sightings to keep for the clips not backed up. */
  sightings: Record<string, Sighting>;
}

/** How soon a movie still recording is looked at again (its trigger usually comes first). */
export const INCOMPLETE_RECHECK_MS = 10_000;
/**
 * The longest wait before looking again at a movie that stays not complete: one unchanged for a
 * long time was likely cut off (motion killed, power lost) and would otherwise cost a whole run
 * every 10 s. The wait grows with how long it has been unchanged, up to this.
 */
export const INCOMPLETE_RECHECK_MAX_MS = 10 * 60_000;

/**
 * True for a clip whose file must be read before planning: not in the vault at this size, and
 * of a container the completeness check can judge. Clips already backed up cost nothing.
 */
export function needsCheck(
  clip: PlanClip,
  backedUp: ReadonlyMap<string, number>,
  backedUpIncomplete?: ReadonlyMap<string, number>,
): boolean {
  return !isBackedUp(clip, backedUp, backedUpIncomplete) && isCheckable(clip.name);
}

/**
 * The vault has this clip as it is now: same size; for a clip recorded incomplete, the same
 * mtime too (a camera that came back may write into it without changing its size for a while).
 */
export function isBackedUp(
  clip: PlanClip,
  backedUp: ReadonlyMap<string, number>,
  backedUpIncomplete?: ReadonlyMap<string, number>,
): boolean {
  if (backedUp.get(clip.id) !== clip.size) return false;
  const mtimeMs = backedUpIncomplete?.get(clip.id);
  return mtimeMs === undefined || mtimeMs === clip.mtimeMs;
}

/**
 * What a run must do for one source: a pure function of its listing, the manifest and what the
 * files said. A clip is backed up only when it is known complete:
 * - an MP4/MOV when its boxes show it finished (a trigger cannot overrule a file still recording);
 * - any other clip when motion named it as finished (a trigger), or when two listings at least
 *   `stableMs` apart saw it with the same size and mtime (never from its mtime's age alone:
 *   motion leaves a movie untouched for seconds between bursts).
 * One exception, so that the recording cut off by a thief is not lost: an MP4/MOV that is not
 * complete and was seen unchanged for `incompleteAfterMs` is backed up as it is, marked
 * incomplete. If it changes later it is planned again like any clip whose copy differs.
 */
export function planSync<C extends PlanClip>(input: PlanInput<C>): Plan<C> {
  const { nowMs, stableMs } = input;
  const toUpload: C[] = [];
  const pending: Array<PendingClip<C>> = [];
  const changedAfterBackup = new Map<string, number>();
  const incomplete = new Set<string>();
  const incompleteAfterMs = input.incompleteAfterMs ?? Number.POSITIVE_INFINITY;
  const sightings: Record<string, Sighting> = {};
  let alreadyBackedUp = 0;
  const namedSettled = new Set(input.settled ?? []);

  for (const clip of input.listing) {
    const doneSize = input.backedUp.get(clip.id);
    if (isBackedUp(clip, input.backedUp, input.backedUpIncomplete)) {
      alreadyBackedUp++;
      continue;
    }
    const seen = input.sightings[clip.id];
    const unchanged =
      seen !== undefined && seen.size === clip.size && seen.mtimeMs === clip.mtimeMs;
    const firstSeenMs = unchanged ? seen.firstSeenMs : nowMs;
    // Every clip not yet in the vault keeps a sighting, so the next run can tell growth from rest.
    sightings[clip.id] = { size: clip.size, mtimeMs: clip.mtimeMs, firstSeenMs };

    const verdict: Completeness = input.verdicts?.get(clip.id) ?? {
      state: "unknown",
      reason: isCheckable(clip.name) ? "not checked" : "not an MP4/MOV file",
    };
    let wait: { settleAt: number; reason: string } | undefined;
    if (verdict.state === "incomplete") {
      const unchangedFor = nowMs - firstSeenMs;
      if (unchanged && unchangedFor >= incompleteAfterMs) {
        incomplete.add(clip.id);
      } else {
        const recheckIn = Math.min(
          INCOMPLETE_RECHECK_MAX_MS,
          Math.max(INCOMPLETE_RECHECK_MS, unchangedFor),
        );
        wait = {
          settleAt: Math.min(nowMs + recheckIn, firstSeenMs + incompleteAfterMs),
          reason: verdict.reason,
        };
      }
    } else if (
      verdict.state === "unknown" &&
      !namedSettled.has(clip.id) &&
      stableMs > 0 &&
      nowMs - firstSeenMs < stableMs
    ) {
      wait = {
        settleAt: firstSeenMs + stableMs,
        reason: `${verdict.reason}: waiting until it is unchanged for ${stableMs / 1000} s`,
      };
    }
    if (wait) {
      pending.push({ clip, ...wait });
      continue;
    }
    toUpload.push(clip);
    if (doneSize !== undefined) changedAfterBackup.set(clip.id, doneSize);
  }

  const priority = new Set(input.priority ?? []);
  toUpload.sort((a, b) => {
    const pa = priority.has(a.id) ? 0 : 1;
    const pb = priority.has(b.id) ? 0 : 1;
    return pa - pb || a.mtimeMs - b.mtimeMs || (a.id < b.id ? -1 : 1);
  });
  return { toUpload, pending, alreadyBackedUp, changedAfterBackup, incomplete, sightings };
}
