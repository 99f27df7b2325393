/**
 * The SFTP vault over OpenSSH's own `ssh` (`destination.transport: openssh`) against a real
 * sshd: the same guarantees as the ssh2 transport (stores.test.ts), its host key handling, and
 * the config rules that keep secrets off ssh's command line.
 */
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { chmod, copyFile, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PART_PATTERN, type VaultStore } from "../../src/storage/types.js";
import { HostKeyMismatchError, hostKeyFingerprint } from "../../src/storage/vault/sftp/hostKeys.js";
import { sftpVault } from "../../src/storage/vault/sftp/index.js";
import {
  createOpensshVault,
  type OpensshVaultOptions,
} from "../../src/storage/vault/sftp/openssh/opensshVault.js";
import { createSftpVault } from "../../src/storage/vault/sftp/sftpVault.js";
import { runCli } from "../harness/cli.js";
import { sftpDestination } from "../harness/config.js";
import { sha256, tempDir, walk, writeConfig } from "../harness/files.js";
import { clipBytes, pseudoRandomBytes } from "../harness/ftp.js";
import { type FaultProxy, startFaultProxy } from "../harness/proxy.js";
import { type SftpServer, startSftpServer } from "../harness/sshd.js";

const MiB = 1024 * 1024;

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const sha256Hex = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

/** A source that yields `good` bytes, then fails. */
function failingSource(good: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= good) return this.destroy(new Error("camera went away"));
      const n = Math.min(64 * 1024, good - sent);
      sent += n;
      this.push(randomBytes(n));
    },
  });
}

function captureLogger() {
  const lines: Array<{ level: number; msg: string } & Record<string, unknown>> = [];
  const logger = pino({ level: "debug" }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { logger, lines };
}

/** `ssh` processes this test process started (and not yet reaped). */
function sshChildren(): string[] {
  try {
    return execFileSync("ps", ["-o", "pid=,comm=", "--ppid", String(process.pid)], {
      encoding: "utf8",
    })
      .split("\n")
      .filter((l) => /\bssh$/.test(l.trim()));
  } catch {
    return []; // ps exits 1 when there are none
  }
}

describe("SFTP vault over OpenSSH's ssh (transport: openssh)", { timeout: 90_000 }, () => {
  let sshd: SftpServer;
  let state: string;
  const stores: VaultStore[] = [];

  const makeStore = (over: Partial<OpensshVaultOptions> = {}): VaultStore => {
    const store = createOpensshVault({
      host: sshd.host,
      port: sshd.port,
      username: sshd.username,
      privateKeyFile: sshd.privateKeyPath,
      pinned: sshd.hostKeyFingerprint,
      knownHostsFile: join(state, "known_hosts"),
      opensshKnownHostsFile: join(state, "known_hosts.openssh"),
      root: sshd.root,
      timeoutMs: 10_000,
      ...over,
    });
    stores.push(store);
    return store;
  };
  const remoteFiles = () => walk(sshd.root);

  beforeAll(async () => {
    sshd = await startSftpServer();
    state = await tempDir("mev-openssh-state-");
  });
  afterAll(async () => {
    await Promise.allSettled(stores.map((s) => s.close()));
    await sshd?.close();
  });

  it("writes atomically and reads back a few MB: mode 0600, no part file left", async () => {
    const store = makeStore();
    const data = pseudoRandomBytes(6 * MiB + 123, "openssh-roundtrip");
    const chunks = Array.from({ length: Math.ceil(data.length / 65_536) }, (_, i) =>
      data.subarray(i * 65_536, (i + 1) * 65_536),
    );
    const path = "Camera1/2024-05-01/12-00-00.mp4.age";
    expect(await store.put(path, Readable.from(chunks), { expectedSize: data.length })).toEqual({
      size: data.length,
    });
    const st = await stat(join(sshd.root, path));
    expect(st.size).toBe(data.length);
    expect(st.mode & 0o777).toBe(0o600);
    expect(await remoteFiles()).toEqual([path]);
    expect(sha256Hex(await readAll(await store.read(path)))).toBe(sha256Hex(data));
    // A few bytes from inside, and from the end (fewer then).
    await expect((store as Required<VaultStore>).readRange(path, 1000, 64)).resolves.toEqual(
      data.subarray(1000, 1064),
    );
    expect(await (store as Required<VaultStore>).readRange(path, data.length - 10, 64)).toEqual(
      data.subarray(data.length - 10),
    );
    expect(await store.stat(path)).toMatchObject({
      name: "12-00-00.mp4.age",
      kind: "file",
      size: data.length,
    });
    const listed = await store.list("Camera1/2024-05-01");
    expect(listed).toEqual([
      { name: "12-00-00.mp4.age", kind: "file", size: data.length, mtimeMs: expect.any(Number) },
    ]);
    expect(Math.abs((listed[0]?.mtimeMs ?? 0) - Date.now())).toBeLessThan(60_000);
    expect(await store.list("Camera1")).toMatchObject([{ name: "2024-05-01", kind: "dir" }]);
    // The same bytes as the ssh2 transport reads.
    const ssh2 = createSftpVault({
      host: sshd.host,
      port: sshd.port,
      username: sshd.username,
      privateKey: await readFile(sshd.privateKeyPath),
      hostKey: sshd.hostKeyFingerprint,
      knownHostsFile: join(state, "known_hosts"),
      root: sshd.root,
    });
    stores.push(ssh2);
    expect(sha256Hex(await readAll(await ssh2.read(path)))).toBe(sha256Hex(data));
  });

  it("leaves nothing behind when the source fails mid-way, keeping an existing file", async () => {
    const store = makeStore();
    await expect(store.put("Fail/2024-05-02/a.mp4.age", failingSource(3 * MiB))).rejects.toThrow(
      /camera went away/,
    );
    expect((await remoteFiles()).filter((f) => f.startsWith("Fail/"))).toEqual([]);
    await store.put("Fail/2024-05-02/b.mp4.age", Readable.from([Buffer.from("original")]));
    await expect(store.put("Fail/2024-05-02/b.mp4.age", failingSource(MiB))).rejects.toThrow();
    expect((await remoteFiles()).filter((f) => f.startsWith("Fail/"))).toEqual([
      "Fail/2024-05-02/b.mp4.age",
    ]);
    expect((await readAll(await store.read("Fail/2024-05-02/b.mp4.age"))).toString()).toBe(
      "original",
    );
  });

  it("rejects an expectedSize mismatch and removes the part file", async () => {
    const store = makeStore();
    const err = await store
      .put("Size/x.age", Readable.from([Buffer.alloc(1000)]), { expectedSize: 999 })
      .catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/expected 999 bytes, got 1000/);
    expect((err as Error).message).toContain(`127.0.0.1:${sshd.port}`);
    expect((await remoteFiles()).filter((f) => f.startsWith("Size/"))).toEqual([]);
  });

  it("replaces an existing file atomically; removes, twice; absent paths", async () => {
    const store = makeStore();
    await store.put("Replace/a.age", Readable.from([Buffer.from("one")]));
    await store.put("Replace/a.age", Readable.from([Buffer.from("two")]));
    expect(await readFile(join(sshd.root, "Replace/a.age"), "utf8")).toBe("two");
    await store.remove("Replace/a.age");
    await store.remove("Replace/a.age");
    expect((await remoteFiles()).filter((f) => f.startsWith("Replace/"))).toEqual([]);
    expect(await store.list("Nope/2024-01-01")).toEqual([]);
    expect(await store.stat("Nope/x.age")).toBeUndefined();
    const err = await store.read("Nope/x.age").catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).toBe("ENOENT");
    expect((err as Error).message).toContain(`${sshd.root}/Nope/x.age`);
  });

  it("is safe with concurrent calls on one connection", async () => {
    const store = makeStore();
    const items = Array.from({ length: 12 }, (_, i) => ({
      path: `Concurrent/2024-05-03/${i}.age`,
      data: pseudoRandomBytes(200_000 + i * 1000, `oc${i}`),
    }));
    await Promise.all(
      items.map((it) =>
        store.put(it.path, Readable.from([it.data]), { expectedSize: it.data.length }),
      ),
    );
    const back = await Promise.all(
      items.map(async (it) => sha256Hex(await readAll(await store.read(it.path)))),
    );
    expect(back).toEqual(items.map((it) => sha256Hex(it.data)));
    expect((await store.list("Concurrent/2024-05-03")).length).toBe(12);
    expect((await remoteFiles()).some((f) => PART_PATTERN.test(f))).toBe(false);
  });

  describe("through a fault proxy", () => {
    let proxy: FaultProxy;
    beforeAll(async () => {
      proxy = await startFaultProxy({ host: sshd.host, port: sshd.port });
    });
    afterAll(async () => {
      await proxy?.close();
    });
    afterEach(() => {
      proxy.setMode({ kind: "pass" });
    });
    const viaProxy = (over: Partial<OpensshVaultOptions> = {}) =>
      makeStore({ port: proxy.port, ...over });

    it("reconnects after the connection was lost", async () => {
      const store = viaProxy();
      await store.put("Reconnect/a.age", Readable.from([Buffer.from("a")]));
      expect(await store.list("")).not.toEqual([]);
      const before = proxy.stats().connections;
      proxy.dropConnections();
      await new Promise((r) => setTimeout(r, 200));
      expect(await store.list("")).not.toEqual([]);
      // A new connection (the key is known by then: no second scan).
      expect(proxy.stats().connections).toBe(before + 1);
      await store.close();
      await store.close();
      expect(await store.list("")).not.toEqual([]);
    });

    it("cleans up the part file when the connection breaks mid-upload", async () => {
      const store = viaProxy();
      await store.list("");
      proxy.setMode({ kind: "cut", afterBytes: 2 * MiB, direction: "up" });
      const data = pseudoRandomBytes(8 * MiB, "openssh-cut-upload");
      const err = await store
        .put("Cut/2024-05-04/a.age", Readable.from([data]), { expectedSize: data.length })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toContain(`127.0.0.1:${proxy.port}`);
      expect((err as Error).message).toMatch(/Cut\/2024-05-04\/a\.age.*connection lost/);
      expect((await remoteFiles()).filter((f) => f.startsWith("Cut/"))).toEqual([]);
      proxy.setMode({ kind: "pass" });
      await store.put("Cut/2024-05-04/a.age", Readable.from([data]));
      expect(sha256(await readFile(join(sshd.root, "Cut/2024-05-04/a.age")))).toBe(sha256Hex(data));
    });

    it("fails a read stream when the connection breaks, then recovers", async () => {
      const store = viaProxy();
      const data = pseudoRandomBytes(8 * MiB, "openssh-cut-read");
      await store.put("Cut/2024-05-05/r.age", Readable.from([data]));
      proxy.setMode({ kind: "cut", afterBytes: 2 * MiB, direction: "down" });
      const err = await readAll(await store.read("Cut/2024-05-05/r.age")).catch((e: unknown) => e);
      expect((err as Error).message).toMatch(
        new RegExp(`127\\.0\\.0\\.1:${proxy.port}.*read .*r\\.age failed: connection lost`),
      );
      proxy.setMode({ kind: "pass" });
      expect(sha256Hex(await readAll(await store.read("Cut/2024-05-05/r.age")))).toBe(
        sha256Hex(data),
      );
    });

    it("an upload given up on over a silent link drops the ssh child; the next call reconnects", async () => {
      // A long ServerAlive timeout: only the store's own clean-up bound can end this.
      const store = viaProxy({ timeoutMs: 60_000 });
      await store.list("");
      const connections = proxy.stats().connections;
      const moved = () => proxy.stats().bytesUp + proxy.stats().bytesDown;
      const base = moved();
      proxy.setMode({ kind: "stall", afterBytes: 1 * MiB });
      // The watchdog's way of giving up: it destroys the source.
      const source = new Readable({ read() {} });
      const upload = store.put("Stall/a.age", source).catch((e: unknown) => e);
      for (let i = 0; i < 64; i++) source.push(randomBytes(64 * 1024));
      const deadline = Date.now() + 20_000;
      // Both directions count towards the stall: from then on nothing moves.
      while (moved() - base < 1 * MiB && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      source.destroy(new Error("no data moved for 2 s; giving up on this attempt"));
      const err = (await upload) as Error;
      expect(err.message).toMatch(/no data moved for 2 s/);
      proxy.setMode({ kind: "pass" });
      expect(await store.list("")).not.toEqual([]);
      expect(proxy.stats().connections).toBe(connections + 1);
      // The given-up connection's `.part` is what the next sync sweeps. Closed, no store of
      // this file leaves an ssh behind.
      await Promise.all(stores.map((s) => s.close()));
      const until = Date.now() + 10_000;
      while (sshChildren().length > 0 && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(sshChildren()).toEqual([]);
    });
  });
});

describe("openssh transport: host keys", { timeout: 90_000 }, () => {
  let sshd: SftpServer;
  const stores: VaultStore[] = [];
  const makeStore = (state: string, over: Partial<OpensshVaultOptions> = {}): VaultStore => {
    const store = createOpensshVault({
      host: sshd.host,
      port: sshd.port,
      username: sshd.username,
      privateKeyFile: sshd.privateKeyPath,
      pinned: undefined,
      knownHostsFile: join(state, "known_hosts"),
      opensshKnownHostsFile: join(state, "known_hosts.openssh"),
      root: sshd.root,
      timeoutMs: 10_000,
      ...over,
    });
    stores.push(store);
    return store;
  };

  beforeAll(async () => {
    sshd = await startSftpServer();
  });
  afterAll(async () => {
    await Promise.allSettled(stores.map((s) => s.close()));
    await sshd?.close();
  });

  it("connects with the pinned key, filing only that key for ssh", async () => {
    const state = await tempDir("mev-ohk-");
    const store = makeStore(state, { pinned: sshd.hostKeyFingerprint });
    await store.put("pinned.age", Readable.from([Buffer.from("ok")]));
    expect(await readFile(join(sshd.root, "pinned.age"), "utf8")).toBe("ok");
    expect(await walk(state)).toEqual(["known_hosts.openssh"]);
    const filed = await readFile(join(state, "known_hosts.openssh"), "utf8");
    const [, type, blob] = filed.trim().split(" ");
    expect(type).toBe("ssh-ed25519");
    expect(hostKeyFingerprint(Buffer.from(blob ?? "", "base64"))).toBe(sshd.hostKeyFingerprint);
    expect((await stat(join(state, "known_hosts.openssh"))).mode & 0o777).toBe(0o600);
    await store.remove("pinned.age");
  });

  it("refuses a wrong pinned key with HostKeyMismatchError naming both keys, sending nothing", async () => {
    const state = await tempDir("mev-ohk-");
    const wrong = hostKeyFingerprint(randomBytes(51));
    const store = makeStore(state, { pinned: wrong });
    const before = await walk(sshd.root);
    const err = await store
      .put("evil.age", Readable.from([Buffer.from("secret clip")]))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HostKeyMismatchError);
    const e = err as HostKeyMismatchError;
    expect(e.expected).toBe(wrong);
    expect(e.presented).toBe(sshd.hostKeyFingerprint);
    expect(e.message).toContain("destination.hostKey");
    expect(await walk(sshd.root)).toEqual(before);
    await expect(store.list("")).rejects.toBeInstanceOf(HostKeyMismatchError);
    expect(await walk(state)).toEqual([]);
  });

  it("trusts on first use in the record ssh2 keeps too, then enforces it after a key change", async () => {
    const state = await tempDir("mev-ohk-");
    const knownHostsFile = join(state, "known_hosts");
    const { logger, lines } = captureLogger();
    const first = makeStore(state, { logger });
    await first.put("tofu.age", Readable.from([Buffer.from("1")]));
    const original = sshd.hostKeyFingerprint;
    const recorded = await readFile(knownHostsFile, "utf8");
    expect(recorded).toBe(`[127.0.0.1]:${sshd.port} ${original}\n`);
    expect((await stat(knownHostsFile)).mode & 0o777).toBe(0o600);
    expect(lines.find((l) => l.level === 40)?.msg).toContain(
      `trusting new host key ${original} for 127.0.0.1:${sshd.port} (first use)`,
    );

    // ssh2 reads the same record: switching transports keeps the trust, warns nothing.
    const ssh2 = createSftpVault({
      host: sshd.host,
      port: sshd.port,
      username: sshd.username,
      privateKey: await readFile(sshd.privateKeyPath),
      knownHostsFile,
      root: sshd.root,
      logger,
    });
    stores.push(ssh2);
    expect((await ssh2.list("")).map((e) => e.name)).toContain("tofu.age");
    expect(await readFile(knownHostsFile, "utf8")).toBe(recorded);
    expect(lines.filter((l) => l.level === 40)).toHaveLength(1);

    const rotated = await sshd.rotateHostKey();
    await first.close();
    const err = await first.list("").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HostKeyMismatchError);
    expect((err as Error).message).toContain(original);
    expect((err as Error).message).toContain(rotated);
    expect((err as Error).message).toContain(knownHostsFile);
    const before = await walk(sshd.root);
    await expect(
      makeStore(state, { logger }).put("after.age", Readable.from([Buffer.from("x")])),
    ).rejects.toBeInstanceOf(HostKeyMismatchError);
    expect(await walk(sshd.root)).toEqual(before);
    expect(await readFile(knownHostsFile, "utf8")).toBe(recorded);

    const pinned = makeStore(state, { pinned: rotated });
    expect((await pinned.list("")).map((e) => e.name)).toContain("tofu.age");
  });
});

describe("openssh transport: configuration", { timeout: 60_000 }, () => {
  let sshd: SftpServer;
  let work: string;
  beforeAll(async () => {
    sshd = await startSftpServer();
    work = await tempDir("mev-ocfg-");
  });
  afterAll(async () => {
    await sshd?.close();
  });

  it("refuses a password or a passphrase with a config error (exit 2) naming the key", async () => {
    const cfg = await writeConfig(work, {
      destination: sftpDestination(sshd, sshd.root, {
        transport: "openssh",
        password: "hunter2-secret",
        passphrase: "another-secret",
      }),
      state: { dir: join(work, "state") },
    });
    const r = await runCli(["status", "--config", cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /destination\.password: transport openssh logs in with a privateKeyFile/,
    );
    expect(r.stderr).toMatch(/destination\.passphrase: transport openssh/);
    expect(r.stderr).not.toContain("hunter2-secret");
  });

  it("says that OpenSSH refuses a private key others can read, naming the file and the fix", async () => {
    const key = join(work, "loose_key");
    await copyFile(sshd.privateKeyPath, key);
    await chmod(key, 0o644);
    const err = await sftpVault
      .create(
        {
          type: "sftp",
          host: sshd.host,
          port: sshd.port,
          username: sshd.username,
          privateKeyFile: key,
          path: sshd.root,
          timeoutSeconds: 5,
          transport: "openssh",
        },
        { stateDir: work, logger: pino({ level: "silent" }), configPath: "destination" },
      )
      .catch((e: unknown) => e);
    expect((err as Error).message).toBe(
      `destination.privateKeyFile: ${key} is readable by other users (mode 644); OpenSSH refuses such a key: chmod 600 ${key}`,
    );
  });

  it("syncs and restores through the CLI with transport: openssh", async () => {
    const source = join(work, "camera");
    const clip = "Camera1/2024-05-01/12-00-00.mp4";
    // A finished movie, as the completeness check wants it.
    const data = clipBytes(3 * MiB + 5, clip);
    await writeFile(join(work, "clip.bin"), data);
    const { mkdir, utimes } = await import("node:fs/promises");
    await mkdir(join(source, "Camera1/2024-05-01"), { recursive: true });
    await copyFile(join(work, "clip.bin"), join(source, clip));
    const old = new Date(Date.now() - 3600_000);
    await utimes(join(source, clip), old, old);
    const dest = join(sshd.root, "cli");
    const cfg = await writeConfig(work, {
      // Random bytes: not an MP4 the completeness check can read, so no settling wait here.
      source: { type: "local", path: source, stableSeconds: 0 },
      destination: sftpDestination(sshd, dest, { transport: "openssh" }),
      state: { dir: join(work, "state-cli") },
    });
    const synced = await runCli(["sync", "--config", cfg]);
    expect(synced.code, synced.stderr).toBe(0);
    expect(await walk(dest)).toEqual([`${clip}.age`]);
    const out = join(work, "restored");
    const restored = await runCli(["restore", clip, "--config", cfg, "--out", out]);
    expect(restored.code, restored.stderr).toBe(0);
    expect(sha256(await readFile(join(out, clip)))).toBe(sha256Hex(data));
  });
});
