import { execFile, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ageCliDecrypt } from "../harness/age.js";
import { runCli } from "../harness/cli.js";
import { sftpDestination } from "../harness/config.js";
import { tempDir, walk, writeConfig } from "../harness/files.js";
import { type SftpServer, startSftpServer } from "../harness/sshd.js";

const run = promisify(execFile);

/**
 * Restore, end to end against a real OpenSSH sftp server: a vault made by the real `sync` (from a
 * local media root, which keeps it fast), then `restore`, `shell`, `verify`, `decrypt` and
 * `import-legacy` as a user runs them.
 */

const probe = spawnSync("python3", ["-c", "import cryptography.fernet"], { encoding: "utf8" });
const pythonMissing = probe.error !== undefined || probe.status !== 0;
if (pythonMissing) console.warn("SKIPPING the legacy Fernet restore test: no python3-cryptography");

/** The original tool's upload, step for step: filekey.key, the whole clip read, encrypted, written. */
const ORIGINAL_TOOL = `
import os, sys
from cryptography.fernet import Fernet
keyfile, clip, remote = sys.argv[1], sys.argv[2], sys.argv[3]
if not os.path.exists(keyfile):
    with open(keyfile, "wb") as filekey:
        filekey.write(Fernet.generate_key())
with open(keyfile, "rb") as filekey:
    key = filekey.read()
with open(clip, "rb") as file:
    original = file.read()
with open(remote, "wb") as encrypted_file:
    encrypted_file.write(Fernet(key).encrypt(original))
`;

const CLIPS: Array<[string, number]> = [
  ["Camera1/2024-05-01/12-00-00.mp4", 150_000], // three age chunks
  ["Camera1/2024-05-01/12-30-15.mp4", 3_000],
  ["Camera1/2024-05-02/08-00-00.mp4", 70_000],
  ["Camera2/2024-05-01/12-00-00.mp4", 20_000], // same name as Camera1's: the short id is ambiguous
  ["Camera2/2024-05-03/23-59-59.mp4", 5_000],
];
const ids = (pred: (id: string) => boolean = () => true) =>
  CLIPS.map(([id]) => id)
    .filter(pred)
    .sort();

// Each test runs the real CLI several times: generous timeouts for a loaded 2-core machine.
describe("restore from a real sshd vault", { timeout: 120_000 }, () => {
  let sftp: SftpServer;
  let work: string;
  let source: string;
  let vault: string;
  let cfg: string;
  const bytes = new Map<string, Buffer>();

  /** Every restored file has the exact bytes of its clip. */
  const expectRestored = async (out: string, expected: string[]) => {
    expect(await walk(out)).toEqual(expected);
    for (const id of expected) {
      expect((await readFile(join(out, id))).equals(bytes.get(id) as Buffer), id).toBe(true);
    }
  };

  beforeAll(async () => {
    [sftp, work] = await Promise.all([startSftpServer(), tempDir("mev-restore-")]);
    source = join(work, "media");
    vault = join(sftp.root, "motioneye");
    const old = new Date("2024-05-04T10:00:00Z");
    for (const [id, size] of CLIPS) {
      const data = randomBytes(size);
      bytes.set(id, data);
      await mkdir(dirname(join(source, id)), { recursive: true });
      await writeFile(join(source, id), data);
      await utimes(join(source, id), old, old);
    }
    cfg = await writeConfig(work, {
      source: { type: "local", path: source, stableSeconds: 0 },
      destination: sftpDestination(sftp, vault),
      encryption: { identityFile: join(work, "identity.txt") },
      state: { dir: join(work, "state") },
      sync: { retries: 0 },
    });
    const sync = await runCli(["sync", "--config", cfg, "--json"]);
    expect(sync.code, sync.stderr).toBe(0);
    expect(JSON.parse(sync.stdout)).toMatchObject({ uploaded: CLIPS.length, failed: 0 });
  }, 120_000);

  afterAll(async () => {
    await Promise.allSettled([sftp?.close(), rm(work, { recursive: true, force: true })]);
  });

  it("restore all reproduces every clip's bytes in the vault's layout; identical files are skipped, different ones kept unless --force", async () => {
    const out = join(work, "all");
    const first = await runCli(["restore", "all", "--out", out, "--config", cfg]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain(`restored ${CLIPS.length} clip(s)`);
    await expectRestored(out, ids());
    const one = join(out, "Camera1/2024-05-01/12-00-00.mp4");
    expect((await stat(one)).mode & 0o777).toBe(0o600);
    expect((await stat(one)).mtime.toISOString()).toBe("2024-05-04T10:00:00.000Z");

    const before = await stat(one);
    const again = await runCli(["restore", "all", "--out", out, "--config", cfg]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(
      `restored 0 clip(s), 0 B, into ${out}; ${CLIPS.length} already there`,
    );
    expect((await stat(one)).ino).toBe(before.ino);

    await writeFile(one, "edited by someone");
    const clash = await runCli(["restore", "all", "--out", out, "--config", cfg]);
    expect(clash.code).toBe(1);
    expect(clash.stderr).toMatch(
      /Camera1\/2024-05-01\/12-00-00\.mp4: .* already exists and differs/,
    );
    expect(await readFile(one, "utf8")).toBe("edited by someone");
    const forced = await runCli(["restore", "all", "--out", out, "--force", "--config", cfg]);
    expect(forced.code, forced.stderr).toBe(0);
    await expectRestored(out, ids());
  });

  it("restores a day, a range, a camera, one clip by full or short id; refuses bad targets", async () => {
    const cases: Array<[string[], string[]]> = [
      [["2024-05-01"], ids((id) => id.includes("2024-05-01"))],
      [["2024-05-02..2024-05-03"], ids((id) => !id.includes("2024-05-01"))],
      [["all", "--camera", "Camera2"], ids((id) => id.startsWith("Camera2/"))],
      [["Camera1/2024-05-02/08-00-00.mp4"], ["Camera1/2024-05-02/08-00-00.mp4"]],
      [["2024-05-03/23-59-59.mp4"], ["Camera2/2024-05-03/23-59-59.mp4"]],
    ];
    for (const [args, expected] of cases) {
      const out = await tempDir("mev-restore-out-");
      const r = await runCli(["restore", ...args, "--out", out, "--config", cfg]);
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(0);
      await expectRestored(out, expected);
      await rm(out, { recursive: true, force: true });
    }

    const ambiguous = await runCli(["restore", "2024-05-01/12-00-00.mp4", "--config", cfg]);
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.stderr).toContain(
      "Camera1/2024-05-01/12-00-00.mp4, Camera2/2024-05-01/12-00-00.mp4",
    );
    const unknown = await runCli(["restore", "Camera1/2024-05-01/00-00-00.mp4", "--config", cfg]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/not in the vault/);
    for (const bad of ["2024-13-01", "2024-05-03..2024-05-01", "../../etc/passwd"]) {
      const r = await runCli(["restore", bad, "--config", cfg]);
      expect(r.code, bad).toBe(2);
    }
  });

  it("the shell, driven through a pipe, restores clips with get and mget, without prompts", async () => {
    const local = await tempDir("mev-shell-");
    const script = [
      "ls",
      "cd Camera1/2024-05-01",
      "pwd",
      "ls",
      `lcd ${local}`,
      "get 12-30-15.mp4",
      "cd /",
      "mget Camera2/2024-05-0[13]",
      "info Camera1/2024-05-02/08-00-00.mp4",
      "exit",
      "ls",
    ].join("\n");
    const r = await runCli(["shell", "--config", cfg], { input: `${script}\n` });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).not.toContain("vault:/");
    expect(r.stdout).toMatch(/^ {2}Camera1\/ +3 clip\(s\)/m);
    expect(r.stdout).toContain("/Camera1/2024-05-01\n");
    expect(r.stdout).toMatch(/^ {2}12-30-15\.mp4 +2\.9 KiB {2}2024-05-01 12:30:15$/m);
    expect(r.stdout).toMatch(/sha256 +[0-9a-f]{64}/);
    expect(await walk(local)).toEqual([
      "12-30-15.mp4",
      "Camera2/2024-05-01/12-00-00.mp4",
      "Camera2/2024-05-03/23-59-59.mp4",
    ]);
    const same = (file: string, id: string) =>
      readFile(join(local, file)).then((b) => b.equals(bytes.get(id) as Buffer));
    expect(await same("12-30-15.mp4", "Camera1/2024-05-01/12-30-15.mp4")).toBe(true);
    expect(await same("Camera2/2024-05-01/12-00-00.mp4", "Camera2/2024-05-01/12-00-00.mp4")).toBe(
      true,
    );

    const failing = await runCli(["shell", "--config", cfg], {
      input: "get nope.mp4\nfrobnicate\n",
    });
    expect(failing.code).toBe(1);
    expect(failing.stderr).toContain("get: nope.mp4: no such clip");
    expect(failing.stderr).toContain('unknown command "frobnicate"');
  });

  it("decrypt turns a local copy of an age file back into the clip", async () => {
    const dir = await tempDir("mev-decrypt-");
    const copy = join(dir, "12-30-15.mp4.age");
    await copyFile(join(vault, "Camera1/2024-05-01/12-30-15.mp4.age"), copy);
    const r = await runCli(["decrypt", copy, "--config", cfg]);
    expect(r.code, r.stderr).toBe(0);
    expect(
      (await readFile(join(dir, "12-30-15.mp4"))).equals(
        bytes.get("Camera1/2024-05-01/12-30-15.mp4") as Buffer,
      ),
    ).toBe(true);
    const again = await runCli(["decrypt", copy, "--config", cfg]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists \(--force overwrites it\)/);
    await writeFile(join(dir, "plain.txt"), "hello");
    const unknown = await runCli(["decrypt", join(dir, "plain.txt"), "--config", cfg]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/neither an age file .* nor a Fernet token/);
  });

  it("a wrong identity fails clearly, naming the clip, and leaves no file", async () => {
    const dir = await tempDir("mev-wrong-id-");
    const other = join(dir, "other-identity.txt");
    await run("age-keygen", ["-o", other]);
    const wrongCfg = await writeConfig(dir, {
      destination: sftpDestination(sftp, vault),
      encryption: { identityFile: other },
      state: { dir: join(work, "state") },
    });
    const out = join(dir, "out");
    const r = await runCli([
      "restore",
      "Camera1/2024-05-02/08-00-00.mp4",
      "--out",
      out,
      "--config",
      wrongCfg,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `failed: Camera1/2024-05-02/08-00-00.mp4: cannot decrypt it with the age identity ${other}: the clip was encrypted to another key`,
    );
    expect(await walk(out)).toEqual([]);
  });

  it("a flipped byte fails restore and verify, naming the clip; verify also reports missing, orphaned and stray files", async () => {
    const id = "Camera1/2024-05-01/12-00-00.mp4";
    const remote = join(vault, `${id}.age`);
    const original = await readFile(remote);
    const missingId = "Camera1/2024-05-02/08-00-00.mp4";
    const missingRemote = join(vault, `${missingId}.age`);
    const missingOriginal = await readFile(missingRemote);
    const orphan = join(vault, "Camera1/2024-05-01/13-00-00.mp4.age");
    const stray = join(vault, "Camera1/2024-05-01/14-00-00.mp4.age.part-0a1b2c");
    try {
      const tampered = Buffer.from(original);
      tampered[100_000] = (tampered[100_000] as number) ^ 0x01;
      await writeFile(remote, tampered);

      const out = join(work, "tampered");
      const one = await runCli(["restore", id, "--out", out, "--config", cfg]);
      expect(one.code).toBe(1);
      expect(one.stderr).toMatch(
        new RegExp(
          `failed: ${id}: the backup is damaged or was altered \\(age payload: chunk 1 failed authentication`,
        ),
      );
      expect(await walk(out)).toEqual([]);

      const day = await runCli(["restore", "2024-05-01", "--out", out, "--config", cfg]);
      expect(day.code).toBe(1);
      expect(day.stdout).toContain("restored 2 clip(s)");
      await expectRestored(
        out,
        ids((i) => i.includes("2024-05-01") && i !== id),
      );

      await rm(missingRemote);
      await writeFile(orphan, "not in the manifest");
      await writeFile(stray, "half an upload");
      const verify = await runCli(["verify", "--config", cfg]);
      expect(verify.code).toBe(1);
      expect(verify.stdout).toContain(`CORRUPT  ${id}: the backup is damaged or was altered`);
      expect(verify.stdout).toContain(`MISSING  ${missingId}`);
      expect(verify.stdout).toContain("ORPHAN   Camera1/2024-05-01/13-00-00.mp4.age");
      expect(verify.stdout).toContain("STRAY    Camera1/2024-05-01/14-00-00.mp4.age.part-0a1b2c");
      expect(verify.stdout).toContain(
        `checked ${CLIPS.length} clip(s): 3 ok, 1 missing, 1 corrupt, 0 could not be checked; 1 orphaned file(s), 1 stray temp file(s)`,
      );
      const clean = await runCli(["verify", "--date", "2024-05-03", "--config", cfg]);
      expect(clean.code, clean.stdout).toBe(0);
    } finally {
      await writeFile(remote, original);
      await writeFile(missingRemote, missingOriginal);
      await rm(orphan, { force: true });
    }
    const after = await runCli(["verify", "--sample", "2", "--config", cfg]);
    expect(after.code, after.stdout).toBe(0);
    expect(after.stdout).toContain("checked 2 clip(s): 2 ok");
    expect(after.stdout).toContain("1 stray temp file(s)");
    await rm(stray);
  });

  it.skipIf(pythonMissing)(
    "legacy: a Fernet file made by Python's cryptography is imported, restored byte for byte, decrypted, and re-encrypted as age",
    async () => {
      const dir = await tempDir("mev-legacy-");
      const legacyVault = join(sftp.root, "legacy");
      const keyFile = join(dir, "filekey.key");
      const clips: Array<[string, Buffer]> = [
        ["2024-04-30/07-00-00.mp4", randomBytes(100_001)],
        ["2024-04-30/07-30-00.mp4", randomBytes(32)],
      ];
      for (const [id, data] of clips) {
        const plain = join(dir, id.replace("/", "_"));
        await writeFile(plain, data);
        await mkdir(dirname(join(legacyVault, id)), { recursive: true });
        await run("python3", ["-c", ORIGINAL_TOOL, keyFile, plain, join(legacyVault, id)]);
      }
      await writeFile(join(legacyVault, "2024-04-30/notes.txt"), "not a clip");
      const legacyCfg = await writeConfig(dir, {
        destination: sftpDestination(sftp, legacyVault),
        encryption: { identityFile: join(dir, "identity.txt"), fernetKeyFile: keyFile },
        state: { dir: join(dir, "state") },
      });
      const cli = (...args: string[]) => runCli([...args, "--config", legacyCfg]);

      const imported = await cli("import-legacy");
      expect(imported.code, imported.stderr).toBe(0);
      expect(imported.stdout).toContain("imported 2 legacy clip(s)");
      const listed = JSON.parse((await cli("list", "--json")).stdout) as Array<{
        id: string;
        format: string;
      }>;
      expect(listed.map((c) => [c.id, c.format])).toEqual(clips.map(([id]) => [id, "fernet"]));

      const out = join(dir, "out");
      const restored = await cli("restore", "all", "--out", out);
      expect(restored.code, restored.stderr).toBe(0);
      expect(await walk(out)).toEqual(clips.map(([id]) => id));
      for (const [id, data] of clips)
        expect((await readFile(join(out, id))).equals(data)).toBe(true);

      const plainOut = join(dir, "decrypted.mp4");
      const decrypted = await cli(
        "decrypt",
        join(legacyVault, clips[0]?.[0] ?? ""),
        "--out",
        plainOut,
      );
      expect(decrypted.code, decrypted.stderr).toBe(0);
      expect((await readFile(plainOut)).equals(clips[0]?.[1] as Buffer)).toBe(true);

      const verified = await cli("verify");
      expect(verified.code, verified.stdout).toBe(0);
      expect(verified.stdout).toContain("2 legacy clip(s) authenticated by their HMAC");

      const reencrypted = await cli("import-legacy", "--reencrypt");
      expect(reencrypted.code, reencrypted.stderr).toBe(0);
      expect(reencrypted.stdout).toContain("2 re-encrypted as age");
      expect(await walk(legacyVault)).toEqual(
        [...clips.map(([id]) => `${id}.age`), "2024-04-30/notes.txt"].sort(),
      );
      for (const [id, data] of clips) {
        expect(
          (await ageCliDecrypt(join(legacyVault, `${id}.age`), join(dir, "identity.txt"))).equals(
            data,
          ),
        ).toBe(true);
      }
      const again = await cli("restore", "all", "--out", join(dir, "out2"));
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout).toContain("sha256 verified");
      for (const [id, data] of clips) {
        expect((await readFile(join(dir, "out2", id))).equals(data)).toBe(true);
      }
      const clean = await cli("verify");
      expect(clean.code, clean.stdout).toBe(0);
      expect(clean.stdout).toContain(`checked 2 clip(s): 2 ok`);
    },
  );

  it.skipIf(pythonMissing)(
    "a tampered or wrongly keyed legacy file fails clearly and leaves nothing",
    async () => {
      const dir = await tempDir("mev-legacy-bad-");
      const legacyVault = join(sftp.root, "legacy-bad");
      const keyFile = join(dir, "filekey.key");
      const id = "2024-04-29/06-00-00.mp4";
      const plain = join(dir, "clip.mp4");
      await writeFile(plain, randomBytes(5000));
      await mkdir(join(legacyVault, "2024-04-29"), { recursive: true });
      await run("python3", ["-c", ORIGINAL_TOOL, keyFile, plain, join(legacyVault, id)]);
      const token = await readFile(join(legacyVault, id), "latin1");
      // One base64 character changed in the middle of the ciphertext.
      const i = 2000;
      await writeFile(
        join(legacyVault, id),
        token.slice(0, i) + (token[i] === "A" ? "B" : "A") + token.slice(i + 1),
      );
      const legacyCfg = await writeConfig(dir, {
        destination: sftpDestination(sftp, legacyVault),
        encryption: { identityFile: join(dir, "identity.txt"), fernetKeyFile: keyFile },
        state: { dir: join(dir, "state") },
      });
      expect((await runCli(["import-legacy", "--config", legacyCfg])).code).toBe(0);
      const out = join(dir, "out");
      const r = await runCli(["restore", id, "--out", out, "--config", legacyCfg]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`failed: ${id}: the legacy Fernet token's HMAC does not match`);
      expect(await walk(out)).toEqual([]);
      const v = await runCli(["verify", "--config", legacyCfg]);
      expect(v.code).toBe(1);
      expect(v.stdout).toContain(`CORRUPT  ${id}: the legacy Fernet token's HMAC does not match`);
    },
  );
});
