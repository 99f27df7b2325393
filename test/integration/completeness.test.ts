/**
 * "Nothing partial ever has a final name", through the real `sync` command on a local camera
 * folder and a local vault that the test watches (inotify): a movie motion is still writing is
 * not backed up until it is closed, and a clip that changes between its upload and the upload's
 * commit is discarded, never renamed into place, never recorded, and backed up by a later run.
 */
import { createHash } from "node:crypto";
import { existsSync, type FSWatcher, watch } from "node:fs";
import { appendFile, mkdir, readFile, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ageCliDecrypt } from "../harness/age.js";
import { REPO, runCli } from "../harness/cli.js";
import { tempDir, walk, writeConfig } from "../harness/files.js";
import { clipBytes } from "../harness/ftp.js";
import { GrowingMovie } from "../harness/mp4.js";

const DATE = "2024-05-06";

interface Lab {
  camera: string;
  vault: string;
  cfg: string;
  identityFile: string;
}

async function lab(over: Record<string, unknown> = {}): Promise<Lab> {
  const work = await tempDir("mev-complete-");
  const camera = join(work, "camera");
  const vault = join(work, "vault");
  const identityFile = join(work, "identity.txt");
  // the folders the vault writes into exist from the start, so the watch sees every name
  await mkdir(join(vault, "Camera1", DATE), { recursive: true });
  await mkdir(join(camera, "Camera1", DATE), { recursive: true });
  const cfg = await writeConfig(work, {
    // stableSeconds 0: no clip waits for stability; MP4s are still judged by their boxes
    source: { type: "local", path: camera, stableSeconds: 0 },
    destination: { type: "local", path: vault },
    encryption: { identityFile },
    state: { dir: join(work, "state") },
    sync: { retries: 0 },
    log: { level: "info" },
    ...over,
  });
  return { camera, vault, cfg, identityFile };
}

async function sync(l: Lab) {
  const run = await runCli(["sync", "--config", l.cfg, "--json"]);
  expect(run.code, run.stderr).toBe(0);
  return { ...(JSON.parse(run.stdout) as { uploaded: number; pending: number }), log: run.stderr };
}

async function listed(l: Lab): Promise<Array<{ id: string; size: number; sha256: string }>> {
  return JSON.parse((await runCli(["list", "--config", l.cfg, "--json"])).stdout);
}

/** Every name that appears in a vault date folder, in order (inotify, so none is missed). */
function watchNames(dir: string): { names: string[]; onName(cb: (name: string) => void): void } {
  const names: string[] = [];
  const listeners: Array<(name: string) => void> = [];
  const watcher = watch(dir, (_event, name) => {
    if (!name || names.at(-1) === name) return;
    names.push(name);
    for (const cb of listeners) cb(name);
  });
  watchers.push(watcher);
  return { names, onName: (cb) => listeners.push(cb) };
}
const watchers: FSWatcher[] = [];
afterEach(() => {
  for (const w of watchers.splice(0)) w.close();
});

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe("a movie motion is still writing (local camera folder)", () => {
  let movie: Buffer;
  beforeAll(async () => {
    movie = await readFile(join(REPO, "test/fixtures/motion/finished.mp4"));
  });

  it("is not backed up at its header or between bursts, and is backed up whole once closed", async () => {
    const l = await lab();
    const id = `Camera1/${DATE}/10-00-00.mp4`;
    const final = `${id.split("/").pop()}.age`;
    const seen = watchNames(join(l.vault, "Camera1", DATE));
    const growing = new GrowingMovie(join(l.camera, id), movie);

    await growing.start();
    expect(await sync(l)).toMatchObject({ uploaded: 0, pending: 1 });
    for (let i = 0; i < 3; i++) {
      await growing.burst(30_000);
      const old = new Date(Date.now() - 3600_000); // untouched between bursts
      await utimes(growing.path, old, old);
      const run = await sync(l);
      expect(run).toMatchObject({ uploaded: 0, pending: 1 });
    }
    expect(seen.names).toEqual([]);
    expect(await listed(l)).toEqual([]);

    await growing.close();
    expect(await sync(l)).toMatchObject({ uploaded: 1, pending: 0 });
    const plain = await ageCliDecrypt(`${join(l.vault, id)}.age`, l.identityFile);
    expect(plain.equals(movie)).toBe(true);
    // the one name that ever appeared besides the upload's temporary one is the final one
    expect(seen.names.filter((n) => !n.includes(".part-"))).toEqual([final]);
    expect((await listed(l)).map((c) => [c.id, c.sha256])).toEqual([[id, sha256(movie)]]);
  });
});

describe("a clip that changes while it is uploaded (local vault, watched)", () => {
  // 1 MiB/s: the upload of a 4 MB clip takes seconds, time enough to change the clip under it
  const slow = { sync: { retries: 0, bandwidthLimit: "1M" } };
  const SIZE = 4 * 1024 * 1024;

  for (const how of ["touched", "grown"] as const) {
    it(`is discarded when ${how} before the commit, never under its final name, and backed up later`, async () => {
      const l = await lab(slow);
      const id = `Camera1/${DATE}/11-00-00.mp4`;
      const source = join(l.camera, id);
      const original = clipBytes(SIZE, id);
      await writeFile(source, original);
      const dir = join(l.vault, "Camera1", DATE);
      const seen = watchNames(dir);
      let changed: Promise<void> | undefined;
      let extra = Buffer.alloc(0);
      seen.onName((name) => {
        if (changed || !name.includes(".part-")) return;
        // the upload has started: change the clip under it
        if (how === "touched") {
          const later = new Date(Date.now() + 5000);
          changed = utimes(source, later, later);
        } else {
          // a whole box, so the clip is again a finished movie for the next run
          extra = Buffer.alloc(4096);
          extra.writeUInt32BE(extra.length, 0);
          extra.write("free", 4, "latin1");
          changed = appendFile(source, extra);
        }
      });

      const run = await sync(l);
      expect(changed).toBeDefined();
      expect(run).toMatchObject({ uploaded: 0, pending: 1 });
      expect(run.log).toMatch(/clip changed while it was backed up; upload discarded/);
      expect(seen.names.some((n) => n.includes(".part-"))).toBe(true);
      expect(seen.names.filter((n) => !n.includes(".part-"))).toEqual([]);
      expect(await walk(l.vault)).toEqual([]);
      expect(await listed(l)).toEqual([]);

      const again = await sync(l);
      expect(again).toMatchObject({ uploaded: 1, pending: 0 });
      const now = Buffer.concat([original, extra]);
      const plain = await ageCliDecrypt(join(l.vault, `${id}.age`), l.identityFile);
      expect(plain.equals(now)).toBe(true);
      expect((await listed(l)).map((c) => [c.id, c.size])).toEqual([[id, now.length]]);
      expect(existsSync(join(dir, "11-00-00.mp4.age"))).toBe(true);
    });
  }
});
