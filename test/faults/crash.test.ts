import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { walk } from "../harness/files.js";
import type { WrittenClip } from "../harness/ftp.js";
import { type FaultProxy, startFaultProxy } from "../harness/proxy.js";
import { count } from "./counters.js";
import {
  checkNothingHalfDone,
  type Lab,
  listClips,
  Rng,
  SFTP_TRANSPORTS,
  type SftpTransport,
  scenario,
  seedFor,
  startLab,
  startSync,
  sync,
  until,
  verifyVault,
} from "./support.js";

const KILLS = 7;

/**
 * `sync` SIGKILLed at random points (seeded: FAULTS_SEED replays), again and again, while new
 * clips keep arriving. After every kill: nothing half-written under a final name, no manifest
 * entry without its file, the manifest's JSON readable. Then one clean run: every clip verifies,
 * no duplicates, no `.part` strays, totals right.
 */
for (const transport of SFTP_TRANSPORTS) {
  describe(`faults: sync killed with SIGKILL (${transport})`, { timeout: 120_000 }, () =>
    killedSyncs(transport),
  );
}

function killedSyncs(transport: SftpTransport): void {
  let lab: Lab;
  let proxy: FaultProxy;

  beforeAll(async () => {
    lab = await startLab({ transport });
    proxy = await startFaultProxy({ host: lab.sftp.host, port: lab.sftp.port });
  });

  afterAll(async () => {
    await proxy?.close();
    await lab?.close();
  });

  it(`${KILLS} kills at random points, one mid-upload, then a clean run loses nothing`, async () => {
    const rng = new Rng(seedFor("sync-kills"));
    const s = await scenario(lab, "sync-kills", { destination: { port: proxy.port } });
    const clips: WrittenClip[] = [];
    const addClips = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const name = `${String(clips.length).padStart(2, "0")}-00-00.mp4`;
        const mtime = new Date(Date.now() - 3600_000 + clips.length * 1000);
        clips.push(
          await lab.ftp.writeClip(`Crash/2024-05-01/${name}`, rng.int(100_000, 1_500_000), mtime),
        );
      }
    };
    await addClips(10);

    for (let k = 0; k < KILLS; k++) {
      await addClips(2);
      const run = startSync(s, ["--camera", "Crash"]);
      if (rng.next() < 0.4) {
        // Anywhere from listing to the first uploads.
        await until("the run to plan", () => /sync planned/.test(run.output()));
        await new Promise((r) => setTimeout(r, rng.int(0, 300)));
      } else {
        // Mid-run, between or inside clips.
        const after = rng.int(1, 3);
        // Bounded by a minute: on a loaded machine a run takes seconds to start, list and check
        // the clips it has not backed up yet before its first upload.
        await until(
          `${after} clip(s) backed up`,
          () =>
            (run.output().match(/clip backed up/g)?.length ?? 0) >= after ||
            /sync finished/.test(run.output()),
          60_000,
        );
        await new Promise((r) => setTimeout(r, rng.int(0, 60)));
      }
      run.child.kill("SIGKILL");
      await run.exited;
      count(s.name, { kills: 1 });
      await checkNothingHalfDone(s, lab, clips);
    }

    // One kill pinned mid-upload (a stall holds the upload open), so a `.part` is surely left.
    await addClips(1);
    proxy.setMode({ kind: "stall", afterBytes: 400_000 });
    const stuck = startSync(s, ["--camera", "Crash"]);
    await until("a partial upload on the destination", async () =>
      (await walk(s.dest)).some((f) => /\.part-/.test(f)),
    );
    stuck.child.kill("SIGKILL");
    await stuck.exited;
    proxy.setMode({ kind: "pass" });
    count(s.name, { kills: 1 });
    await checkNothingHalfDone(s, lab, clips);
    expect((await walk(s.dest)).filter((f) => /\.part-/.test(f)).length).toBeGreaterThan(0);
    expect(existsSync(join(s.stateDir, "sync.lock")), "the killed run's lock is left").toBe(true);

    // The on-disk state of a kill between a clip's shard write and the totals write after it
    // (a window of a millisecond that random kills rarely hit): the next run must repair it.
    const statePath = join(s.stateDir, "state.json");
    const state = JSON.parse(await readFile(statePath, "utf8")) as { totals: { clips: number } };
    state.totals.clips -= 1;
    await writeFile(statePath, JSON.stringify(state));

    const clean = await sync(s, ["--camera", "Crash"]);
    expect(clean.code, clean.stderr).toBe(0);
    expect(clean.stderr).toMatch(/previous run did not finish/);
    await verifyVault(s, lab, clips);
    // The program reads the manifest the kills left behind: each clip once.
    const listed = await listClips(s);
    expect(listed.map((c) => c.id).sort()).toEqual(clips.map((c) => c.relPath).sort());
  });
}
