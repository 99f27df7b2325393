import { execFileSync } from "node:child_process";
import { mkdir, open, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir, walk } from "../harness/files.js";
import {
  type Lab,
  Rng,
  readManifest,
  scenario,
  startLab,
  sync,
  verifyVault,
  writeClips,
} from "./support.js";

/**
 * A full or read-only disk under the state dir (manifest, lock) or under a local vault: real
 * filesystems, a 1 MiB tmpfs each, remounted read-only where asked. Needs root (mount); the
 * test runner runs as root for vsftpd anyway. A clip that cannot be written or recorded fails
 * with a clear error, is not recorded, and is backed up once there is room again.
 */

const mounts: string[] = [];

function mount(dir: string, opts: string): void {
  execFileSync("mount", ["-t", "tmpfs", "-o", opts, "tmpfs", dir]);
  mounts.push(dir);
}

function remount(dir: string, opts: string): void {
  execFileSync("mount", ["-o", `remount,${opts}`, dir]);
}

/** Can this process mount a tmpfs (root in a container with CAP_SYS_ADMIN, or a VM)? */
async function canMount(): Promise<boolean> {
  const dir = await tempDir("mev-mount-probe-");
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir], { stdio: "ignore" });
    execFileSync("umount", [dir]);
    return true;
  } catch {
    return false;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Fills the filesystem of `dir` up to the last byte. */
async function fill(dir: string): Promise<string> {
  const path = join(dir, "filler");
  const fh = await open(path, "w");
  const chunk = Buffer.alloc(16 * 1024);
  try {
    for (;;) await fh.write(chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
  } finally {
    await fh.close();
  }
  return path;
}

const mountable = await canMount();

describe.skipIf(!mountable)("faults: a full or read-only disk", { timeout: 120_000 }, () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await startLab();
  });

  afterAll(async () => {
    for (const dir of mounts.reverse()) {
      try {
        execFileSync("umount", ["-l", dir]);
      } catch {
        // already gone
      }
    }
    await lab?.close();
  });

  it("state dir full, then read-only: the run fails clearly, records nothing, and completes once writable", async () => {
    const stateDir = join(lab.work, "small-state");
    await mkdir(stateDir);
    mount(stateDir, "size=1m,mode=0700");
    const s = await scenario(lab, "state-full", { state: { dir: stateDir } });
    const first = await writeClips(lab.ftp, new Rng(600), "Disk1", "2024-05-01", 2);
    expect((await sync(s, ["--camera", "Disk1"])).code).toBe(0);
    const before = await readManifest(stateDir);
    const later = await writeClips(lab.ftp, new Rng(601), "Disk1", "2024-05-02", 2);

    const filler = await fill(stateDir);
    const full = await sync(s, ["--camera", "Disk1"]);
    expect(full.code).toBe(1);
    expect(full.stderr).toMatch(/error: .*ENOSPC: no space left on device/);
    expect(await readManifest(stateDir)).toEqual(before);
    await rm(filler);

    remount(stateDir, "ro");
    const readOnly = await sync(s, ["--camera", "Disk1"]);
    expect(readOnly.code).toBe(1);
    expect(readOnly.stderr).toMatch(/error: .*EROFS: read-only file system/);
    expect(await readManifest(stateDir)).toEqual(before);
    remount(stateDir, "rw");

    const next = await sync(s, ["--camera", "Disk1"]);
    expect(next.code, next.stderr).toBe(0);
    await verifyVault(s, lab, [...first, ...later]);
  });

  it("local vault full: the clips that do not fit fail clearly, leave no partial file, and are backed up once there is room", async () => {
    const vault = join(lab.work, "small-vault");
    await mkdir(vault);
    mount(vault, "size=1m,mode=0700");
    const s = await scenario(lab, "vault-full", { destination: { type: "local", path: vault } });
    // ~1.8 MB of clips for a 1 MiB disk: some fit, the rest cannot.
    const clips = await writeClips(
      lab.ftp,
      new Rng(602),
      "Disk2",
      "2024-05-01",
      6,
      [250_000, 350_000],
    );
    const full = await sync(s, ["--camera", "Disk2", "--json"]);
    expect(full.code).toBe(1);
    const summary = JSON.parse(full.stdout) as { uploaded: number; failed: number; error: string };
    expect(summary.failed).toBeGreaterThan(0);
    expect(summary.uploaded).toBeGreaterThan(0);
    expect(summary.error).toMatch(/ENOSPC: no space left on device/);
    const files = await walk(vault);
    expect(files.filter((f) => /\.part-/.test(f))).toEqual([]);
    const recorded = (await readManifest(s.stateDir)).clips.map((c) => `${c.id}.age`).sort();
    expect(recorded).toEqual(files);

    remount(vault, "size=4m");
    const next = await sync(s, ["--camera", "Disk2"]);
    expect(next.code, next.stderr).toBe(0);
    await verifyVault(s, lab, clips);
  });
});
