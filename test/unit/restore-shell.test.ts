import { describe, expect, it } from "vitest";
import { splitWords } from "../../src/cli/shell/args.js";
import { type ShellDeps, ShellSession } from "../../src/cli/shell/session.js";
import { ClipTree } from "../../src/cli/shell/tree.js";
import { fernetEncrypt, parseFernetKey } from "../../src/crypto/fernet/fernet.js";
import type { ClipRecord } from "../../src/manifest/manifest.js";
import { legacyPlainSize } from "../../src/restore/importLegacy.js";
import { parseSelection, SelectionError } from "../../src/restore/select.js";

const clip = (id: string): ClipRecord => {
  const parts = id.split("/");
  return {
    id,
    camera: parts.length === 3 ? (parts[0] as string) : "default",
    date: parts[parts.length - 2] as string,
    name: parts[parts.length - 1] as string,
    size: 1000,
    mtimeMs: 0,
    sha256: "0".repeat(64),
    remotePath: `${id}.age`,
    remoteSize: 1200,
    uploadedAt: "2024-05-01T00:00:00Z",
    format: "age",
  };
};

const clips = [
  "Camera1/2024-05-01/12-00-00.mp4",
  "Camera1/2024-05-01/12-30-00.mp4",
  "Camera1/2024-05-02/08-00-00.mp4",
  "Camera2/2024-05-01/12-00-00.mp4",
  "2024-05-03/09-00-00.mp4",
  "../../etc/passwd", // a hand-edited manifest: never shown
].map(clip);
const tree = new ClipTree(clips);
const paths = (cwd: string[], arg: string) => tree.expand(cwd, arg).map((p) => p.join("/"));

describe("restore shell: folders and globs", () => {
  it("shows clip ids as folders, skipping unsafe ids", () => {
    expect(tree.size).toBe(5);
    expect(tree.entries([])?.dirs.map((d) => [d.name, d.count])).toEqual([
      ["2024-05-03", 1],
      ["Camera1", 3],
      ["Camera2", 1],
    ]);
    expect(tree.isDir([".."])).toBe(false);
  });

  it("expands globs per segment, .. and absolute paths", () => {
    expect(paths(["Camera1"], "2024-05-0?/12-*")).toEqual([
      "Camera1/2024-05-01/12-00-00.mp4",
      "Camera1/2024-05-01/12-30-00.mp4",
    ]);
    expect(paths(["Camera1", "2024-05-01"], "../../Camera*/2024-05-01/12-00-00.mp4")).toEqual([
      "Camera1/2024-05-01/12-00-00.mp4",
      "Camera2/2024-05-01/12-00-00.mp4",
    ]);
    expect(paths(["Camera1"], "/2024-05-0[!12]")).toEqual(["2024-05-03"]);
    expect(paths([], "nothing*")).toEqual([]);
    expect(paths([], "../../../etc")).toEqual([]);
  });

  it("completes commands and vault paths", () => {
    const s = new ShellSession(
      { vault: undefined as unknown as ShellDeps["vault"], manifest: { all: async () => clips } },
      clips,
      {
        out: process.stdout,
        err: process.stderr,
        jobs: 1,
        progress: () => ({ hooks: {}, stop() {} }),
      },
      "/tmp",
    );
    expect(s.complete("mg")).toEqual([["mget "], "mg"]);
    expect(s.complete("cd Cam")).toEqual([["Camera1/", "Camera2/"], "Cam"]);
    expect(s.complete("get Camera1/2024-05-01/12-3")).toEqual([
      ["Camera1/2024-05-01/12-30-00.mp4"],
      "Camera1/2024-05-01/12-3",
    ]);
    expect(s.complete("cd Camera1/2024-05-01/")).toEqual([[], "Camera1/2024-05-01/"]);
  });

  it("splits words with quotes and escapes", () => {
    expect(splitWords(`lcd "my clips"  get a\\ b 'c d'`)).toEqual([
      "lcd",
      "my clips",
      "get",
      "a b",
      "c d",
    ]);
    expect(() => splitWords(`lcd "open`)).toThrow(/unclosed/);
  });
});

describe("restore targets", () => {
  it("parses all, a day, ranges and clip ids; refuses the rest", () => {
    expect(parseSelection("all")).toEqual({ kind: "all" });
    expect(parseSelection("2024-05-01")).toEqual({
      kind: "dates",
      from: "2024-05-01",
      to: "2024-05-01",
    });
    expect(parseSelection("2024-05-01..2024-05-31")).toEqual({
      kind: "dates",
      from: "2024-05-01",
      to: "2024-05-31",
    });
    expect(parseSelection("..2024-05-31")).toEqual({ kind: "dates", to: "2024-05-31" });
    expect(parseSelection("2024-05-01/12-00-00.mp4")).toEqual({
      kind: "clip",
      query: "2024-05-01/12-00-00.mp4",
    });
    for (const bad of [
      "2024-02-30",
      "2024-05-31..2024-05-01",
      "2024-05-01..tomorrow",
      "yesterday",
    ]) {
      expect(() => parseSelection(bad), bad).toThrow(SelectionError);
    }
  });
});

describe("legacy Fernet sizes", () => {
  it("the recorded size is never above the plaintext and at most 15 bytes below it", () => {
    const key = parseFernetKey("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=");
    for (let size = 0; size < 200; size++) {
      const token = fernetEncrypt(key, Buffer.alloc(size));
      for (const fileSize of [token.length, token.length + 1]) {
        const least = legacyPlainSize(fileSize);
        expect(least, `${size}`).toBeLessThanOrEqual(size);
        expect(size - least, `${size}`).toBeLessThanOrEqual(15);
      }
    }
  });
});
