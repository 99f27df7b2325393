import type { ChildProcess } from "node:child_process";
import { mkdir, rm, utimes, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { localDate } from "../../src/serve/retention.js";
import { runCli, spawnCli } from "../harness/cli.js";
import { type FakeTelegram, startFakeTelegram } from "../harness/fakeTelegram.js";
import { sha256, tempDir, writeConfig } from "../harness/files.js";
import { pseudoRandomBytes } from "../harness/ftp.js";
import { stopProcess, track } from "../harness/processes.js";
import {
  BOTO3_PYTHON,
  type Boto3Object,
  boto3,
  type S3Server,
  s3Destination,
  startS3Server,
} from "../harness/s3.js";

/**
 * `serve` with an S3 destination: the Telegram bot restores a clip from the bucket (through the
 * fake Bot API of the harness), and retention deletes an old clip's object once the camera no
 * longer has it; boto3 says what the bucket holds.
 */

const TOKEN = "7700112233:AAF-s3-serve-test-token";
const OWNER = 111;
const WAIT = 60_000;

async function until(ok: () => Promise<boolean>, what: string, output: () => string) {
  const deadline = Date.now() + WAIT;
  while (Date.now() < deadline) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}\nserve output:\n${output().slice(-5000)}`);
}

describe.skipIf(!BOTO3_PYTHON)("serve with an S3 vault: Telegram restore, retention", () => {
  let s3: S3Server;
  let tg: FakeTelegram;
  let work: string;
  let serve: ChildProcess | undefined;
  let output = "";

  beforeAll(async () => {
    [s3, tg, work] = await Promise.all([
      startS3Server(),
      startFakeTelegram({ token: TOKEN }),
      tempDir("mev-s3-serve-"),
    ]);
  });
  afterAll(async () => {
    if (serve) await stopProcess(serve);
    await Promise.allSettled([s3?.close(), tg?.stop(), rm(work, { recursive: true, force: true })]);
  });

  it("restores a clip from the bucket to a chat, and retention removes an old object", {
    timeout: 180_000,
  }, async () => {
    const camera = join(work, "camera");
    const old = "Camera1/2024-05-01/10-00-00.mp4";
    const recent = `Camera1/${localDate(new Date())}/10-00-00.mp4`;
    const bytes = new Map<string, Buffer>();
    for (const id of [old, recent]) {
      const data = pseudoRandomBytes(300_000, id);
      bytes.set(id, data);
      await mkdir(dirname(join(camera, id)), { recursive: true });
      await writeFile(join(camera, id), data);
      const settled = new Date(Date.now() - 3600_000);
      await utimes(join(camera, id), settled, settled);
    }
    const cfg = await writeConfig(work, {
      source: { type: "local", path: camera, stableSeconds: 0 },
      destination: s3Destination(s3, { path: "served" }),
      state: { dir: join(work, "state") },
      sync: { retries: 0 },
      schedule: { sync: "" },
      http: { port: 0 },
      mqtt: { embeddedBroker: { enabled: false } },
      // every second (node-schedule takes a seconds field), so the test need not wait
      retention: { remoteDays: 30, schedule: "* * * * * *", dryRun: false },
      telegram: { token: TOKEN, apiRoot: tg.apiRoot, allowedChatIds: [OWNER] },
    });
    serve = track(spawnCli(["serve", "--config", cfg]), { name: "serve" });
    const keep = (d: Buffer) => {
      output += d.toString();
    };
    serve.stdout?.on("data", keep);
    serve.stderr?.on("data", keep);
    const keys = async () =>
      (await boto3<Boto3Object[]>(s3, "list", "served/")).map((o) => o.key).sort();
    const both = [`served/${old}.age`, `served/${recent}.age`].sort();
    await until(
      async () => (await keys()).length === 2,
      "the startup run",
      () => output,
    );
    expect(await keys()).toEqual(both);

    const video = tg.nextCall("sendVideo", (c) => c.params.chat_id === OWNER, WAIT);
    tg.sendText(OWNER, `/restore ${old}`);
    const sent = (await video).files[0];
    expect(sent?.sha256).toBe(sha256(bytes.get(old) as Buffer));

    // The camera still has the old clip: retention keeps it. Once it is gone there, so is the object.
    expect(await keys()).toEqual(both);
    await rm(join(camera, old));
    await until(
      async () => (await keys()).length === 1,
      "retention",
      () => output,
    );
    expect(await keys()).toEqual([`served/${recent}.age`]);

    await stopProcess(serve, 12_000);
    expect(serve.exitCode).toBe(0);
    const listed = JSON.parse((await runCli(["list", "--config", cfg, "--json"])).stdout);
    expect(listed.map((c: { id: string }) => c.id)).toEqual([recent]);
  });
});
