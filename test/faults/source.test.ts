import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { walk } from "../harness/files.js";
import { type FaultProxy, startFaultProxy } from "../harness/proxy.js";
import { count } from "./counters.js";
import {
  type Lab,
  Rng,
  readManifest,
  scenario,
  startLab,
  startSync,
  sync,
  until,
  verifyVault,
  writeClips,
} from "./support.js";

/**
 * The camera's side going wrong: offline, a wrong password, motionEye deleting a day folder in
 * the middle of a run, and file names no one expected. Each gives a clear error naming the
 * problem (never the password), and whatever can still be backed up is.
 */
describe("faults: the camera (FTP source)", { timeout: 120_000 }, () => {
  let lab: Lab;
  let proxy: FaultProxy;

  beforeAll(async () => {
    lab = await startLab();
    proxy = await startFaultProxy({ host: lab.sftp.host, port: lab.sftp.port });
  });

  afterAll(async () => {
    await proxy?.close();
    await lab?.close();
  });

  it("camera offline (connection refused): a clear error, nothing recorded, next run completes", async () => {
    const clips = await writeClips(lab.ftp, new Rng(500), "Offline", "2024-05-01", 2);
    const s = await scenario(lab, "camera-offline");
    await lab.ftp.stop();
    let run: Awaited<ReturnType<typeof sync>>;
    try {
      run = await sync(s, ["--camera", "Offline"]);
    } finally {
      await lab.ftp.start();
    }
    count(s.name, { cuts: 1 });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      new RegExp(`error: .*ftp://${lab.ftp.user}@127\\.0\\.0\\.1:${lab.ftp.port}.*ECONNREFUSED`),
    );
    expect((await readManifest(s.stateDir)).clips).toEqual([]);
    expect(await walk(s.dest)).toEqual([]);
    const next = await sync(s, ["--camera", "Offline"]);
    expect(next.code, next.stderr).toBe(0);
    await verifyVault(s, lab, clips);
  });

  it("wrong FTP password: says the login failed, never prints the password", async () => {
    const wrong = "not-the-camera-password-42";
    const s = await scenario(lab, "wrong-password", { source: { password: wrong } });
    const run = await sync(s);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/login as mevault-ftp \(FTP 530\)/);
    expect(run.stdout + run.stderr).not.toContain(wrong);
    expect(run.stdout + run.stderr).not.toContain(lab.ftp.password);
    expect((await readManifest(s.stateDir)).clips).toEqual([]);
  });

  it("a day folder deleted mid-run (motionEye's cleanup): its clips fail clearly, the rest is backed up", async () => {
    const rng = new Rng(501);
    // The old day is first in the plan (oldest first) and big enough to be mid-way when it goes.
    const hour = 3600_000;
    const old = await writeClips(
      lab.ftp,
      rng,
      "Cleanup",
      "2024-04-01",
      8,
      [400_000, 600_000],
      Date.now() - 2 * hour,
    );
    const kept = await writeClips(
      lab.ftp,
      rng,
      "Cleanup",
      "2024-05-01",
      3,
      undefined,
      Date.now() - hour,
    );
    const s = await scenario(lab, "day-deleted", { destination: { port: proxy.port } });
    // A stall pins the moment: uploads are under way when the folder goes.
    proxy.setMode({ kind: "stall", afterBytes: 1_200_000 });
    const run = startSync(s, ["--camera", "Cleanup", "--json"]);
    await until("the run to be mid-way", () => proxy.bytesUp + proxy.bytesDown >= 1_200_000);
    await rm(dirname(old[0]?.localPath ?? "/nonexistent"), { recursive: true });
    proxy.setMode({ kind: "pass" });
    expect(await run.exited, run.output()).toBe(1);
    count(s.name, { cuts: 1 });

    const summary = JSON.parse(run.stdout()) as {
      uploaded: number;
      failed: number;
      error: string;
    };
    expect(summary.failed).toBeGreaterThan(0);
    expect(summary.error).toMatch(/Cleanup\/2024-04-01\/.*(No such file|550|ENOENT)/i);
    // The clips the run could still read were all backed up, and everything it recorded is whole.
    const gone = old.filter((c) => !existsSync(join(s.dest, `${c.relPath}.age`)));
    expect(gone.length).toBe(summary.failed);
    for (const c of kept) expect(existsSync(join(s.dest, `${c.relPath}.age`))).toBe(true);
    const next = await sync(s, ["--camera", "Cleanup"]);
    expect(next.code, next.stderr).toBe(0);
    await verifyVault(s, lab, [...old.filter((c) => !gone.includes(c)), ...kept]);
  });

  it("odd file names (spaces, unicode, `..`, shell and format characters) are backed up under their own names, or skipped", async () => {
    const names = [
      "12 00 00.mp4",
      "ünïcödé 日本 🎥.mp4",
      "..evil.mp4",
      "a..b.mp4",
      "-rf.mp4",
      "$(touch pwned).mp4",
      "%2e%2e%2f.mp4",
      "'quote\".mp4",
      "\u202Egnp.mp4", // right-to-left override
    ];
    const rng = new Rng(502);
    const clips = [];
    for (const [i, name] of names.entries()) {
      const mtime = new Date(Date.now() - 3600_000 + i * 1000);
      clips.push(
        await lab.ftp.writeClip(`Odd Cam/2024-05-01/${name}`, rng.int(1_000, 50_000), mtime),
      );
    }
    // Unsafe for a path on any side: never read, never written, reported.
    await lab.ftp.writeClip("Odd Cam/2024-05-01/back\\slash.mp4", 1000);
    await lab.ftp.writeClip("Odd Cam/2024-05-01/tab\there.mp4", 1000);
    const s = await scenario(lab, "odd-names");
    const run = await sync(s, ["--camera", "Odd Cam"]);
    count(s.name, { fuzz: names.length + 2 });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain(
      '"reason":"backslashes are not allowed","msg":"skipping a file with an unsafe name"',
    );
    expect(run.stderr).toContain(
      '"reason":"control characters are not allowed","msg":"skipping a file with an unsafe name"',
    );
    await verifyVault(s, lab, clips);
    // Nothing outside the scenarios' destination folders on the SFTP server.
    const tops = new Set((await walk(lab.sftp.root)).map((f) => f.split("/")[0]));
    for (const top of tops) expect(["camera-offline", "day-deleted", "odd-names"]).toContain(top);
  });
});
