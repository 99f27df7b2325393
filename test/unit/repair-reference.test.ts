import { describe, expect, it } from "vitest";
import type { ClipRecord } from "../../src/manifest/manifest.js";
import { findReference } from "../../src/restore/repairRestored.js";

const clip = (id: string, over: Partial<ClipRecord> = {}): ClipRecord => {
  const [camera = "", date = "", name = ""] = id.split("/");
  return {
    id,
    camera,
    date,
    name,
    size: 1000,
    mtimeMs: Date.parse(`${date}T${name.slice(0, 8).replaceAll("-", ":")}Z`),
    remotePath: `${id}.age`,
    remoteSize: 1200,
    uploadedAt: "2024-05-01T00:00:00Z",
    format: "age",
    ...over,
  };
};

describe("the reference movie of a repair", () => {
  const cut = clip("Camera1/2024-05-01/12-00-00.mp4", { incomplete: true });

  it("is the complete movie of the same camera nearest in time", () => {
    const clips = [
      cut,
      clip("Camera1/2024-04-30/12-00-00.mp4"),
      clip("Camera1/2024-05-01/11-00-00.mp4"),
      clip("Camera1/2024-05-01/12-10-00.mp4", { incomplete: true }),
      clip("Camera2/2024-05-01/12-00-01.mp4"),
      clip("Camera1/2024-05-01/12-00-02.avi"),
    ];
    expect(findReference(clips, cut)?.id).toBe("Camera1/2024-05-01/11-00-00.mp4");
  });

  it("is never another source's camera of the same name, nor an incomplete movie", () => {
    const clips = [
      cut,
      clip("Camera1/2024-05-01/12-00-05.mp4", { source: "porch" }),
      clip("Camera1/2024-05-01/12-00-06.mp4", { incomplete: true }),
    ];
    expect(findReference(clips, cut)).toBeUndefined();
  });
});
