import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WrittenClip } from "../harness/ftp.js";
import { type FtpFaultProxy, startFtpFaultProxy } from "../harness/ftpProxy.js";
import { type FaultProxy, startFaultProxy } from "../harness/proxy.js";
import { count } from "./counters.js";
import {
  checkNothingHalfDone,
  type Lab,
  Rng,
  readManifest,
  type Scenario,
  SFTP_TRANSPORTS,
  type SftpTransport,
  scenario,
  seedFor,
  startLab,
  startSync,
  sync,
  until,
  verifyVault,
  writeClips,
} from "./support.js";

/**
 * Transfers cut on purpose, again and again, in the middle of multi-clip runs: on the SFTP
 * upload, on FTP data connections (the download), on the FTP control connection, and by
 * stopping a server mid-run. After every faulty run nothing is half-written under a final name
 * and nothing is recorded without its file; after one clean run every clip verifies.
 */
for (const transport of SFTP_TRANSPORTS) {
  describe(`faults: transfers cut mid-run (${transport})`, { timeout: 120_000 }, () =>
    cutTransfers(transport),
  );
}

function cutTransfers(transport: SftpTransport): void {
  let lab: Lab;
  let sftpProxy: FaultProxy;
  let ftpProxy: FtpFaultProxy;

  beforeAll(async () => {
    lab = await startLab({ transport });
    [sftpProxy, ftpProxy] = await Promise.all([
      startFaultProxy({ host: lab.sftp.host, port: lab.sftp.port }),
      startFtpFaultProxy(lab.ftp),
    ]);
  });

  afterAll(async () => {
    await Promise.allSettled([sftpProxy?.close(), ftpProxy?.close()]);
    await lab?.close();
  });

  /**
   * Runs `rounds` faulty syncs of one camera, with new clips arriving before each (so every
   * round has uploads to cut), checking the invariants after each. Returns the clips.
   */
  async function faultyRounds(
    name: string,
    camera: string,
    rounds: number,
    /** Sets the fault; `pending` are the clips not yet in the vault (sized so a cut happens). */
    arm: (rng: Rng, pending: WrittenClip[]) => void,
    cuts: () => number,
    over: Parameters<typeof scenario>[2] = {},
  ): Promise<{ s: Scenario; clips: WrittenClip[] }> {
    const rng = new Rng(seedFor(name));
    const s = await scenario(lab, name, over);
    const clips: WrittenClip[] = [];
    const before = cuts();
    for (let round = 0; round < rounds; round++) {
      clips.push(...(await writeClips(lab.ftp, rng, camera, `2024-05-0${round + 1}`, 3)));
      const recorded = new Set((await readManifest(s.stateDir)).clips.map((c) => c.id));
      arm(
        rng,
        clips.filter((c) => !recorded.has(c.relPath)),
      );
      const run = await sync(s, ["--camera", camera, "--json"]);
      // A run that was cut says so: exit 1, the clip that failed named.
      if (run.code !== 0) {
        expect(run.code, run.stderr).toBe(1);
        expect(run.signal).toBeNull();
      }
      await checkNothingHalfDone(s, lab, clips);
    }
    const made = cuts() - before;
    count(name, { cuts: made });
    expect(made, "the faults were really made").toBeGreaterThanOrEqual(rounds);
    return { s, clips };
  }

  it("SFTP uploads cut after random byte counts, 4 runs; then a clean run", async () => {
    const { s, clips } = await faultyRounds(
      "sftp-cuts",
      "CutSftp",
      4,
      // Anywhere in what this run has to upload (one connection carries all of it).
      (rng, pending) =>
        sftpProxy.setMode({
          kind: "cut",
          afterBytes: rng.int(30_000, Math.floor(0.9 * pending.reduce((n, c) => n + c.size, 0))),
          direction: "up",
        }),
      () => sftpProxy.stats().cuts,
      { destination: { port: sftpProxy.port } },
    );
    sftpProxy.setMode({ kind: "pass" });
    const clean = await sync(s, ["--camera", "CutSftp"]);
    expect(clean.code, clean.stderr).toBe(0);
    await verifyVault(s, lab, clips);
  });

  // The camera side does not change with the vault's transport: run once, over the default.
  const ftpOnly = it.runIf(transport === "ssh2");

  ftpOnly("FTP downloads cut on the data connection, 4 runs; then a clean run", async () => {
    const { s, clips } = await faultyRounds(
      "ftp-data-cuts",
      "CutFtpData",
      4,
      // Each download has its own data connection: cut inside the biggest clip at least.
      // Listings are a few hundred bytes and never reach the cut.
      (rng, pending) =>
        ftpProxy.setDataMode({
          kind: "cut",
          afterBytes: rng.int(20_000, Math.floor(0.9 * Math.max(...pending.map((c) => c.size)))),
          direction: "down",
        }),
      () => ftpProxy.cuts(),
      { source: { port: ftpProxy.port } },
    );
    ftpProxy.setDataMode({ kind: "pass" });
    const clean = await sync(s, ["--camera", "CutFtpData"]);
    expect(clean.code, clean.stderr).toBe(0);
    await verifyVault(s, lab, clips);
  });

  ftpOnly("the FTP control connection cut mid-session, 3 runs; then a clean run", async () => {
    const { s, clips } = await faultyRounds(
      "ftp-control-cuts",
      "CutFtpCtl",
      3,
      (rng) => ftpProxy.setControlMode({ kind: "cut", afterBytes: rng.int(300, 900) }),
      () => ftpProxy.cuts(),
      { source: { port: ftpProxy.port } },
    );
    ftpProxy.setControlMode({ kind: "pass" });
    const clean = await sync(s, ["--camera", "CutFtpCtl"]);
    expect(clean.code, clean.stderr).toBe(0);
    await verifyVault(s, lab, clips);
  });

  it("sshd and vsftpd stopped mid-run: the run fails clearly, the next one completes", async () => {
    const clips = await writeClips(lab.ftp, new Rng(4), "Stopped", "2024-05-01", 8);
    const s = await scenario(lab, "servers-stopped", {
      source: { port: ftpProxy.port },
      destination: { port: sftpProxy.port },
    });
    // A stall pins the moment: the run is mid-transfer when the server goes away.
    const stops = [
      {
        server: lab.sftp,
        stall: () => sftpProxy.setMode({ kind: "stall", afterBytes: 1_500_000 }),
        stalled: () => sftpProxy.bytesUp + sftpProxy.bytesDown >= 1_500_000,
        release: () => sftpProxy.setMode({ kind: "pass" }),
      },
      {
        server: lab.ftp,
        stall: () => ftpProxy.setDataMode({ kind: "stall", afterBytes: 300_000 }),
        stalled: () => ftpProxy.dataBytes() >= 300_000,
        release: () => ftpProxy.setDataMode({ kind: "pass" }),
      },
    ];
    for (const stop of stops) {
      stop.stall();
      const run = startSync(s, ["--camera", "Stopped"]);
      await until("the transfer to stall", stop.stalled);
      await stop.server.stop();
      stop.release();
      const code = await run.exited;
      await stop.server.start();
      count(s.name, { cuts: 1 });
      expect(code, run.output()).toBe(1);
      expect(run.output()).toMatch(/error: .*(connection|ECONNRESET|ECONNREFUSED|closed)/i);
      await checkNothingHalfDone(s, lab, clips);
    }
    const clean = await sync(s, ["--camera", "Stopped"]);
    expect(clean.code, clean.stderr).toBe(0);
    await verifyVault(s, lab, clips);
  });
}
