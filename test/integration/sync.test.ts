import { existsSync } from "node:fs";
import { cp, readFile, rm, stat, utimes } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ageCliDecrypt, ageKeygenRecipient } from "../harness/age.js";
import { REPO, runCli } from "../harness/cli.js";
import { ftpSource, sftpDestination } from "../harness/config.js";
import { tempDir, walk, writeConfig } from "../harness/files.js";
import { type FtpServer, startFtpServer, type WrittenClip } from "../harness/ftp.js";
import { GrowingMovie } from "../harness/mp4.js";
import { type FaultProxy, startFaultProxy } from "../harness/proxy.js";
import { type SftpServer, startSftpServer } from "../harness/sshd.js";

/**
 * The core promise, end to end with real servers: clips on a camera's vsftpd end up age-encrypted
 * on an OpenSSH SFTP server under `<path>/<clip id>.age`, and Debian's `age` gets the bytes back.
 */
describe("sync: vsftpd -> age -> OpenSSH sftp", () => {
  let ftp: FtpServer;
  let sftp: SftpServer;
  let work: string;
  let identityFile: string;
  const clips: WrittenClip[] = [];

  const baseConfig = (over: Record<string, unknown> = {}) => ({
    source: ftpSource(ftp, { stableSeconds: 5 }),
    destination: sftpDestination(sftp, join(sftp.root, "motioneye")),
    encryption: { identityFile },
    state: { dir: join(work, "state") },
    sync: { retries: 0 },
    ...over,
  });

  beforeAll(async () => {
    [ftp, sftp, work] = await Promise.all([startFtpServer(), startSftpServer(), tempDir()]);
    identityFile = join(work, "identity.txt");
    for (const camera of ["Camera1", "Camera2"]) {
      for (const date of ["2024-05-01", "2024-05-02"]) {
        clips.push(
          await ftp.writeClip(`${camera}/${date}/12-00-00.mp4`, 700_000 + clips.length * 1111),
        );
        clips.push(
          await ftp.writeClip(`${camera}/${date}/12-30-15.mp4`, 1_300_000 + clips.length * 77),
        );
        await ftp.writeClip(`${camera}/${date}/12-00-00.mp4.thumb`, "jpeg thumbnail");
        await ftp.writeClip(`${camera}/${date}/notes.txt`, "not a clip");
      }
    }
  });

  afterAll(async () => {
    await Promise.allSettled([
      ftp?.close(),
      sftp?.close(),
      rm(work, { recursive: true, force: true }),
    ]);
  });

  it("keygen writes an identity that age-keygen reads, 0600, and never overwrites it", async () => {
    const dir = await tempDir();
    const cfg = await writeConfig(dir, baseConfig());
    const made = await runCli(["keygen", "--config", cfg]);
    expect(made.code).toBe(0);
    const recipient = made.stdout.trim();
    expect(recipient).toMatch(/^age1[0-9a-z]{58}$/);
    expect(await ageKeygenRecipient(identityFile)).toBe(recipient);
    expect((await stat(identityFile)).mode & 0o777).toBe(0o600);

    const again = await runCli(["keygen", "--config", cfg]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists.*--force/);
    expect(await ageKeygenRecipient(identityFile)).toBe(recipient);
  });

  it("backs up two cameras x two dates; Debian's age restores the exact bytes; a second run rewrites nothing", async () => {
    const dir = await tempDir();
    const cfg = await writeConfig(dir, baseConfig());
    const run = await runCli(["sync", "--config", cfg, "--json"]);
    expect(run.stderr).not.toMatch(/error/i);
    expect(run.code).toBe(0);
    const summary = JSON.parse(run.stdout) as { uploaded: number; failed: number };
    expect(summary).toMatchObject({ uploaded: 8, failed: 0 });

    const vault = join(sftp.root, "motioneye");
    expect(await walk(vault)).toEqual(clips.map((c) => `${c.relPath}.age`).sort());
    for (const clip of clips) {
      const plain = await ageCliDecrypt(join(vault, `${clip.relPath}.age`), identityFile);
      expect(plain.length).toBe(clip.size);
      expect(plain.equals(await readFile(clip.localPath))).toBe(true);
      expect((await stat(join(vault, `${clip.relPath}.age`))).mode & 0o777).toBe(0o600);
    }

    const listed = JSON.parse((await runCli(["list", "--config", cfg, "--json"])).stdout) as Array<{
      id: string;
      sha256: string;
      camera: string;
    }>;
    expect(listed.map((c) => c.id).sort()).toEqual(clips.map((c) => c.relPath).sort());
    for (const c of clips) expect(listed.find((l) => l.id === c.relPath)?.sha256).toBe(c.sha256);

    const before = await Promise.all(clips.map((c) => stat(join(vault, `${c.relPath}.age`))));
    const second = await runCli(["sync", "--config", cfg, "--json"]);
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ uploaded: 0, failed: 0 });
    const after = await Promise.all(clips.map((c) => stat(join(vault, `${c.relPath}.age`))));
    expect(after.map((s) => [s.ino, s.mtimeMs])).toEqual(before.map((s) => [s.ino, s.mtimeMs]));

    const status = JSON.parse((await runCli(["status", "--config", cfg, "--json"])).stdout);
    expect(status.totals.clips).toBe(8);
    expect(status.totals.bytes).toBe(clips.reduce((n, c) => n + c.size, 0));
  });

  it("backs up a movie motion is still writing only once it is closed", async () => {
    const dir = await tempDir();
    const cfg = await writeConfig(dir, baseConfig());
    const rel = "Camera1/2024-05-03/09-00-00.mp4";
    const remote = join(sftp.root, "motioneye", `${rel}.age`);
    const movie = await readFile(join(REPO, "test/fixtures/motion/finished.mp4"));
    const growing = new GrowingMovie(join(ftp.localRoot, rel), movie);
    const sync = async () => {
      const run = await runCli(["sync", "--config", cfg, "--json"]);
      expect(run.code, run.stderr).toBe(0);
      return JSON.parse(run.stdout) as { uploaded: number; pending: number };
    };
    // motion leaves a movie untouched between bursts: an old mtime proves nothing
    const untouched = async () => {
      const old = new Date(Date.now() - 3600_000);
      await utimes(growing.path, old, old);
    };

    await growing.start();
    await untouched();
    expect(await sync()).toMatchObject({ uploaded: 0, pending: 1 });
    await growing.burst(40_000);
    await untouched();
    expect(await sync()).toMatchObject({ uploaded: 0, pending: 1 });
    expect(existsSync(remote)).toBe(false);

    await growing.close();
    expect(await sync()).toMatchObject({ uploaded: 1, pending: 0 });
    expect((await ageCliDecrypt(remote, identityFile)).equals(movie)).toBe(true);
  });

  it("backs up a clip it cannot check only when two listings stableSeconds apart saw it unchanged", async () => {
    const dir = await tempDir();
    const cfg = await writeConfig(dir, baseConfig());
    // not an MP4: nothing in the file says whether it is finished; an hour-old mtime is no proof
    const avi = await ftp.writeClip("Camera1/2024-05-05/10-00-00.avi", 300_000);
    const remote = join(sftp.root, "motioneye", `${avi.relPath}.age`);
    const sync = async () => {
      const run = await runCli(["sync", "--config", cfg, "--json", "--date", "2024-05-05"]);
      expect(run.code, run.stderr).toBe(0);
      return JSON.parse(run.stdout) as { uploaded: number; pending: number };
    };
    const firstStarted = Date.now();
    expect(await sync()).toMatchObject({ uploaded: 0, pending: 1 });
    const firstEnded = Date.now();
    // the two sightings are less than stableSeconds (5) apart only if this run ends in time
    const second = await sync();
    if (Date.now() - firstStarted < 5000) expect(second).toMatchObject({ uploaded: 0, pending: 1 });
    expect(existsSync(remote)).toBe(second.uploaded === 1);
    await new Promise((r) => setTimeout(r, Math.max(0, firstEnded + 5000 - Date.now())));
    const third = await sync();
    expect(second.uploaded + third.uploaded).toBe(1);
    expect((await ageCliDecrypt(remote, identityFile)).equals(await readFile(avi.localPath))).toBe(
      true,
    );
  });

  it("refuses a wrong pinned host key before writing anything, showing both fingerprints", async () => {
    const dir = await tempDir();
    const wrong = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const dest = join(sftp.root, "pinned-wrong");
    const cfg = await writeConfig(dir, {
      ...baseConfig(),
      destination: { ...baseConfig().destination, hostKey: wrong, path: dest },
      state: { dir: join(dir, "state") },
    });
    const run = await runCli(["sync", "--config", cfg]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(wrong);
    expect(run.stderr).toContain(sftp.hostKeyFingerprint);
    expect(await walk(dest)).toEqual([]);
    const listed = JSON.parse((await runCli(["list", "--config", cfg, "--json"])).stdout);
    expect(listed).toEqual([]);
  });

  it("trusts a new host key on first use, records it, then refuses a changed one", async () => {
    const dir = await tempDir();
    const dest = join(sftp.root, "tofu");
    const { hostKey: _pinned, ...unpinned } = baseConfig().destination;
    const cfg = await writeConfig(dir, {
      ...baseConfig(),
      destination: { ...unpinned, path: dest },
      source: { ...baseConfig().source },
      state: { dir: join(dir, "state") },
    });
    const first = await runCli(["sync", "--config", cfg, "--date", "2024-05-01"]);
    expect(first.code).toBe(0);
    const known = await readFile(join(dir, "state", "known_hosts"), "utf8");
    expect(known).toContain(sftp.hostKeyFingerprint);
    expect((await stat(join(dir, "state", "known_hosts"))).mode & 0o777).toBe(0o600);
    const before = await walk(dest);
    expect(before).toHaveLength(4);

    const oldFingerprint = sftp.hostKeyFingerprint;
    const newFingerprint = await sftp.rotateHostKey();
    const second = await runCli(["sync", "--config", cfg]);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(oldFingerprint);
    expect(second.stderr).toContain(newFingerprint);
    expect(await walk(dest)).toEqual(before);
  });

  it("exits 2 on a bad config, naming each key, before doing anything", async () => {
    const dir = await tempDir();
    const stateDir = join(dir, "state");
    const cfg = await writeConfig(dir, {
      ...baseConfig(),
      destination: { ...baseConfig().destination, hostKey: "md5:nope" },
      source: { ...baseConfig().source, port: "twenty-one" },
      state: { dir: stateDir },
    });
    const run = await runCli(["sync", "--config", cfg]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/destination\.hostKey: /);
    expect(run.stderr).toMatch(/source\.port: /);
    expect(existsSync(stateDir)).toBe(false);

    const usage = await runCli(["sync", "--config", cfg, "--no-such-flag"]);
    expect(usage.code).toBe(2);
  });

  describe("a transfer cut mid-way", () => {
    let proxy: FaultProxy;
    beforeAll(async () => {
      proxy = await startFaultProxy({ host: sftp.host, port: sftp.port });
    });
    afterAll(async () => {
      await proxy?.close();
    });

    it("leaves nothing under the final name and no manifest entry; the next run completes it", async () => {
      const dir = await tempDir();
      const dest = join(sftp.root, "cut");
      const big = await ftp.writeClip("Camera3/2024-05-04/10-00-00.mp4", 3_000_000);
      const cfg = await writeConfig(dir, {
        ...baseConfig(),
        destination: { ...baseConfig().destination, port: proxy.port, path: dest },
        state: { dir: join(dir, "state") },
      });
      proxy.setMode({ kind: "cut", afterBytes: 1_500_000, direction: "up" });
      const cut = await runCli(["sync", "--config", cfg, "--camera", "Camera3", "--json"]);
      expect(cut.code).toBe(1);
      expect(proxy.stats().cuts).toBeGreaterThanOrEqual(1);
      // Neither the final name nor a stray `.part-` file: the store cleaned up after the cut.
      expect(await walk(dest)).toEqual([]);
      const listed = JSON.parse((await runCli(["list", "--config", cfg, "--json"])).stdout);
      expect(listed).toEqual([]);

      proxy.setMode({ kind: "pass" });
      const again = await runCli(["sync", "--config", cfg, "--camera", "Camera3", "--json"]);
      expect(again.code).toBe(0);
      expect(await walk(dest)).toEqual([`${big.relPath}.age`]);
      const plain = await ageCliDecrypt(join(dest, `${big.relPath}.age`), identityFile);
      expect(plain.equals(await readFile(big.localPath))).toBe(true);
    });
  });
});

describe("quick start: embedded defaults", () => {
  it("backs up the sample clips into ./data/vault with a key made on first run", async () => {
    const cwd = await tempDir();
    // As new as a fresh clone's files: finished movies need no wait.
    await cp(join(REPO, "samples"), join(cwd, "samples"), { recursive: true });

    const run = await runCli(["sync"], { cwd });
    expect(run.code).toBe(0);
    expect(run.stderr).toContain("NEW ENCRYPTION KEY");
    expect(run.stdout).toMatch(/backed up 4 clip/);
    const identity = join(cwd, "data", "identity.txt");
    expect((await stat(identity)).mode & 0o777).toBe(0o600);
    const vault = await walk(join(cwd, "data", "vault"));
    expect(vault).toEqual([
      "Camera1/2024-05-01/12-00-00.mp4.age",
      "Camera1/2024-05-01/12-05-30.mp4.age",
      "Camera1/2024-05-02/08-15-00.mp4.age",
      "Camera2/2024-05-01/12-00-02.mp4.age",
    ]);
    for (const f of vault) {
      const plain = await ageCliDecrypt(join(cwd, "data", "vault", f), identity);
      expect(
        plain.equals(await readFile(join(cwd, "samples", "motioneye", f.replace(/\.age$/, "")))),
      ).toBe(true);
    }
    const listed = await runCli(["list"], { cwd });
    expect(listed.stdout.trim().split("\n")).toHaveLength(4);
  });
});
