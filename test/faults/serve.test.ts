import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WrittenClip } from "../harness/ftp.js";
import { type Broker, mosquittoPub, startMosquitto } from "../harness/mosquitto.js";
import { stopProcess } from "../harness/processes.js";
import { type FaultProxy, startFaultProxy } from "../harness/proxy.js";
import { count } from "./counters.js";
import {
  checkNothingHalfDone,
  type Lab,
  listClips,
  Rng,
  type Running,
  type Scenario,
  scenario,
  seedFor,
  startCli,
  startLab,
  startSync,
  sync,
  until,
  verifyVault,
  writeClips,
} from "./support.js";

const KILLS = 6;

/**
 * `serve` under faults: SIGKILLed at random points of its runs, and side by side with a `sync`
 * started by hand on the same state dir (one writer; serve waits for the other run and then
 * does its own, the hand-started one is told a run is in progress).
 */
describe("faults: serve", { timeout: 120_000 }, () => {
  let lab: Lab;
  let broker: Broker;
  let proxy: FaultProxy;

  beforeAll(async () => {
    [lab, broker] = await Promise.all([startLab(), startMosquitto()]);
    proxy = await startFaultProxy({ host: lab.sftp.host, port: lab.sftp.port });
  });

  afterAll(async () => {
    await proxy?.close();
    await Promise.allSettled([broker?.close(), lab?.close()]);
  });

  const serveScenario = (name: string, over: Parameters<typeof scenario>[2] = {}) =>
    scenario(lab, name, {
      ...over,
      top: {
        mqtt: { url: broker.url, baseTopic: `mev-${name}`, homeassistant: { enabled: false } },
        schedule: { sync: "" },
      },
    });

  const serve = (s: Scenario): Running => startCli(["serve", "--config", s.cfg]);

  it(`${KILLS} SIGKILLs of serve mid-run, clips arriving meanwhile; then a clean run`, async () => {
    const rng = new Rng(seedFor("serve-kills"));
    const s = await serveScenario("serve-kills");
    const clips: WrittenClip[] = [];
    for (let k = 0; k < KILLS; k++) {
      clips.push(...(await writeClips(lab.ftp, rng, "ServeKill", `2024-05-0${k + 1}`, 3)));
      const running = serve(s);
      // serve starts with a run; a trigger asks for another one after it.
      await until("serve's startup run", () => /sync started/.test(running.output()));
      if (rng.next() < 0.5) {
        await new Promise((r) => setTimeout(r, rng.int(0, 250)));
      } else {
        await mosquittoPub(broker.url, "motioneye/ServeKill/event", "");
        await until("a clip backed up or the run done", () =>
          /clip backed up|sync finished/.test(running.output()),
        );
        await new Promise((r) => setTimeout(r, rng.int(0, 80)));
      }
      running.child.kill("SIGKILL");
      await running.exited;
      count(s.name, { kills: 1 });
      await checkNothingHalfDone(s, lab, clips);
    }
    const clean = await sync(s, ["--camera", "ServeKill"]);
    expect(clean.code, clean.stderr).toBe(0);
    await verifyVault(s, lab, clips);
    const listed = await listClips(s);
    expect(listed.map((c) => c.id).sort()).toEqual(clips.map((c) => c.relPath).sort());
  });

  it("a sync by hand during serve's run is refused, naming serve's pid", async () => {
    const clips = await writeClips(lab.ftp, new Rng(401), "Beside1", "2024-05-01", 3);
    const s = await serveScenario("sync-during-serve", {
      destination: { port: proxy.port, timeoutSeconds: 20 },
    });
    // serve's startup run stalls mid-upload, holding the lock.
    proxy.setMode({ kind: "stall", afterBytes: 300_000 });
    const running = serve(s);
    try {
      await until("serve's run to upload", () => proxy.bytesUp >= 200_000);
      const byHand = await sync(s, ["--camera", "Beside1"]);
      expect(byHand.code).toBe(1);
      expect(byHand.stderr).toContain(`another sync run is in progress (pid ${running.child.pid})`);
      proxy.setMode({ kind: "pass" });
      await until("serve's run to finish", () => /sync finished/.test(running.output()));
    } finally {
      proxy.setMode({ kind: "pass" });
      await stopProcess(running.child);
    }
    await verifyVault(s, lab, clips);
  });

  it("a trigger while a sync by hand runs: serve waits for it, then backs up what came since", async () => {
    const clips = await writeClips(lab.ftp, new Rng(402), "Beside2", "2024-05-01", 3);
    const s = await serveScenario("serve-during-sync", {
      destination: { port: proxy.port, timeoutSeconds: 20 },
    });
    const running = serve(s);
    try {
      await until("serve's startup run", () => /sync finished/.test(running.output()));
      // The hand-started run stalls mid-upload, holding the lock; a new clip arrives after its
      // listing, and motionEye's trigger reaches serve.
      await lab.ftp
        .writeClip("Beside2/2024-05-02/10-00-00.mp4", 300_000)
        .then((c) => clips.push(c));
      const moved = () => proxy.bytesUp + proxy.bytesDown;
      const stalledAt = moved() + 100_000;
      proxy.setMode({ kind: "stall", afterBytes: 100_000 });
      const byHand = startSync(s, ["--camera", "Beside2"]);
      await until("the hand-started run to stall", () => moved() >= stalledAt);
      clips.push(await lab.ftp.writeClip("Beside2/2024-05-02/23-59-00.mp4", 300_000));
      await mosquittoPub(broker.url, "motioneye/Beside2/event", "");
      await until("serve to wait for the lock", () =>
        /another process is in progress: waiting/.test(running.output()),
      );
      proxy.setMode({ kind: "pass" });
      expect(await byHand.exited, byHand.output()).toBe(0);
      await until("serve's own run after the wait", () => running.count(/sync finished/) >= 2);
      expect(running.output()).not.toMatch(/sync run failed/);
    } finally {
      proxy.setMode({ kind: "pass" });
      await stopProcess(running.child);
    }
    await verifyVault(s, lab, clips);
  });
});
