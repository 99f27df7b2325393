import { spawnSync } from "node:child_process";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { SharedLock } from "../../src/backup/lock.js";
import { planSync } from "../../src/backup/plan.js";
import { scanSource } from "../../src/backup/scan.js";
import { parseClipId } from "../../src/clips/clipId.js";
import { SourceSet } from "../../src/clips/sources.js";
import { DurableJsonFile } from "../../src/manifest/durableFile.js";
import { createLocalSource } from "../../src/storage/source/local.js";
import { EventBus } from "../../src/util/events.js";
import { tempDir } from "../harness/files.js";

const EXT = [".mp4"];
const several = new SourceSet([
  { name: "home", prefix: "" },
  { name: "garage", prefix: "garage" },
  { name: "porch", prefix: "porch" },
]);

describe("clip ids of several sources", () => {
  it("prefixes ids with the source's name, except the unprefixed source's", () => {
    const garage = several.get("garage");
    const home = several.get("home");
    if (!garage || !home) throw new Error("sources");
    expect(several.idOf(garage, "Camera1/2024-05-01/12-00-00.mp4")).toBe(
      "garage/Camera1/2024-05-01/12-00-00.mp4",
    );
    expect(several.idOf(home, "Camera1/2024-05-01/12-00-00.mp4")).toBe(
      "Camera1/2024-05-01/12-00-00.mp4",
    );
    expect(parseClipId("garage/Camera1/2024-05-01/12-00-00.mp4", EXT).camera).toBe(
      "garage/Camera1",
    );
  });

  it("finds a clip's source and camera from its id; shows cameras as <name>/<camera>", () => {
    expect(several.locate("garage/Camera1/2024-05-01/a.mp4")).toEqual({
      source: { name: "garage", prefix: "garage" },
      path: "Camera1/2024-05-01/a.mp4",
      camera: "Camera1",
    });
    expect(several.locate("porch/2024-05-01/a.mp4")?.camera).toBe("default");
    expect(several.locate("Camera1/2024-05-01/a.mp4")?.source.name).toBe("home");
    expect(several.cameraOf("garage/Camera1/2024-05-01/a.mp4", "x")).toBe("garage/Camera1");
    expect(several.cameraOf("Camera1/2024-05-01/a.mp4", "Camera1")).toBe("home/Camera1");
    // One unprefixed source (a single `source:`): cameras as before.
    const one = new SourceSet([{ name: "default", prefix: "" }]);
    expect(one.cameraOf("Camera1/2024-05-01/a.mp4", "Camera1")).toBe("Camera1");
    expect(
      new SourceSet([{ name: "garage", prefix: "garage" }]).locate("Camera1/2024-05-01/a.mp4"),
    ).toBe(undefined);
  });

  it("reads --camera as SOURCE/CAMERA, a whole SOURCE, or a camera on every source", () => {
    expect(several.selectCamera("garage/Camera1")).toEqual({
      source: { name: "garage", prefix: "garage" },
      camera: "Camera1",
    });
    expect(several.selectCamera("porch")).toEqual({ source: { name: "porch", prefix: "porch" } });
    expect(several.selectCamera("Camera1")).toEqual({ camera: "Camera1" });
    expect(several.selectCamera("nope/Camera1")).toBeUndefined();
    const pick = several.selectCamera("garage/Camera1");
    if (!pick) throw new Error("selection");
    expect(several.matches(pick, "garage/Camera1/2024-05-01/a.mp4", "garage/Camera1")).toBe(true);
    expect(several.matches(pick, "Camera1/2024-05-01/a.mp4", "Camera1")).toBe(false);
  });
});

describe("scan and plan, per source", () => {
  it("lists a source's clips under its prefix; the unprefixed one leaves other prefixes alone", async () => {
    const root = await tempDir();
    const file = async (rel: string) => {
      await mkdir(join(root, rel, ".."), { recursive: true });
      await writeFile(join(root, rel), "x");
    };
    await file("Camera1/2024-05-01/12-00-00.mp4");
    await file("Camera1/2024-05-01/12-00-00.mp4.thumb");
    await file("garage/2024-05-01/09-00-00.mp4"); // a folder named like another source's prefix
    const source = createLocalSource(root);
    const home = several.get("home");
    const porch = several.get("porch");
    if (!home || !porch) throw new Error("sources");
    const asHome = await scanSource(source, home, several, { extensions: EXT });
    expect(asHome.map((c) => [c.id, c.path, c.camera, c.source])).toEqual([
      [
        "Camera1/2024-05-01/12-00-00.mp4",
        "Camera1/2024-05-01/12-00-00.mp4",
        "home/Camera1",
        "home",
      ],
    ]);
    const asPorch = await scanSource(source, porch, several, { extensions: EXT });
    expect(asPorch.map((c) => c.id).sort()).toEqual([
      "porch/Camera1/2024-05-01/12-00-00.mp4",
      "porch/garage/2024-05-01/09-00-00.mp4",
    ]);

    // The planner sees vault ids: a clip of one source is not taken for another's.
    const now = Date.now();
    const plan = planSync({
      listing: asPorch.map((c) => ({ ...c, mtimeMs: now - 60_000 })),
      backedUp: new Map([["Camera1/2024-05-01/12-00-00.mp4", 1]]),
      sightings: {},
      nowMs: now,
      stableMs: 0,
    });
    expect(plan.toUpload).toHaveLength(2);
    expect(plan.alreadyBackedUp).toBe(0);
  });
});

describe("robustness", () => {
  it("one process's runs share the state dir's lock; taking it re-reads first, once", async () => {
    const dir = await tempDir();
    const taken: Array<number | undefined> = [];
    let reading = false;
    const lock = new SharedLock(dir, async (stale) => {
      reading = true;
      await new Promise((r) => setTimeout(r, 30));
      reading = false;
      taken.push(stale);
    });
    const [a, b] = await Promise.all([
      lock.acquire().then((held) => ({ held, reading })),
      lock.acquire().then((held) => ({ held, reading })),
    ]);
    // Neither holder went on while the manifest was being re-read, and it was read once.
    expect([a.reading, b.reading]).toEqual([false, false]);
    expect(taken).toEqual([undefined]);
    expect(await readFile(join(dir, "sync.lock"), "utf8")).toBe(`${process.pid}\n`);
    await a.held.release();
    expect(await readdir(dir)).toEqual(["sync.lock"]);
    await b.held.release();
    expect(await readdir(dir)).toEqual([]);
    // Taken again: read again. A lock file left by a dead process is taken over, and said so.
    const dead = spawnSync("true").pid;
    await writeFile(join(dir, "sync.lock"), `${dead}\n`);
    await (await lock.acquire()).release();
    expect(taken).toEqual([undefined, dead]);
  });

  it("a listener that throws is logged and never reaches the producer or the other listeners", () => {
    const lines: string[] = [];
    const bus = new EventBus(pino({}, { write: (l: string) => void lines.push(l) }));
    const seen: string[] = [];
    bus.on("syncFailed", () => {
      throw new Error("broken listener");
    });
    bus.on("syncFailed", async () => {
      throw new Error("broken async listener");
    });
    bus.on("syncFailed", (e) => seen.push(e.runId));
    expect(() =>
      bus.emit("syncFailed", { runId: "r1", error: "e", at: "t", sources: [] }),
    ).not.toThrow();
    expect(seen).toEqual(["r1"]);
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        expect(lines.join("")).toContain("broken listener");
        expect(lines.join("")).toContain("broken async listener");
        resolve();
      }),
    );
  });

  it("durable manifest files: every write lands, the newest data last, no temp file left", async () => {
    const dir = await tempDir();
    const path = join(dir, "state.json");
    const file = new DurableJsonFile<{ n: number }>(path);
    expect(await file.read()).toBeNull();
    const data = { n: 0 };
    const writes: Array<Promise<void>> = [];
    for (let i = 1; i <= 20; i++) {
      data.n = i;
      writes.push(file.write(data));
    }
    await Promise.all(writes);
    expect(JSON.parse(await readFile(path, "utf8"))).toEqual({ n: 20 });
    expect(await file.read()).toEqual({ n: 20 });
    expect(await readdir(dir)).toEqual(["state.json"]);
  });
});
