import type { ServiceStateDoc } from "../../serve/state.js";
import type { BandwidthState } from "../../util/bandwidth.js";
import { clipTime } from "../../util/format.js";
import type { HaTopics } from "./discovery.js";

/**
 * The state documents Home Assistant's entities read, as pure functions (the discovery configs
 * in discovery.ts point at their keys). Timestamps carry a zone; texts are cut to what Home
 * Assistant keeps.
 */

/** Home Assistant keeps at most 255 characters of an entity's state. */
export const MAX_STATE_LENGTH = 255;

export const EVENT_TYPES = ["clip_backed_up", "clip_incomplete", "sync_failed"] as const;
export type VaultEventType = (typeof EVENT_TYPES)[number];

/** ISO 8601 in UTC with `Z` (Home Assistant rejects timestamps without a zone), or null. */
export function isoTimestamp(value: string | number | Date | undefined | null): string | null {
  if (value === undefined || value === null || value === "") return null;
  const d = value instanceof Date ? value : new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** Text cut to what Home Assistant keeps as a state. */
export function stateText(s: string): string {
  return s.length > MAX_STATE_LENGTH ? `${s.slice(0, MAX_STATE_LENGTH - 3)}...` : s;
}

const onOff = (v: boolean | undefined): "ON" | "OFF" | null =>
  v === undefined ? null : v ? "ON" : "OFF";

export interface LastClip {
  id: string;
  camera: string;
  /** When it was backed up. */
  at: string;
}

/** Attributes of a "last clip" sensor: the camera, when it was backed up, when it was recorded. */
function clipAttributes(clip: LastClip | undefined): Record<string, unknown> {
  if (!clip) return {};
  const parts = clip.id.split("/");
  const name = parts[parts.length - 1] ?? clip.id;
  const date = parts[parts.length - 2];
  return {
    id: clip.id,
    camera: clip.camera,
    time: isoTimestamp(clip.at),
    // motionEye names clips after the camera's local time; it carries no zone, so it stays text.
    ...(date ? { recorded: `${date} ${clipTime(name)}` } : {}),
  };
}

export interface VaultStateInput {
  lastSuccessAt?: string;
  lastClip?: LastClip;
  clips: number;
  bytes: number;
  pending: number;
  lastError?: { message: string; at: string };
  nextSync?: Date;
  syncing: boolean;
  /** undefined until known. */
  cameraConnected?: boolean;
  destinationConnected?: boolean;
  backupsEnabled: boolean;
  /** The staleness alarm of any source (undefined while none has one). */
  stale?: boolean;
  /** The age recipient (`age1...`) of the vault's identity, once known. */
  ageRecipient?: string;
  /** The upload cap in force (sync.bandwidthLimit). */
  uploadCap?: BandwidthState | null;
}

/**
 * Home Assistant's keys of the `<base>/state` document (snake_case; every vault entity reads one
 * of them), after `core`: the service state `serve` publishes there without Home Assistant, so the
 * document keeps those keys either way.
 */
export function vaultState(
  s: VaultStateInput,
  core: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    ...core,
    last_success: isoTimestamp(s.lastSuccessAt),
    last_clip: s.lastClip ? stateText(s.lastClip.id) : null,
    last_clip_attributes: clipAttributes(s.lastClip),
    clips: s.clips,
    bytes: s.bytes,
    pending: s.pending,
    last_error: s.lastError ? stateText(s.lastError.message) : null,
    last_error_attributes: s.lastError
      ? { message: s.lastError.message.slice(0, 2000), time: isoTimestamp(s.lastError.at) }
      : {},
    next_sync: isoTimestamp(s.nextSync),
    syncing: onOff(s.syncing),
    camera_connection: onOff(s.cameraConnected),
    destination_connection: onOff(s.destinationConnected),
    backups_enabled: onOff(s.backupsEnabled),
    backups_stale: onOff(s.stale),
    age_recipient: s.ageRecipient ?? null,
    upload_cap: s.uploadCap ? s.uploadCap.text : null,
    upload_cap_attributes: s.uploadCap
      ? {
          bytes_per_second: s.uploadCap.bytesPerSecond,
          set_by: s.uploadCap.from,
          configured: s.uploadCap.configured,
          next_change: s.uploadCap.nextChange,
        }
      : {},
    // The number entity's value: KiB/s, 0 when there is no cap.
    upload_cap_kib: s.uploadCap ? Math.round((s.uploadCap.bytesPerSecond ?? 0) / 1024) : null,
  };
}

/** The JSON document on `<base>/camera/<slug>/state`. */
export function cameraState(s: {
  lastClip?: LastClip;
  clipsToday: number;
}): Record<string, unknown> {
  return {
    last_clip: s.lastClip ? stateText(s.lastClip.id) : null,
    last_clip_attributes: clipAttributes(s.lastClip),
    clips_today: s.clipsToday,
  };
}

/** A message for the event entity. */
export function vaultEvent(
  type: VaultEventType,
  data: Record<string, unknown> & { at: string },
): Record<string, unknown> {
  return { event_type: type, ...data, at: isoTimestamp(data.at) };
}

/** The JSON document on `<base>/source/<slug>/state`: one camera device. */
export function sourceState(s: {
  reachable: boolean | null;
  failing: boolean;
  syncing: boolean;
  pending: number;
  lastClip?: LastClip;
  lastError?: { message: string; at: string };
  stale?: boolean | null;
}): Record<string, unknown> {
  return {
    reachable: onOff(s.reachable ?? undefined),
    failing: onOff(s.failing),
    stale: onOff(s.stale ?? undefined),
    syncing: onOff(s.syncing),
    pending: s.pending,
    last_clip: s.lastClip ? stateText(s.lastClip.id) : null,
    last_clip_attributes: clipAttributes(s.lastClip),
    last_error: s.lastError ? stateText(s.lastError.message) : null,
    last_error_attributes: s.lastError
      ? { message: s.lastError.message.slice(0, 2000), time: isoTimestamp(s.lastError.at) }
      : {},
  };
}

/**
 * Every retained state document from the service's state: the vault's (on `<base>/state`, with
 * the service state's own keys), each camera's, and each source's when there are several.
 */
export function stateDocuments(
  core: ServiceStateDoc,
  opts: {
    topics: HaTopics;
    cameras: ReadonlyArray<[string, { lastClip?: LastClip; today: ReadonlySet<string> }]>;
    perSource: boolean;
    ageRecipient?: string;
  },
): Array<{ topic: string; doc: Record<string, unknown> }> {
  const { topics } = opts;
  const vault = vaultState(
    {
      lastSuccessAt: core.lastSuccessAt ?? undefined,
      lastClip: core.lastClip ?? undefined,
      clips: core.totals.clips,
      bytes: core.totals.bytes,
      pending: core.pending,
      lastError: core.lastError ?? undefined,
      nextSync: core.nextSync ? new Date(core.nextSync) : undefined,
      syncing: core.running,
      cameraConnected: everySourceReachable(core),
      destinationConnected: core.vaultReachable ?? undefined,
      backupsEnabled: !core.paused,
      stale: anySourceStale(core),
      ageRecipient: opts.ageRecipient,
      uploadCap: core.bandwidthLimit,
    },
    // serve's own state document, which this one replaces on <base>/state.
    core as unknown as Record<string, unknown>,
  );
  const docs = [{ topic: topics.state, doc: vault }];
  for (const [camera, info] of opts.cameras) {
    docs.push({
      topic: topics.camera(camera),
      doc: cameraState({ lastClip: info.lastClip, clipsToday: info.today.size }),
    });
  }
  if (!opts.perSource) return docs;
  for (const [name, s] of Object.entries(core.sources)) {
    docs.push({
      topic: topics.source(name),
      doc: sourceState({
        reachable: s.reachable,
        failing: s.failing,
        syncing: s.syncing,
        pending: s.pending,
        lastClip: s.lastClip ?? undefined,
        lastError: s.lastError ?? undefined,
        stale: s.stale,
      }),
    });
  }
  return docs;
}

/** The vault's "camera connection": every source answered (unknown while one is not known). */
function everySourceReachable(core: ServiceStateDoc): boolean | undefined {
  const states = Object.values(core.sources).map((s) => s.reachable);
  if (states.some((r) => r === false)) return false;
  return states.every((r) => r === true) ? true : undefined;
}

/** The vault's "no new clips": any source's staleness alarm (unknown while none is judged). */
function anySourceStale(core: ServiceStateDoc): boolean | undefined {
  const states = Object.values(core.sources).flatMap((s) => (s.stale === null ? [] : [s.stale]));
  return states.length ? states.some(Boolean) : undefined;
}
