import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type ClipRecord, Manifest } from "../../src/manifest/manifest.js";
import { tempDir } from "../harness/files.js";

const record = (name: string, over: Partial<ClipRecord> = {}): ClipRecord => ({
  id: `Camera1/2024-05-01/${name}`,
  camera: "Camera1",
  date: "2024-05-01",
  name,
  size: 100,
  mtimeMs: 1,
  sha256: "0".repeat(64),
  remotePath: `Camera1/2024-05-01/${name}.age`,
  remoteSize: 300,
  uploadedAt: "2024-05-01T12:00:00.000Z",
  format: "age",
  ...over,
});

describe("the manifest's count of incomplete clips", () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it("follows records marked incomplete, their replacement and removal; absent at zero", async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const m = await Manifest.open(dir);
    const state = async () => JSON.parse(await readFile(join(dir, "state.json"), "utf8")).totals;
    await m.record(record("a.mp4"));
    expect(await state()).toEqual({ clips: 1, bytes: 100 });
    await m.record(record("b.mp4", { incomplete: true }));
    expect(await state()).toEqual({ clips: 2, bytes: 200, incomplete: 1 });
    // backed up again, now complete: the mark goes
    await m.record(record("b.mp4", { size: 150 }));
    expect(await state()).toEqual({ clips: 2, bytes: 250 });
    await m.record(record("c.mp4", { incomplete: true }));
    await m.remove("Camera1/2024-05-01/c.mp4", "2024-05-01");
    expect(await state()).toEqual({ clips: 2, bytes: 250 });
  });

  it("is recounted from the records after a crash", async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const m = await Manifest.open(dir);
    await m.record(record("a.mp4", { incomplete: true }));
    await m.record(record("b.mp4"));
    (m.status.totals as { incomplete?: number }).incomplete = 7;
    await m.reconcileTotals();
    expect(m.status.totals).toEqual({ clips: 2, bytes: 200, incomplete: 1 });
  });
});
