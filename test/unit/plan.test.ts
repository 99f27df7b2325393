import { describe, expect, it } from "vitest";
import { type PlanClip, planSync } from "../../src/backup/plan.js";

const NOW = Date.UTC(2024, 4, 1, 12, 0, 0);
type Clip = PlanClip & { camera: string; date: string; name: string };
const clip = (id: string, size: number, ageSeconds: number): Clip => ({
  id,
  camera: id.split("/")[0] ?? "default",
  date: "2024-05-01",
  name: id.split("/").pop() ?? id,
  size,
  mtimeMs: NOW - ageSeconds * 1000,
});

describe("planSync", () => {
  it("uploads settled clips that are not in the vault, oldest first", () => {
    const plan = planSync({
      listing: [
        clip("C/2024-05-01/b.mp4", 10, 60),
        clip("C/2024-05-01/a.mp4", 10, 120),
        clip("C/2024-05-01/done.mp4", 5, 500),
      ],
      backedUp: new Map([["C/2024-05-01/done.mp4", 5]]),
      sightings: {},
      nowMs: NOW,
      stableMs: 10_000,
    });
    expect(plan.toUpload.map((c) => c.id)).toEqual(["C/2024-05-01/a.mp4", "C/2024-05-01/b.mp4"]);
    expect(plan.alreadyBackedUp).toBe(1);
    expect(plan.pending).toEqual([]);
  });

  it("leaves a clip newer than stableSeconds for later, with the time it should settle", () => {
    const fresh = clip("C/2024-05-01/new.mp4", 10, 3);
    const plan = planSync({
      listing: [fresh],
      backedUp: new Map(),
      sightings: {},
      nowMs: NOW,
      stableMs: 10_000,
    });
    expect(plan.toUpload).toEqual([]);
    expect(plan.pending).toEqual([{ clip: fresh, settleAt: fresh.mtimeMs + 10_000 }]);
    expect(plan.sightings[fresh.id]).toEqual({
      size: 10,
      mtimeMs: fresh.mtimeMs,
      firstSeenMs: NOW,
    });
  });

  it("treats a clip whose size changed since the last run as still growing, whatever its mtime", () => {
    const c = clip("C/2024-05-01/grow.mp4", 20, 3600);
    const plan = planSync({
      listing: [c],
      backedUp: new Map(),
      sightings: { [c.id]: { size: 10, mtimeMs: c.mtimeMs, firstSeenMs: NOW - 60_000 } },
      nowMs: NOW,
      stableMs: 10_000,
    });
    expect(plan.toUpload).toEqual([]);
    expect(plan.pending).toHaveLength(1);
  });

  it("trusts an unchanged sighting when the camera's clock is ahead", () => {
    const c = { ...clip("C/2024-05-01/skew.mp4", 10, 0), mtimeMs: NOW + 3_600_000 };
    const first = planSync({
      listing: [c],
      backedUp: new Map(),
      sightings: {},
      nowMs: NOW,
      stableMs: 10_000,
    });
    expect(first.toUpload).toEqual([]);
    const later = planSync({
      listing: [c],
      backedUp: new Map(),
      sightings: first.sightings,
      nowMs: NOW + 11_000,
      stableMs: 10_000,
    });
    expect(later.toUpload.map((x) => x.id)).toEqual([c.id]);
  });

  it("re-uploads a clip whose size differs from the vault's copy, and puts priority clips first", () => {
    const a = clip("C/2024-05-01/a.mp4", 10, 600);
    const b = clip("C/2024-05-01/b.mp4", 12, 60);
    const plan = planSync({
      listing: [a, b],
      backedUp: new Map([[b.id, 11]]),
      sightings: {},
      nowMs: NOW,
      stableMs: 10_000,
      priority: [b.id],
    });
    expect(plan.toUpload.map((x) => x.id)).toEqual([b.id, a.id]);
  });
});

describe("planSync with a touched file", () => {
  it("judges a clip whose mtime changed but size did not by its mtime", () => {
    const c = clip("C/2024-05-01/touched.mp4", 10, 600);
    const plan = planSync({
      listing: [c],
      backedUp: new Map(),
      sightings: { [c.id]: { size: 10, mtimeMs: NOW - 1000, firstSeenMs: NOW - 5000 } },
      nowMs: NOW,
      stableMs: 10_000,
    });
    expect(plan.toUpload.map((x) => x.id)).toEqual([c.id]);
  });
});

describe("planSync with a clip named by motionEye's storage command", () => {
  it("uploads the named clip at once, even though it is newer than stableSeconds", () => {
    const named = clip("C/2024-05-01/just-closed.mp4", 10, 1);
    const other = clip("C/2024-05-01/fresh.mp4", 10, 1);
    const plan = planSync({
      listing: [named, other],
      backedUp: new Map(),
      sightings: {},
      nowMs: NOW,
      stableMs: 10_000,
      priority: [named.id],
      settled: [named.id],
    });
    expect(plan.toUpload.map((x) => x.id)).toEqual([named.id]);
    expect(plan.pending.map((p) => p.clip.id)).toEqual([other.id]);
  });
});
