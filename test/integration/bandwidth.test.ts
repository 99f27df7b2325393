/**
 * `sync.bandwidthLimit` through the CLI: a capped sync still backs every clip up whole, `status`
 * shows the cap in force, and a bad value is a config error naming the key. (How close the
 * achieved rate comes to the cap is a benchmark figure: bench/bandwidth.bench.ts.)
 */
import { mkdir, rm, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ageCliDecrypt } from "../harness/age.js";
import { runCli } from "../harness/cli.js";
import { sha256, tempDir, walk, writeConfig } from "../harness/files.js";
import { clipBytes } from "../harness/ftp.js";

describe("sync.bandwidthLimit", { timeout: 60_000 }, () => {
  let work: string;
  const clips = [
    "Camera1/2024-05-01/12-00-00.mp4",
    "Camera1/2024-05-01/12-30-00.mp4",
    "Camera2/2024-05-01/13-00-00.mp4",
  ];
  const bytes = new Map<string, Buffer>();
  const config = (bandwidthLimit: unknown) =>
    writeConfig(work, {
      source: { type: "local", path: join(work, "camera"), stableSeconds: 1 },
      destination: { type: "local", path: join(work, "vault") },
      state: { dir: join(work, "state") },
      sync: { retries: 0, bandwidthLimit },
    });

  beforeAll(async () => {
    work = await tempDir("mev-cap-");
    const settled = new Date(Date.now() - 3600_000);
    for (const [i, id] of clips.entries()) {
      const data = clipBytes(400_000 + i * 50_000, id);
      bytes.set(id, data);
      const file = join(work, "camera", id);
      await mkdir(join(file, ".."), { recursive: true });
      await writeFile(file, data);
      await utimes(file, settled, settled);
    }
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it("a capped sync backs every clip up whole; status shows the cap", async () => {
    const cfg = await config("1M");
    const run = await runCli(["sync", "--config", cfg]);
    expect(run.code, run.stderr).toBe(0);
    expect(await walk(join(work, "vault"))).toEqual(clips.map((c) => `${c}.age`).sort());
    for (const id of clips) {
      const plain = await ageCliDecrypt(
        join(work, "vault", `${id}.age`),
        join(work, "state", "identity.txt"),
      );
      expect(sha256(plain), id).toBe(sha256(bytes.get(id) as Buffer));
    }

    const json = await runCli(["status", "--config", cfg, "--json"]);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout).bandwidthLimit).toEqual({
      bytesPerSecond: 1024 * 1024,
      text: "1 MiB/s",
      from: "config",
      configured: "1M",
      nextChange: null,
    });
    const text = await runCli(["status", "--config", cfg]);
    expect(text.stdout).toContain('upload cap:   1 MiB/s (sync.bandwidthLimit "1M")');
  });

  it("shows a timetable's cap in force and when it changes next", async () => {
    // Every half hour of the day in the table: whatever the time, one entry is in force.
    const table = Array.from({ length: 48 }, (_, i) => {
      const hh = String(Math.floor(i / 2)).padStart(2, "0");
      return `${hh}:${i % 2 ? "30" : "00"},${i % 2 ? "off" : "2M"}`;
    }).join(" ");
    const st = JSON.parse(
      (await runCli(["status", "--config", await config(table), "--json"])).stdout,
    ).bandwidthLimit;
    expect(["2 MiB/s", "off"]).toContain(st.text);
    expect(st.configured).toBe(table);
    const next = Date.parse(st.nextChange);
    expect(next).toBeGreaterThan(Date.now() - 60_000);
    expect(next).toBeLessThanOrEqual(Date.now() + 30 * 60_000 + 60_000);
  });

  it("refuses a bad value before doing anything: exit 2, naming the key", async () => {
    const r = await runCli(["sync", "--config", await config("fast")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/config error: sync\.bandwidthLimit: "fast" is not a rate/);
    const t = await runCli(["status", "--config", await config("08:00,1M 25:00,off")]);
    expect(t.code).toBe(2);
    expect(t.stderr).toMatch(
      /sync\.bandwidthLimit: timetable entry "25:00,off": 25:00 is not a time of day/,
    );
  });
});
