import type { SourceRef } from "../clips/sources.js";
import type { StateDoc } from "../manifest/manifest.js";
import type { RunSummary } from "../util/events.js";

/**
 * The service's state as one document, built from the manifest's state: what `status --json`
 * prints and what `serve` keeps live (src/serve/state.ts) for Home Assistant, the bot and
 * `/metrics`. Totals for the vault, and a section per source.
 */

export interface SourceState {
  /** Where it is (`ftp://admin@192.168.1.21:21/sdcard`), never with a secret. */
  description: string | null;
  /** Its clip ids' prefix ("" for unprefixed ids). */
  prefix: string;
  lastRunAt: string | null;
  lastSuccessAt: string | null;
  lastError: { message: string; at: string } | null;
  /** Its last run could not list it or left clips not backed up. */
  failing: boolean;
  /** Its last run could list it (null until a run tried). */
  reachable: boolean | null;
  pending: number;
  lastClip: { id: string; camera: string; at: string } | null;
}

export interface StatusDocument {
  lastRun: RunSummary | null;
  lastSuccessAt: string | null;
  lastError: { message: string; at: string } | null;
  lastClip: { id: string; camera: string; at: string } | null;
  /** `incomplete`: clips backed up as they were after their recording was cut off. */
  totals: { clips: number; bytes: number; incomplete: number };
  pending: number;
  sources: Record<string, SourceState>;
}

export function statusDocument(
  st: Readonly<StateDoc>,
  sources: ReadonlyArray<SourceRef & { description?: string }>,
): StatusDocument {
  const single = sources.length === 1 ? sources[0] : undefined;
  const perSource: Record<string, SourceState> = {};
  for (const s of sources) {
    const known = st.sources?.[s.name];
    // A vault from before `sources:`: its one source's state is the vault's.
    const legacy = !known && single !== undefined;
    perSource[s.name] = {
      description: s.description ?? null,
      prefix: s.prefix,
      lastRunAt: known?.lastRunAt ?? (legacy ? (st.lastRun?.finishedAt ?? null) : null),
      lastSuccessAt: known?.lastSuccessAt ?? (legacy ? (st.lastSuccessAt ?? null) : null),
      lastError: known?.lastError ?? (legacy ? (st.lastError ?? null) : null),
      failing: known?.failing ?? (legacy ? st.lastRun?.error !== undefined : false),
      reachable: known?.reachable ?? null,
      pending: known?.pending ?? (legacy ? st.pending : 0),
      lastClip: known?.lastClip ?? (legacy ? (st.lastClip ?? null) : null),
    };
  }
  return {
    lastRun: st.lastRun ?? null,
    lastSuccessAt: st.lastSuccessAt ?? null,
    lastError: st.lastError ?? null,
    lastClip: st.lastClip ?? null,
    totals: {
      clips: st.totals.clips,
      bytes: st.totals.bytes,
      incomplete: st.totals.incomplete ?? 0,
    },
    // The configured sources' (a source renamed or removed since keeps no pending clips).
    pending: Object.values(perSource).reduce((n, s) => n + s.pending, 0),
    sources: perSource,
  };
}
