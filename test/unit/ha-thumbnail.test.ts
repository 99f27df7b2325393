import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SourceSet } from "../../src/clips/sources.js";
import { ThumbnailPublisher } from "../../src/extensions/homeassistant/thumbnail.js";
import { readThumb } from "../../src/extensions/thumbnail.js";
import { sourceView } from "../../src/serve/sourceView.js";
import { createLocalSource } from "../../src/storage/source/local.js";
import { silentLogger } from "../../src/util/log.js";
import { tempDir } from "../harness/files.js";

/**
 * The image entity's feed on a real folder: motionEye writes `<movie>.thumb` a few seconds after
 * the movie, often after the vault has backed the movie up, so a missing thumbnail is looked for
 * again; only the newest clip's thumbnail is shown; what is not a JPEG is never sent.
 */

const JPEG = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0xff, 0xd9]);
const LOOKS_MS = [0, 40, 80, 160, 320, 640, 1280];
const AFTER_LAST_LOOK_MS = 1500;
const A = "Camera1/2024-05-01/12-00-00.mp4";
const B = "Camera1/2024-05-01/12-05-00.mp4";

let root: string;
let sent: Array<{ topic: string; payload: Buffer }>;
let publisher: ThumbnailPublisher;
/** How many times the publisher looked for a thumbnail. */
let looks: number;

const until = async (ok: () => boolean, what: string) => {
  for (let i = 0; i < 1000 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!ok()) throw new Error(`never: ${what}`);
};

async function writeThumb(id: string, data: Buffer): Promise<void> {
  await mkdir(join(root, id, ".."), { recursive: true });
  await writeFile(join(root, `${id}.thumb`), data);
}

beforeEach(async () => {
  root = await tempDir();
  sent = [];
  looks = 0;
  const store = createLocalSource(root);
  const source = {
    ...store,
    stat: (path: string) => {
      looks++;
      return store.stat(path);
    },
  };
  const sources = new SourceSet([{ name: "default", prefix: "" }]);
  const ref = { name: "default", prefix: "" };
  const view = sourceView(
    { ref, source, stableSeconds: 0, incompleteAfterSeconds: 300, extensions: [".mp4"] },
    "local",
    sources,
  );
  publisher = new ThumbnailPublisher({
    read: (clipId) => readThumb({ sources, sourceViews: [view] }, clipId),
    topic: "vault/thumbnail",
    logger: silentLogger,
    publish: async (topic, payload) => {
      sent.push({ topic, payload });
      return true;
    },
    // the order matters, not the lengths (motionEye's are seconds); long enough for a busy machine
    attemptsMs: LOOKS_MS,
  });
});

afterEach(async () => {
  publisher.stop();
  await rm(root, { recursive: true, force: true });
});

describe("the last clip's thumbnail", () => {
  it("is published when it is there", async () => {
    await writeThumb(A, JPEG);
    publisher.clipBackedUp(A);
    await until(() => sent.length === 1, "published");
    expect(sent[0]).toEqual({ topic: "vault/thumbnail", payload: JPEG });
  });

  it("is looked for again when motionEye has not written it yet", async () => {
    publisher.clipBackedUp(A);
    await until(() => looks === 1, "the first look");
    await writeThumb(A, JPEG);
    await until(() => sent.length === 1, "published on a later look");
    expect(sent[0]?.payload.equals(JPEG)).toBe(true);
    expect(looks).toBeGreaterThanOrEqual(2);
  });

  it("shows only the newest clip's, even when an older one's turns up later", async () => {
    publisher.clipBackedUp(A); // no thumbnail yet
    await until(() => looks === 1, "A looked for");
    publisher.clipBackedUp(B); // nor for B
    await until(() => looks === 2, "B looked for");
    await writeThumb(A, JPEG); // both turn up while A's later looks are still due
    await writeThumb(B, Buffer.concat([JPEG, Buffer.from("B")]));
    await until(() => sent.length === 1, "B published");
    await new Promise((r) => setTimeout(r, AFTER_LAST_LOOK_MS));
    expect(sent.map((s) => s.payload.at(-1))).toEqual(["B".charCodeAt(0)]);
  });

  it("never sends what is not a JPEG, and nothing after stop", async () => {
    await writeThumb(A, Buffer.from("not an image"));
    publisher.clipBackedUp(A);
    await until(() => looks === LOOKS_MS.length, "every look");
    expect(sent).toEqual([]);
    publisher.stop();
    await writeThumb(B, JPEG);
    publisher.clipBackedUp(B);
    await new Promise((r) => setTimeout(r, 100));
    expect(sent).toEqual([]);
  });
});
