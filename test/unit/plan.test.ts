import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import {
  INCOMPLETE_RECHECK_MS,
  needsCheck,
  type PlanClip,
  type PlanInput,
  planSync,
} from "../../src/backup/plan.js";
import { type Completeness, checkCompleteness } from "../../src/clips/completeness.js";
import { loadConfig } from "../../src/config/load.js";
import type { Sighting } from "../../src/manifest/manifest.js";
import type { RangeReader } from "../../src/storage/types.js";
import { REPO } from "../harness/cli.js";

const NOW = Date.UTC(2024, 4, 1, 12, 0, 0);
const STABLE = 60_000;
const FIXTURES = join(REPO, "test/fixtures/motion");

type SourceClip = PlanClip & { camera: string; date: string };
const clip = (id: string, size: number, ageSeconds: number): SourceClip => ({
  id,
  camera: id.split("/")[0] ?? "default",
  date: "2024-05-01",
  name: id.split("/").pop() ?? id,
  size,
  mtimeMs: NOW - ageSeconds * 1000,
});

const plan = (over: Partial<PlanInput<SourceClip>> & Pick<PlanInput<SourceClip>, "listing">) =>
  planSync({ backedUp: new Map(), sightings: {}, nowMs: NOW, stableMs: STABLE, ...over });

/** The verdicts the engine gets for real motion movies (read from the committed fixtures). */
const verdict: Record<"headerOnly" | "midRecording" | "finished", Completeness> = {} as never;

beforeAll(async () => {
  const reader = (bytes: Buffer): RangeReader => ({
    readRange: async (_p, offset, length) => bytes.subarray(offset, offset + length),
  });
  const info = JSON.parse(await readFile(join(FIXTURES, "fixtures.json"), "utf8"));
  const header = await readFile(join(FIXTURES, "header-only.mp4"));
  const midHead = await readFile(join(FIXTURES, "mid-recording.head.mp4"));
  const finished = await readFile(join(FIXTURES, "finished.mp4"));
  verdict.headerOnly = (await checkCompleteness(reader(header), "a.mp4", header.length)).verdict;
  verdict.midRecording = (
    await checkCompleteness(reader(midHead), "a.mp4", info.files["mid-recording.mp4"].size)
  ).verdict;
  verdict.finished = (await checkCompleteness(reader(finished), "a.mp4", finished.length)).verdict;
  expect(verdict.headerOnly.state).toBe("incomplete");
  expect(verdict.midRecording.state).toBe("incomplete");
  expect(verdict.finished.state).toBe("complete");
});

describe("planSync: MP4/MOV are judged by their boxes", () => {
  it("backs up a finished movie at once, even on its first sighting with a fresh mtime", () => {
    const fresh = clip("C/2024-05-01/12-00-00.mp4", 99_982, 0);
    const p = plan({ listing: [fresh], verdicts: new Map([[fresh.id, verdict.finished]]) });
    expect(p.toUpload).toEqual([fresh]);
    expect(p.pending).toEqual([]);
  });

  it("never backs up a movie still recording: not for its age, a trigger, or stableSeconds 0", () => {
    const header = clip("C/2024-05-01/a.mp4", 48, 7); // motion's header, untouched for 7 s
    const mid = clip("C/2024-05-01/b.mp4", 262_192, 3600); // even an hour-old mtime
    const verdicts = new Map([
      [header.id, verdict.headerOnly],
      [mid.id, verdict.midRecording],
    ]);
    const seenLongAgo: Record<string, Sighting> = {
      [mid.id]: { size: mid.size, mtimeMs: mid.mtimeMs, firstSeenMs: NOW - 3600_000 },
    };
    for (const over of [
      {},
      { stableMs: 0 },
      { settled: [header.id, mid.id], priority: [header.id, mid.id] },
      { sightings: seenLongAgo },
    ]) {
      const p = plan({ listing: [header, mid], verdicts, ...over });
      expect(p.toUpload, JSON.stringify(over)).toEqual([]);
      expect(p.pending).toEqual([
        { clip: header, settleAt: NOW + INCOMPLETE_RECHECK_MS, reason: expect.any(String) },
        { clip: mid, settleAt: expect.any(Number), reason: expect.any(String) },
      ]);
      expect(p.pending[0]?.reason).toMatch(/mdat size not written/);
    }
  });

  it("keeps the sighting of a movie still recording, its first-seen time while it does not change", () => {
    const mid = clip("C/2024-05-01/b.mp4", 262_192, 20);
    const verdicts = new Map([[mid.id, verdict.midRecording]]);
    const first = plan({ listing: [mid], verdicts });
    expect(first.sightings[mid.id]).toEqual({
      size: mid.size,
      mtimeMs: mid.mtimeMs,
      firstSeenMs: NOW,
    });
    const later = plan({ listing: [mid], verdicts, sightings: first.sightings, nowMs: NOW + 5000 });
    expect(later.sightings[mid.id]?.firstSeenMs).toBe(NOW);
  });

  it("looks again less often at a movie that stays not complete (cut off), up to 10 minutes", () => {
    const cut = clip("C/2024-05-01/cut.mp4", 262_192, 7200);
    const verdicts = new Map([[cut.id, verdict.midRecording]]);
    const unchangedFor = (ms: number) =>
      plan({
        listing: [cut],
        verdicts,
        sightings: { [cut.id]: { size: cut.size, mtimeMs: cut.mtimeMs, firstSeenMs: NOW - ms } },
      }).pending[0]?.settleAt;
    expect(unchangedFor(3_000)).toBe(NOW + INCOMPLETE_RECHECK_MS);
    expect(unchangedFor(45_000)).toBe(NOW + 45_000);
    expect(unchangedFor(3600_000)).toBe(NOW + 10 * 60_000);
  });

  it("reads only clips not in the vault at their listed size", () => {
    const done = clip("C/2024-05-01/done.mp4", 500, 600);
    const grown = clip("C/2024-05-01/grown.mp4", 900, 600);
    const backedUp = new Map([
      [done.id, 500],
      [grown.id, 48],
    ]);
    expect(needsCheck(done, backedUp)).toBe(false);
    expect(needsCheck(grown, backedUp)).toBe(true);
    expect(needsCheck(clip("C/2024-05-01/new.mov", 9, 0), backedUp)).toBe(true);
    expect(needsCheck(clip("C/2024-05-01/new.avi", 9, 0), backedUp)).toBe(false);
  });

  it("backs up again a clip whose size changed after backup, and says so", () => {
    const grown = clip("C/2024-05-01/grown.mp4", 99_982, 600);
    const p = plan({
      listing: [grown],
      backedUp: new Map([[grown.id, 48]]),
      verdicts: new Map([[grown.id, verdict.finished]]),
    });
    expect(p.toUpload).toEqual([grown]);
    expect([...p.changedAfterBackup]).toEqual([[grown.id, 48]]);
    expect(p.alreadyBackedUp).toBe(0);
  });
});

describe("planSync: other clips by stability across listings", () => {
  const avi = clip("C/2024-05-01/12-00-00.avi", 1_000_000, 3600);

  it("never trusts an old mtime alone: the first sighting waits stableSeconds", () => {
    const p = plan({ listing: [avi] });
    expect(p.toUpload).toEqual([]);
    expect(p.pending).toEqual([
      { clip: avi, settleAt: NOW + STABLE, reason: expect.stringMatching(/unchanged for 60 s/) },
    ]);
    expect(p.sightings[avi.id]).toEqual({ size: avi.size, mtimeMs: avi.mtimeMs, firstSeenMs: NOW });
  });

  it("backs it up when a listing stableSeconds after the first sees the same size and mtime", () => {
    const first = plan({ listing: [avi] });
    const early = plan({ listing: [avi], sightings: first.sightings, nowMs: NOW + STABLE - 1 });
    expect(early.toUpload).toEqual([]);
    expect(early.pending[0]?.settleAt).toBe(NOW + STABLE);
    const later = plan({ listing: [avi], sightings: early.sightings, nowMs: NOW + STABLE });
    expect(later.toUpload).toEqual([avi]);
  });

  it("starts over when the size or the mtime changed", () => {
    const seen = { [avi.id]: { size: avi.size, mtimeMs: avi.mtimeMs, firstSeenMs: NOW - 600_000 } };
    for (const changed of [
      { ...avi, size: avi.size + 262_144 },
      { ...avi, mtimeMs: avi.mtimeMs + 1000 },
    ]) {
      const p = plan({ listing: [changed], sightings: seen });
      expect(p.toUpload).toEqual([]);
      expect(p.pending[0]?.settleAt).toBe(NOW + STABLE);
      expect(p.sightings[avi.id]?.firstSeenMs).toBe(NOW);
    }
  });

  it("backs up at once a clip motion named as finished, or any clip with stableSeconds 0", () => {
    expect(plan({ listing: [avi], settled: [avi.id] }).toUpload).toEqual([avi]);
    expect(plan({ listing: [avi], stableMs: 0 }).toUpload).toEqual([avi]);
    // an MP4 whose check failed or that is not ISO-BMFF falls to the same rule
    const odd = clip("C/2024-05-01/odd.mp4", 10, 3600);
    const unknown = new Map([[odd.id, { state: "unknown", reason: "its check failed" } as const]]);
    expect(plan({ listing: [odd], verdicts: unknown }).toUpload).toEqual([]);
    expect(plan({ listing: [odd], verdicts: unknown, stableMs: 0 }).toUpload).toEqual([odd]);
  });

  it("trusts an unchanged sighting when the camera's clock is ahead", () => {
    const skewed = { ...avi, mtimeMs: NOW + 3_600_000 };
    const first = plan({ listing: [skewed], stableMs: 10_000 });
    expect(first.toUpload).toEqual([]);
    const later = plan({
      listing: [skewed],
      sightings: first.sightings,
      nowMs: NOW + 11_000,
      stableMs: 10_000,
    });
    expect(later.toUpload).toEqual([skewed]);
  });

  it("outlasts the real gaps between motion's bursts with the default stableSeconds", async () => {
    // The long movie of test/fixtures/motion as motion wrote it (size and mtime over time),
    // listed every half second, as if it were an AVI (no boxes to check).
    const { timeline, endOfEvent } = JSON.parse(
      await readFile(join(FIXTURES, "fixtures.json"), "utf8"),
    ) as { timeline: Array<{ s: number; size: number; mtime: number }>; endOfEvent: string };
    const closedAt = Number.parseFloat(endOfEvent);
    const longestGap = Math.max(...timeline.slice(1).map((p, i) => p.s - (timeline[i]?.s ?? 0)));
    expect(longestGap).toBeGreaterThan(5); // motion does leave a recording movie untouched
    const stateAt = (s: number) => timeline.filter((p) => p.s <= s).pop() ?? timeline[0];
    const firstUploadWhileRecording = (stableSeconds: number) => {
      let sightings: Record<string, Sighting> = {};
      for (let s = 0; s < closedAt; s += 0.5) {
        const st = stateAt(s);
        if (!st) throw new Error("empty timeline");
        const listed = {
          ...clip("C/2024-05-01/m.avi", st.size, 0),
          mtimeMs: NOW + st.mtime * 1000,
        };
        const p = plan({
          listing: [listed],
          sightings,
          nowMs: NOW + s * 1000,
          stableMs: stableSeconds * 1000,
        });
        if (p.toUpload.length > 0) return s;
        sightings = p.sightings;
      }
      return undefined;
    };
    // a window shorter than a gap between bursts takes the movie for finished while recording
    expect(firstUploadWhileRecording(Math.floor(longestGap) - 1)).toBeDefined();
    const defaultStable = loadConfig({ env: {}, cwd: FIXTURES }).config.sources[0]?.stableSeconds;
    expect(defaultStable).toBeGreaterThanOrEqual(4 * longestGap);
    expect(firstUploadWhileRecording(defaultStable ?? 0)).toBeUndefined();
  });
});

describe("planSync order", () => {
  it("puts priority clips first, then the oldest", () => {
    const a = clip("C/2024-05-01/a.avi", 10, 600);
    const b = clip("C/2024-05-01/b.avi", 12, 60);
    const c = clip("C/2024-05-01/c.avi", 12, 6000);
    const p = plan({ listing: [a, b, c], stableMs: 0, priority: [b.id] });
    expect(p.toUpload.map((x) => x.id)).toEqual([b.id, c.id, a.id]);
  });
});
