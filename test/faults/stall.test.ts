import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FtpFaultProxy, startFtpFaultProxy } from "../harness/ftpProxy.js";
import { type FaultProxy, startFaultProxy } from "../harness/proxy.js";
import { count } from "./counters.js";
import {
  checkNothingHalfDone,
  type Lab,
  Rng,
  readManifest,
  SFTP_TRANSPORTS,
  type SftpTransport,
  scenario,
  startLab,
  sync,
  verifyVault,
  writeClips,
} from "./support.js";

/**
 * Servers that accept and then say nothing, at connect or mid-transfer. A run must not hang:
 * it fails the clips with a timeout in bounded time (here a few seconds, configured small), and
 * the next run, once the server answers again, completes. The runner's own 60 s kill would turn
 * a hang into a failed test (signal SIGKILL instead of exit 1).
 */
for (const transport of SFTP_TRANSPORTS) {
  describe(`faults: stalled servers (${transport})`, { timeout: 120_000 }, () =>
    stalledServers(transport),
  );
}

function stalledServers(transport: SftpTransport): void {
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

  const cases: Array<{
    name: string;
    stall: () => void;
    release: () => void;
    over: Parameters<typeof scenario>[2];
    error: RegExp;
  }> = [
    {
      name: "sftp-silent-at-connect",
      stall: () => sftpProxy.setMode({ kind: "stall" }),
      release: () => sftpProxy.setMode({ kind: "pass" }),
      over: { destination: { port: 0, timeoutSeconds: 2 } },
      error: /timed out|timeout/i,
    },
    {
      // The store notices: SSH keepalives go unanswered for destination.timeoutSeconds.
      name: "sftp-silent-mid-upload",
      stall: () => sftpProxy.setMode({ kind: "stall", afterBytes: 700_000 }),
      release: () => sftpProxy.setMode({ kind: "pass" }),
      over: { destination: { port: 0, timeoutSeconds: 2 } },
      error: /timed out|timeout|connection lost/i,
    },
    {
      // The store would wait 30 s: the sync's own watchdog gives up first.
      name: "sftp-silent-watchdog",
      stall: () => sftpProxy.setMode({ kind: "stall", afterBytes: 700_000 }),
      release: () => sftpProxy.setMode({ kind: "pass" }),
      over: { destination: { port: 0, timeoutSeconds: 30 }, sync: { idleTimeoutSeconds: 2 } },
      error: /no data moved for 2 s/,
    },
    {
      name: "ftp-silent-at-connect",
      stall: () => ftpProxy.setControlMode({ kind: "stall" }),
      release: () => ftpProxy.setControlMode({ kind: "pass" }),
      over: { source: { port: 0, timeoutSeconds: 2 } },
      error: /timeout|timed out/i,
    },
    {
      name: "ftp-data-silent-mid-download",
      stall: () => ftpProxy.setDataMode({ kind: "stall", afterBytes: 200_000 }),
      release: () => ftpProxy.setDataMode({ kind: "pass" }),
      over: { source: { port: 0, timeoutSeconds: 2 } },
      error: /timeout|timed out/i,
    },
  ];

  for (const [i, c] of cases.entries()) {
    // The camera side does not change with the vault's transport: run once, over the default.
    if (transport !== "ssh2" && !c.name.startsWith("sftp")) continue;
    it(`${c.name}: the run fails in bounded time, the next one completes`, async () => {
      const camera = `Stall${i}`;
      const clips = await writeClips(lab.ftp, new Rng(100 + i), camera, "2024-05-01", 2);
      const over = structuredClone(c.over) ?? {};
      if (over.destination) over.destination.port = sftpProxy.port;
      if (over.source) over.source.port = ftpProxy.port;
      const s = await scenario(lab, c.name, over);

      c.stall();
      const stalled = await sync(s, ["--camera", camera]);
      if (process.env.DEBUG_FAULTS)
        console.log(stalled.stderr.replace(/^{.*"level":[0-3]0.*\n/gm, ""));
      c.release();
      count(s.name, { cuts: 1 });
      expect(stalled.signal, "the run hung").toBeNull();
      expect(stalled.code).toBe(1);
      expect(stalled.stderr).toMatch(c.error);
      await checkNothingHalfDone(s, lab, clips);
      const { clips: recorded } = await readManifest(s.stateDir);
      expect(recorded.length).toBeLessThan(clips.length);

      const next = await sync(s, ["--camera", camera]);
      expect(next.code, next.stderr).toBe(0);
      await verifyVault(s, lab, clips);
    });
  }
}
