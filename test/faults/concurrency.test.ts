import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FaultProxy, startFaultProxy } from "../harness/proxy.js";
import {
  type Lab,
  Rng,
  scenario,
  startLab,
  startSync,
  sync,
  until,
  verifyVault,
  writeClips,
} from "./support.js";

/**
 * One writer per state dir: a second `sync` while one runs says clearly that a run is in
 * progress (exit 1) and changes nothing; syncs started at the same instant never both write.
 */
describe("faults: concurrent runs on one state dir", { timeout: 120_000 }, () => {
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

  it("a second sync during a run is refused, naming the running pid", async () => {
    const clips = await writeClips(lab.ftp, new Rng(300), "Twice", "2024-05-01", 4);
    // A stall holds the first run mid-upload (and its lock) while the second one starts.
    const s = await scenario(lab, "two-syncs", {
      destination: { port: proxy.port, timeoutSeconds: 20 },
    });
    proxy.setMode({ kind: "stall", afterBytes: 300_000 });
    const first = startSync(s, ["--camera", "Twice"]);
    await until("the first run to hold the lock and upload", () => proxy.bytesUp >= 200_000);
    const second = await sync(s, ["--camera", "Twice"]);
    proxy.setMode({ kind: "pass" });
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`another sync run is in progress (pid ${first.child.pid})`);
    expect(await first.exited, first.output()).toBe(0);
    await verifyVault(s, lab, clips);
  });

  it("three syncs started at once: one writer at a time, nothing lost", async () => {
    const clips = await writeClips(lab.ftp, new Rng(301), "Thrice", "2024-05-01", 6);
    const s = await scenario(lab, "three-syncs");
    const runs = await Promise.all([1, 2, 3].map(() => sync(s, ["--camera", "Thrice", "--json"])));
    for (const r of runs) {
      if (r.code === 0) continue;
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/another sync run is in progress \(pid \d+\)/);
    }
    // Whoever ran, between them every clip was uploaded exactly once.
    const uploaded = runs
      .filter((r) => r.code === 0)
      .reduce((n, r) => n + (JSON.parse(r.stdout) as { uploaded: number }).uploaded, 0);
    expect(uploaded).toBe(clips.length);
    await verifyVault(s, lab, clips);
  });
});
