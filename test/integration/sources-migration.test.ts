import { chmod, cp, mkdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { ageCliDecrypt } from "../harness/age.js";
import { REPO, runCli } from "../harness/cli.js";
import { sha256, tempDir, walk } from "../harness/files.js";
import { pseudoRandomBytes } from "../harness/ftp.js";

/**
 * A vault made by release 0.1.0 with a single `source:` (test/fixtures/vault-v0.1, see its
 * README) moves to `sources:`: its device keeps unprefixed ids with `prefix: ""`, a second device
 * is added, and nothing already in the vault is uploaded again, as the user sees it through the
 * CLI, the files on the destination and Debian's `age`.
 */

const FIXTURE = join(REPO, "test/fixtures/vault-v0.1");
/** The camera files' mtime when release 0.1.0 backed them up (its manifest's mtimeMs). */
const FIXTURE_MTIME = new Date(1714730400000);
const OLD_IDS = [
  "Camera1/2024-05-01/12-00-00.mp4",
  "Camera1/2024-05-01/13-30-05.mp4",
  "Camera1/2024-05-02/08-15-00.mp4",
  "Camera2/2024-05-01/12-00-01.mp4",
];

interface FileIdentity {
  ino: number;
  mtimeMs: number;
  size: number;
}

describe("moving a 0.1.0 vault from source: to sources:", { timeout: 60_000 }, () => {
  let work: string;
  let vaultDir: string;
  let identityFile: string;
  let before: Map<string, FileIdentity>;
  const added = new Map<string, Buffer>(); // clip id -> plaintext

  /** Inode, mtime and size of every file on the destination: what "not written again" means. */
  async function destinationFiles(): Promise<Map<string, FileIdentity>> {
    const out = new Map<string, FileIdentity>();
    for (const rel of await walk(vaultDir)) {
      const s = await stat(join(vaultDir, rel));
      out.set(rel, { ino: s.ino, mtimeMs: s.mtimeMs, size: s.size });
    }
    return out;
  }

  function expectOldFilesUntouched(now: Map<string, FileIdentity>): void {
    for (const [rel, was] of before) expect(now.get(rel), rel).toEqual(was);
  }

  async function addClip(root: string, rel: string, id: string): Promise<void> {
    const file = join(work, root, rel);
    const bytes = pseudoRandomBytes(30_000 + added.size * 1013, id);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, bytes);
    const settled = new Date(Date.now() - 3600_000);
    await utimes(file, settled, settled);
    added.set(id, bytes);
  }

  /** The same vault, its device moved into `sources:` beside a new one (a file of its own). */
  const sourcesConfig = () => join(work, "config-sources.yml");
  const writeSourcesConfig = async () => {
    await writeFile(
      sourcesConfig(),
      stringify({
        sources: [
          { name: "garage", type: "local", path: "./camera", prefix: "", stableSeconds: 0 },
          { name: "porch", type: "local", path: "./porch", stableSeconds: 0 },
        ],
        destination: { type: "local", path: "./vault" },
        encryption: { identityFile: "./data/identity.txt" },
        state: { dir: "./data" },
      }),
    );
    return sourcesConfig();
  };

  beforeAll(async () => {
    work = await tempDir("mev-migrate-");
    await cp(FIXTURE, work, { recursive: true });
    vaultDir = join(work, "vault");
    identityFile = join(work, "data", "identity.txt");
    await chmod(identityFile, 0o600);
    // git does not keep mtimes: put the camera's files back as 0.1.0 saw them.
    for (const id of OLD_IDS) await utimes(join(work, "camera", id), FIXTURE_MTIME, FIXTURE_MTIME);
    before = await destinationFiles();
    expect([...before.keys()]).toEqual(OLD_IDS.map((id) => `${id}.age`));
  });

  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it("the 0.1.0 config still works and finds nothing to do", async () => {
    const run = await runCli(["sync", "--config", join(work, "config.yml")]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/\b0 clip\(s\)/);
    const now = await destinationFiles();
    expectOldFilesUntouched(now);
    expect(now.size).toBe(before.size);
  });

  it('with sources: and prefix: "", nothing is uploaded again; new clips of both devices are', async () => {
    // New since 0.1.0: a clip of the old device, and a second device whose Camera1 has a clip
    // with the same camera/date/name as an old one.
    await addClip("camera", "Camera1/2024-05-04/10-00-00.mp4", "Camera1/2024-05-04/10-00-00.mp4");
    await addClip(
      "porch",
      "Camera1/2024-05-01/12-00-00.mp4",
      "porch/Camera1/2024-05-01/12-00-00.mp4",
    );
    await addClip(
      "porch",
      "Camera1/2024-05-04/09-00-00.mp4",
      "porch/Camera1/2024-05-04/09-00-00.mp4",
    );
    const config = await writeSourcesConfig();

    const run = await runCli(["sync", "--config", config]);
    expect(run.code, run.stderr).toBe(0);
    const now = await destinationFiles();
    expectOldFilesUntouched(now);
    expect([...now.keys()].sort()).toEqual(
      [...OLD_IDS, ...added.keys()].map((id) => `${id}.age`).sort(),
    );
    for (const [id, bytes] of added) {
      const plain = await ageCliDecrypt(join(vaultDir, `${id}.age`), identityFile);
      expect(sha256(plain), id).toBe(sha256(bytes));
    }

    // And again: everything is in the vault, nothing moves.
    const again = await runCli(["sync", "--config", config]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/\b0 clip\(s\)/);
    const after = await destinationFiles();
    expect(after).toEqual(now);
  });

  it("list shows the old clips by their unprefixed ids and the new device's as porch/...", async () => {
    const config = sourcesConfig();
    const json = await runCli(["list", "--json", "--config", config]);
    expect(json.code, json.stderr).toBe(0);
    const ids = (JSON.parse(json.stdout) as { id: string }[]).map((c) => c.id).sort();
    expect(ids).toEqual([...OLD_IDS, ...added.keys()].sort());

    const text = await runCli(["list", "--config", config]);
    expect(text.code, text.stderr).toBe(0);
    for (const id of [...OLD_IDS, ...added.keys()]) expect(text.stdout).toContain(id);

    const porch = await runCli(["list", "--camera", "porch/Camera1", "--json", "--config", config]);
    expect(porch.code, porch.stderr).toBe(0);
    expect((JSON.parse(porch.stdout) as { id: string }[]).map((c) => c.id).sort()).toEqual([
      "porch/Camera1/2024-05-01/12-00-00.mp4",
      "porch/Camera1/2024-05-04/09-00-00.mp4",
    ]);
  });

  it("restore gives back the original bytes of an old clip and of a new device's clip", async () => {
    const out = join(work, "restored");
    const config = sourcesConfig();
    const oldId = "Camera1/2024-05-01/12-00-00.mp4";
    const newId = "porch/Camera1/2024-05-01/12-00-00.mp4";
    for (const id of [oldId, newId]) {
      const run = await runCli(["restore", id, "--out", out, "--config", config]);
      expect(run.code, `${id}: ${run.stderr}`).toBe(0);
    }
    const original = await readFile(join(FIXTURE, "camera", oldId));
    expect(sha256(await readFile(join(out, oldId)))).toBe(sha256(original));
    expect(sha256(await readFile(join(out, newId)))).toBe(
      sha256(added.get(newId) ?? Buffer.alloc(0)),
    );
    expect(await walk(out)).toEqual([oldId, newId].sort());
  });
});
