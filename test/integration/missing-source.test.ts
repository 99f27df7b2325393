import { mkdir, rm, utimes, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../harness/cli.js";
import { ftpSource } from "../harness/config.js";
import { tempDir, walk, writeConfig } from "../harness/files.js";
import { type FtpServer, startFtpServer } from "../harness/ftp.js";

/**
 * No silent success: a source whose root is not there (an unmounted disk, a typo in `path`) is a
 * failed run naming the key and the path, never "backed up 0 clips".
 */

async function writeClip(root: string, id: string): Promise<void> {
  const file = join(root, id);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, Buffer.alloc(4096, id));
  const old = new Date(Date.now() - 3600_000);
  await utimes(file, old, old);
}

interface Status {
  lastSuccessAt?: string | null;
  lastError?: { message: string } | null;
  sources: Record<string, { failing: boolean; lastSuccessAt?: string | null }>;
}

describe("a missing source root fails the run", { timeout: 60_000 }, () => {
  let work: string;
  let ftp: FtpServer;

  beforeAll(async () => {
    [work, ftp] = await Promise.all([tempDir(), startFtpServer()]);
    await ftp.writeClip("Camera1/2024-05-01/12-00-00.mp4", 5000);
  });
  afterAll(async () => {
    await Promise.allSettled([ftp?.close(), rm(work, { recursive: true, force: true })]);
  });

  const config = (name: string, source: Record<string, unknown>) =>
    writeConfig(join(work, name), {
      source,
      destination: { type: "local", path: join(work, name, "vault") },
      state: { dir: join(work, name, "state") },
      sync: { retries: 0 },
    });

  async function status(cfg: string): Promise<Status> {
    const run = await runCli(["status", "--config", cfg, "--json"]);
    expect(run.code).toBe(0);
    return JSON.parse(run.stdout) as Status;
  }

  it("a local folder that does not exist: exit 1, source.path named, no success recorded", async () => {
    const media = join(work, "usb", "motioneye"); // the disk is not mounted
    await mkdir(join(work, "local"), { recursive: true });
    const cfg = await config("local", { type: "local", path: media, stableSeconds: 0 });
    const run = await runCli(["sync", "--config", cfg]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`source.path: ${media} does not exist`);
    const st = await status(cfg);
    expect(st.lastSuccessAt ?? null).toBeNull();
    expect(Object.values(st.sources).every((s) => s.failing && !s.lastSuccessAt)).toBe(true);

    // Mounted: the same config backs up and succeeds.
    await writeClip(media, "Camera1/2024-05-01/12-00-00.mp4");
    const again = await runCli(["sync", "--config", cfg]);
    expect(again.stderr).not.toMatch(/error/);
    expect(again.code).toBe(0);
    expect(await walk(join(work, "local", "vault"))).toEqual([
      "Camera1/2024-05-01/12-00-00.mp4.age",
    ]);

    // A camera folder the run is limited to that is not there: a failure too, not "0 clips".
    const typo = await runCli(["sync", "--config", cfg, "--camera", "Camera9"]);
    expect(typo.code).toBe(1);
    expect(typo.stderr).toContain(
      `--camera: there is no camera folder Camera9 in ${media} (source.path)`,
    );
    expect((await runCli(["sync", "--config", cfg, "--camera", "Camera1"])).code).toBe(0);
  });

  it("a wrong FTP path on vsftpd: exit 1, naming source.path and the server", async () => {
    await mkdir(join(work, "ftp"), { recursive: true });
    const cfg = await config("ftp", ftpSource(ftp, { path: "/sdcrad", stableSeconds: 0 }));
    const run = await runCli(["sync", "--config", cfg]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      `source.path: /sdcrad does not exist on ftp://${ftp.host}:${ftp.port}`,
    );
    const st = await status(cfg);
    expect(st.lastSuccessAt ?? null).toBeNull();
    expect(Object.values(st.sources).every((s) => s.failing && !s.lastSuccessAt)).toBe(true);
    expect(await walk(join(work, "ftp", "vault")).catch(() => [])).toEqual([]);
  });

  it("with several sources, the one missing fails under its own key; the other backs up", async () => {
    const present = join(work, "multi-present");
    await writeClip(present, "Camera1/2024-05-01/12-00-00.mp4");
    await mkdir(join(work, "multi"), { recursive: true });
    const cfg = await writeConfig(join(work, "multi"), {
      sources: [
        { name: "porch", type: "local", path: present, stableSeconds: 0 },
        { name: "garage", type: "local", path: join(work, "nas-not-mounted"), stableSeconds: 0 },
      ],
      destination: { type: "local", path: join(work, "multi", "vault") },
      state: { dir: join(work, "multi", "state") },
      sync: { retries: 0 },
    });
    const run = await runCli(["sync", "--config", cfg]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      `garage: sources[1].path: ${join(work, "nas-not-mounted")} does not exist`,
    );
    expect(await walk(join(work, "multi", "vault"))).toEqual([
      "porch/Camera1/2024-05-01/12-00-00.mp4.age",
    ]);
    const st = await status(cfg);
    expect(st.sources.garage?.failing).toBe(true);
    expect(st.sources.garage?.lastSuccessAt ?? null).toBeNull();
    expect(st.sources.porch?.failing).toBe(false);
  });
});
