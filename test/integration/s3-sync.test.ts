import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ageCliDecrypt } from "../harness/age.js";
import { runCli, spawnCli } from "../harness/cli.js";
import { tempDir, walk, writeConfig } from "../harness/files.js";
import { type FaultProxy, startFaultProxy } from "../harness/proxy.js";
import { PYTHON } from "../harness/python.js";
import {
  BOTO3_PYTHON,
  type Boto3Object,
  boto3,
  type S3Server,
  s3Destination,
  startS3Server,
} from "../harness/s3.js";

const run = promisify(execFile);

/**
 * The real CLI with an S3 destination (s3rver on loopback), checked the way a user without this
 * program would: boto3 lists and downloads the objects, Debian's `age` decrypts them. Then
 * everything that reads the vault: restore, the shell, verify (and its orphan listing), the
 * legacy import; and what a cut connection and a wrong setting leave behind.
 */

const CLIPS: Array<[string, number]> = [
  ["Camera1/2024-05-01/12-00-00.mp4", 150_000],
  ["Camera1/2024-05-01/12-30-15.mp4", 3_000],
  ["Camera1/2024-05-02/08-00-00.mp4", 12_500_000], // multipart: 5 + 5 + 1.9 MiB
  ["Camera2/2024-05-01/09-00-00.mp4", 20_000],
];

describe.skipIf(!BOTO3_PYTHON)("sync to S3, and everything that reads it back", () => {
  let s3: S3Server;
  let work: string;
  let source: string;
  let identityFile: string;
  const bytes = new Map<string, Buffer>();

  /** A config for a fresh state dir, the vault at `prefix` in the bucket. */
  const config = async (prefix: string, over: Record<string, unknown> = {}) => {
    const dir = await tempDir("mev-s3-cli-");
    return writeConfig(dir, {
      source: { type: "local", path: source, stableSeconds: 0 },
      destination: s3Destination(s3, { path: prefix, ...over }),
      encryption: { identityFile },
      state: { dir: join(dir, "state") },
      sync: { retries: 0 },
    });
  };
  const listed = async (cfg: string) =>
    JSON.parse((await runCli(["list", "--config", cfg, "--json"])).stdout) as Array<{
      id: string;
    }>;
  const objects = (prefix: string) => boto3<Boto3Object[]>(s3, "list", prefix);
  const uploads = (prefix: string) => boto3<unknown[]>(s3, "uploads", prefix);
  const errorLines = (stderr: string) => stderr.split("\n").filter((l) => l.startsWith("error:"));

  beforeAll(async () => {
    [s3, work] = await Promise.all([startS3Server(), tempDir("mev-s3-sync-")]);
    source = join(work, "media");
    identityFile = join(work, "identity.txt");
    const old = new Date("2024-05-04T10:00:00Z");
    for (const [id, size] of CLIPS) {
      const data = randomBytes(size);
      bytes.set(id, data);
      await mkdir(dirname(join(source, id)), { recursive: true });
      await writeFile(join(source, id), data);
      await utimes(join(source, id), old, old);
    }
  });
  afterAll(async () => {
    await Promise.allSettled([s3?.close(), rm(work, { recursive: true, force: true })]);
  });

  it("backs up to <path>/<clip id>.age; boto3 and age get the bytes back; a second run rewrites nothing; restore, shell and verify read it", {
    timeout: 180_000,
  }, async () => {
    const cfg = await config("motioneye");
    const first = await runCli(["sync", "--config", cfg, "--json"]);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ uploaded: CLIPS.length, failed: 0 });

    const stored = await objects("motioneye/");
    expect(stored.map((o) => o.key)).toEqual(CLIPS.map(([id]) => `motioneye/${id}.age`).sort());
    const downloads = await tempDir("mev-s3-boto3-");
    for (const [id] of CLIPS) {
      const file = join(downloads, id.replaceAll("/", "_"));
      await boto3(s3, "get", `motioneye/${id}.age`, file);
      expect((await ageCliDecrypt(file, identityFile)).equals(bytes.get(id) as Buffer), id).toBe(
        true,
      );
    }
    expect(await uploads("motioneye/")).toEqual([]);

    const second = await runCli(["sync", "--config", cfg, "--json"]);
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ uploaded: 0, failed: 0 });
    expect(await objects("motioneye/")).toEqual(stored); // same ETags, same LastModified

    const out = join(work, "restored");
    const restored = await runCli(["restore", "all", "--out", out, "--config", cfg]);
    expect(restored.code, restored.stderr).toBe(0);
    expect(await walk(out)).toEqual(CLIPS.map(([id]) => id).sort());
    for (const [id] of CLIPS) {
      expect((await readFile(join(out, id))).equals(bytes.get(id) as Buffer), id).toBe(true);
    }

    const local = await tempDir("mev-s3-shell-");
    const shell = await runCli(["shell", "--config", cfg], {
      input: `ls\ncd Camera1/2024-05-02\nlcd ${local}\nget 08-00-00.mp4\nexit\n`,
    });
    expect(shell.code, shell.stderr).toBe(0);
    expect(shell.stdout).toMatch(/^ {2}Camera1\/ +3 clip\(s\)/m);
    const got = await readFile(join(local, "08-00-00.mp4"));
    expect(got.equals(bytes.get("Camera1/2024-05-02/08-00-00.mp4") as Buffer)).toBe(true);

    const clean = await runCli(["verify", "--config", cfg]);
    expect(clean.code, clean.stdout).toBe(0);
    expect(clean.stdout).toContain(`checked ${CLIPS.length} clip(s): ${CLIPS.length} ok`);
    // An object nobody recorded, put there by another client: verify lists it as an orphan.
    const orphan = join(downloads, "orphan");
    await writeFile(orphan, "not in the manifest");
    await boto3(s3, "put", "motioneye/Camera2/2024-05-01/10-00-00.mp4.age", orphan);
    const found = await runCli(["verify", "--config", cfg]);
    expect(found.code).toBe(1);
    expect(found.stdout).toContain("ORPHAN   Camera2/2024-05-01/10-00-00.mp4.age");
  });

  it("a connection cut mid-upload leaves no object, no manifest entry and no multipart upload; the next run completes the clip", {
    timeout: 120_000,
  }, async () => {
    const proxy: FaultProxy = await startFaultProxy({ host: s3.host, port: s3.port });
    try {
      const cfg = await config("cut", { endpoint: `http://127.0.0.1:${proxy.port}` });
      const big = "Camera1/2024-05-02/08-00-00.mp4";
      proxy.setMode({ kind: "cut", afterBytes: 3_000_000, direction: "up" });
      const cut = await runCli(["sync", "--config", cfg, "--camera", "Camera1", "--json"]);
      expect(cut.code).toBe(1);
      expect(proxy.stats().cuts).toBeGreaterThanOrEqual(1);
      const keys = (await objects("cut/")).map((o) => o.key);
      expect(keys).not.toContain(`cut/${big}.age`);
      expect((await listed(cfg)).map((c) => c.id)).not.toContain(big);
      expect(await uploads("cut/")).toEqual([]);

      proxy.setMode({ kind: "pass" });
      const again = await runCli(["sync", "--config", cfg, "--camera", "Camera1", "--json"]);
      expect(again.code, again.stderr).toBe(0);
      const file = join(await tempDir("mev-s3-cut-"), "big.age");
      await boto3(s3, "get", `cut/${big}.age`, file);
      expect((await ageCliDecrypt(file, identityFile)).equals(bytes.get(big) as Buffer)).toBe(true);
      expect((await listed(cfg)).map((c) => c.id)).toContain(big);
      expect(await uploads("cut/")).toEqual([]);
    } finally {
      await proxy.close();
    }
  });

  it("a sync killed mid-upload (SIGKILL) leaves no object and no record; the next run completes; its upload is aborted once a day old", {
    timeout: 120_000,
  }, async () => {
    const proxy: FaultProxy = await startFaultProxy({ host: s3.host, port: s3.port });
    try {
      const cfg = await config("sigkill", { endpoint: `http://127.0.0.1:${proxy.port}` });
      const big = "Camera1/2024-05-02/08-00-00.mp4";
      // The upload stalls inside its first parts: the run is caught mid-upload, then killed.
      proxy.setMode({ kind: "stall", afterBytes: 3 * 1024 * 1024 });
      const child = spawnCli(["sync", "--config", cfg, "--date", "2024-05-02"]);
      const started = async () =>
        (await boto3<Array<{ key: string }>>(s3, "uploads", "sigkill/")).length > 0;
      const deadline = Date.now() + 60_000;
      while (!(await started()) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
      }
      child.kill("SIGKILL");
      await new Promise((resolve) => child.once("close", resolve));
      proxy.setMode({ kind: "pass" });
      proxy.dropConnections();
      expect(await objects("sigkill/")).toEqual([]);
      expect(await listed(cfg)).toEqual([]);
      const leftover = await boto3<Array<{ key: string; uploadId: string }>>(
        s3,
        "uploads",
        "sigkill/",
      );
      expect(leftover.map((u) => u.key)).toEqual([`sigkill/${big}.age`]);

      const again = await runCli(["sync", "--config", cfg, "--date", "2024-05-02", "--json"]);
      expect(again.code, again.stderr).toBe(0);
      const file = join(await tempDir("mev-s3-kill-"), "big.age");
      await boto3(s3, "get", `sigkill/${big}.age`, file);
      expect((await ageCliDecrypt(file, identityFile)).equals(bytes.get(big) as Buffer)).toBe(true);
      // Less than a day old, the killed run's upload may be another machine's: it stays...
      expect(await uploads("sigkill/")).toHaveLength(1);
      const when = new Date(Date.now() - 2 * 86_400_000);
      const id = leftover[0]?.uploadId ?? "";
      await utimes(join(s3.dir, s3.bucket, "._S3rver_uploads", id, "key"), when, when);
      // ...until it is over a day old: the next run aborts it.
      const third = await runCli(["sync", "--config", cfg, "--date", "2024-05-02", "--json"]);
      expect(third.code, third.stderr).toBe(0);
      expect(await uploads("sigkill/")).toEqual([]);
    } finally {
      await proxy.close();
    }
  });

  it("a sync aborts the multipart uploads a killed run left over a day ago, and no younger one", {
    timeout: 60_000,
  }, async () => {
    const cfg = await config("killed");
    const left = async (key: string, ageMs: number) => {
      const { uploadId } = await boto3<{ uploadId: string }>(s3, "start-upload", key);
      const when = new Date(Date.now() - ageMs);
      await utimes(join(s3.dir, s3.bucket, "._S3rver_uploads", uploadId, "key"), when, when);
    };
    await left("killed/Camera1/2024-05-01/12-00-00.mp4.age", 2 * 86_400_000);
    await left("killed/Camera1/2024-05-01/12-30-15.mp4.age", 3_600_000);
    const r = await runCli(["sync", "--config", cfg, "--date", "2024-05-02", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const after = await boto3<Array<{ key: string }>>(s3, "uploads", "killed/");
    expect(after.map((u) => u.key)).toEqual(["killed/Camera1/2024-05-01/12-30-15.mp4.age"]);
  });

  it("wrong credentials, a missing bucket, a wrong endpoint: one clear error line, exit 1, nothing recorded", {
    timeout: 120_000,
  }, async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ accessKeyId: "NOT-A-KEY" }, /InvalidAccessKeyId\): check destination\.accessKeyId$/],
      [
        { bucket: "no-such-bucket" },
        /bucket "no-such-bucket" does not exist at http:\/\/127\.0\.0\.1:\d+ \(NoSuchBucket\): create it or fix destination\.bucket$/,
      ],
      [
        { endpoint: "http://127.0.0.1:9" },
        /cannot reach http:\/\/127\.0\.0\.1:9 \(ECONNREFUSED\): check destination\.endpoint and that the server is up$/,
      ],
    ];
    for (const [over, expected] of cases) {
      const cfg = await config("wrong", over);
      const r = await runCli(["sync", "--config", cfg]);
      expect(r.code, r.stderr).toBe(1);
      const lines = errorLines(r.stderr);
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(expected);
      expect(await listed(cfg)).toEqual([]);
    }
    expect(await objects("wrong/")).toEqual([]);
  });

  it("takes credentials from the AWS default chain when the config has none", {
    timeout: 60_000,
  }, async () => {
    const cfg = await config("chain", { accessKeyId: undefined, secretAccessKey: undefined });
    const r = await runCli(["sync", "--config", cfg, "--date", "2024-05-01", "--json"], {
      env: { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey },
    });
    expect(r.code, r.stderr).toBe(0);
    expect((await objects("chain/")).length).toBe(3);
  });

  it.skipIf(!PYTHON)(
    "legacy Fernet files at <path>/<date>/<name> are imported from S3 and restored byte for byte",
    { timeout: 120_000 },
    async () => {
      const dir = await tempDir("mev-s3-legacy-");
      const keyFile = join(dir, "filekey.key");
      const clips: Array<[string, Buffer]> = [
        ["2024-04-30/07-00-00.mp4", randomBytes(100_001)],
        ["2024-04-30/07-30-00.mp4", randomBytes(32)],
      ];
      // The original tool's encryption (Python's cryptography), uploaded by boto3.
      const fernet = `
import sys
from cryptography.fernet import Fernet
key, clip, out = sys.argv[1:4]
try: k = open(key, "rb").read()
except FileNotFoundError:
    k = Fernet.generate_key(); open(key, "wb").write(k)
open(out, "wb").write(Fernet(k).encrypt(open(clip, "rb").read()))
`;
      for (const [id, data] of clips) {
        const plain = join(dir, id.replace("/", "_"));
        await writeFile(plain, data);
        await run(PYTHON as string, ["-c", fernet, keyFile, plain, `${plain}.token`]);
        await boto3(s3, "put", `legacy/${id}`, `${plain}.token`);
      }
      const cfg = await writeConfig(dir, {
        destination: s3Destination(s3, { path: "legacy" }),
        encryption: { identityFile: join(dir, "identity.txt"), fernetKeyFile: keyFile },
        state: { dir: join(dir, "state") },
      });
      const imported = await runCli(["import-legacy", "--config", cfg]);
      expect(imported.code, imported.stderr).toBe(0);
      expect(imported.stdout).toContain("imported 2 legacy clip(s)");
      const out = join(dir, "out");
      const restored = await runCli(["restore", "all", "--out", out, "--config", cfg]);
      expect(restored.code, restored.stderr).toBe(0);
      for (const [id, data] of clips) {
        expect((await readFile(join(out, id))).equals(data), id).toBe(true);
      }
    },
  );
});
