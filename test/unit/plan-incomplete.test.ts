/**
 * The planner's rule for movies never closed (issue 17): backed up as they are, marked
 * incomplete, once unchanged for `incompleteAfterMs` across sightings; planned again when they
 * change. Verdicts come from real motion output: the movie motion left when killed
 * (test/fixtures/motion-killed) and a finished one (test/fixtures/motion).
 */
import { writeFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { needsCheck, type PlanClip, type PlanInput, planSync } from "../../src/backup/plan.js";
import { type Completeness, checkCompleteness } from "../../src/clips/completeness.js";
import { loadConfig } from "../../src/config/load.js";
import type { RangeReader } from "../../src/storage/types.js";
import { REPO } from "../harness/cli.js";

const NOW = Date.UTC(2024, 4, 1, 12, 0, 0);
const AFTER = 300_000;
const ID = "Camera1/2024-05-01/12-00-00.mp4";
const cut: Record<"killed" | "finished", Completeness> = {} as never;
let killedSize = 0;

beforeAll(async () => {
  const verdictOf = async (file: string) => {
    const bytes = await readFile(join(REPO, "test/fixtures", file));
    const reader: RangeReader = { readRange: async (_p, o, n) => bytes.subarray(o, o + n) };
    return { bytes, verdict: (await checkCompleteness(reader, "a.mp4", bytes.length)).verdict };
  };
  const killed = await verdictOf("motion-killed/killed.mp4");
  killedSize = killed.bytes.length;
  cut.killed = killed.verdict;
  cut.finished = (await verdictOf("motion/finished.mp4")).verdict;
  expect(cut.killed.state).toBe("incomplete");
  expect(cut.finished.state).toBe("complete");
});

const movie = (over: Partial<PlanClip> = {}): PlanClip => ({
  id: ID,
  name: "12-00-00.mp4",
  size: killedSize,
  mtimeMs: NOW - 3600_000,
  ...over,
});
const plan = (clip: PlanClip, over: Partial<PlanInput<PlanClip>> = {}) =>
  planSync({
    listing: [clip],
    backedUp: new Map(),
    sightings: {},
    nowMs: NOW,
    stableMs: 60_000,
    incompleteAfterMs: AFTER,
    verdicts: new Map([[clip.id, clip.size === killedSize ? cut.killed : cut.finished]]),
    ...over,
  });
const seen = (clip: PlanClip, agoMs: number) => ({
  [clip.id]: { size: clip.size, mtimeMs: clip.mtimeMs, firstSeenMs: NOW - agoMs },
});

describe("planSync: a movie never closed", () => {
  it("waits on its first sighting, however old its mtime, and is looked at again when due", () => {
    const m = movie();
    const p = plan(m, { incompleteAfterMs: 3000 });
    expect(p.toUpload).toEqual([]);
    expect(p.pending[0]).toMatchObject({ clip: m, settleAt: NOW + 3000 });
    expect(p.sightings[ID]).toEqual({ size: m.size, mtimeMs: m.mtimeMs, firstSeenMs: NOW });
  });

  it("unchanged (size and mtime) for incompleteAfterMs: backed up as it is, marked incomplete", () => {
    const m = movie();
    const p = plan(m, { sightings: seen(m, AFTER) });
    expect(p.toUpload).toEqual([m]);
    expect([...p.incomplete]).toEqual([ID]);
  });

  it("unchanged for less: waits until the rest of incompleteAfterMs has passed", () => {
    const m = movie();
    const p = plan(m, { sightings: seen(m, AFTER - 1000) });
    expect(p.toUpload).toEqual([]);
    expect(p.pending[0]?.settleAt).toBe(NOW + 1000);
  });

  it("changed since the last sighting (size or mtime): the wait starts again", () => {
    const m = movie();
    for (const before of [
      { ...m, size: m.size - 262_144 },
      { ...m, mtimeMs: m.mtimeMs - 1000 },
    ]) {
      const p = plan(m, { sightings: seen(before, 10 * AFTER) });
      expect(p.toUpload).toEqual([]);
      expect(p.sightings[ID]?.firstSeenMs).toBe(NOW);
    }
  });

  it("never, without incompleteAfterMs", () => {
    const m = movie();
    const p = plan(m, { sightings: seen(m, 100 * AFTER), incompleteAfterMs: undefined });
    expect(p.toUpload).toEqual([]);
    expect(p.incomplete.size).toBe(0);
  });

  it("a complete movie is never marked incomplete", () => {
    const m = movie({ size: 99_982 });
    const p = plan(m, { sightings: seen(m, AFTER) });
    expect(p.toUpload).toEqual([m]);
    expect(p.incomplete.size).toBe(0);
  });
});

describe("planSync: a movie backed up incomplete", () => {
  const backed = (m: PlanClip) => ({
    backedUp: new Map([[m.id, m.size]]),
    backedUpIncomplete: new Map([[m.id, m.mtimeMs]]),
  });

  it("is done while it stays as it was backed up", () => {
    const m = movie();
    const p = plan(m, backed(m));
    expect(p.alreadyBackedUp).toBe(1);
    expect(needsCheck(m, backed(m).backedUp, backed(m).backedUpIncomplete)).toBe(false);
  });

  it("written to again (a new mtime, even at the same size): checked and backed up again", () => {
    const m = movie();
    const touched = { ...m, mtimeMs: m.mtimeMs + 5000 };
    const { backedUp, backedUpIncomplete } = backed(m);
    expect(needsCheck(touched, backedUp, backedUpIncomplete)).toBe(true);
    expect(plan(touched, backed(m)).pending).toHaveLength(1);
    const later = plan(touched, { ...backed(m), sightings: seen(touched, AFTER) });
    expect(later.toUpload).toEqual([touched]);
    expect([...later.incomplete]).toEqual([ID]);
    expect(later.changedAfterBackup.get(ID)).toBe(m.size);
  });

  it("closed after all (now complete): backed up at once, without the mark", () => {
    const m = movie();
    const closed = movie({ size: 99_982, mtimeMs: m.mtimeMs + 60_000 });
    const p = plan(closed, backed(m));
    expect(p.toUpload).toEqual([closed]);
    expect(p.incomplete.size).toBe(0);
  });
});

describe("source.incompleteAfterSeconds", () => {
  it("defaults to 300, is per source (YAML or environment), and must be a number", async () => {
    const dir = await mkdtemp(join(tmpdir(), "mev-incomplete-config-"));
    const load = (yaml: string, env: NodeJS.ProcessEnv = {}) => {
      writeFileSync(join(dir, "config.yml"), `${yaml}destination:\n  path: vault\n`);
      return loadConfig({ file: join(dir, "config.yml"), env }).config.sources;
    };
    expect(load("source:\n  path: media\n")[0]?.incompleteAfterSeconds).toBe(300);
    const env = { MOTIONEYE_VAULT_SOURCE_INCOMPLETE_AFTER_SECONDS: "3" };
    expect(load("source:\n  path: media\n", env)[0]?.incompleteAfterSeconds).toBe(3);
    const two = load(
      "sources:\n  - name: garage\n    path: a\n    incompleteAfterSeconds: 30\n  - name: porch\n    path: b\n",
    );
    expect(two.map((s) => s.incompleteAfterSeconds)).toEqual([30, 300]);
    expect(() => load("source:\n  path: media\n  incompleteAfterSeconds: soon\n")).toThrow(
      /incompleteAfterSeconds/,
    );
    await rm(dir, { recursive: true, force: true });
  });
});
