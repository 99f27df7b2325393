/**
 * The FTP source and the SFTP vault against real servers: vsftpd (LIST without MLSD, like many cameras)
 * and a private OpenSSH sshd with internal-sftp, both on loopback (see test/harness/).
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, readFileSync } from "node:fs";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { createFtpSource, type FtpSourceOptions } from "../../src/storage/source/ftp/ftpSource.js";
import { parseListTime } from "../../src/storage/source/ftp/listTime.js";
import { PART_PATTERN, type Source, type VaultStore } from "../../src/storage/types.js";
import { HostKeyMismatchError, hostKeyFingerprint } from "../../src/storage/vault/sftp/hostKeys.js";
import { createSftpVault, type SftpVaultOptions } from "../../src/storage/vault/sftp/sftpVault.js";
import { sha256, tempDir, walk } from "../harness/files.js";
import { type FtpServer, pseudoRandomBytes, startFtpServer } from "../harness/ftp.js";
import { type FaultProxy, startFaultProxy } from "../harness/proxy.js";
import { type SftpServer, startSftpServer } from "../harness/sshd.js";

const MiB = 1024 * 1024;

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** A source that yields `good` bytes, then fails. */
function failingSource(good: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= good) {
        this.destroy(new Error("camera went away"));
        return;
      }
      const n = Math.min(64 * 1024, good - sent);
      sent += n;
      this.push(randomBytes(n));
    },
  });
}

/** A pino logger whose lines are kept for assertions. */
function captureLogger() {
  const lines: Array<{ level: number; msg: string } & Record<string, unknown>> = [];
  const logger = pino({ level: "debug" }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { logger, lines };
}

function isoDate(d: Date): string {
  return d.toISOString().slice(0, 10);
}

/** Nothing the stores do may reach stdout (`--json` output lives there). */
function watchStdout() {
  const spies = [
    vi.spyOn(process.stdout, "write"),
    vi.spyOn(console, "log"),
    vi.spyOn(console, "info"),
    vi.spyOn(console, "warn"),
    vi.spyOn(console, "error"),
    vi.spyOn(console, "debug"),
  ];
  return {
    calls: () => spies.flatMap((s) => s.mock.calls.map((c) => String(c[0]))),
    restore: () => {
      for (const s of spies) s.mockRestore();
    },
  };
}

describe("parseListTime", () => {
  const now = Date.UTC(2026, 0, 10, 12, 0, 0);
  it("reads the recent, old and numeric LIST forms as UTC", () => {
    expect(parseListTime("Jan 10 11:58", now)).toEqual({
      ms: Date.UTC(2026, 0, 10, 11, 58),
      hasTime: true,
    });
    // a recent-form date in December is last year's when it is January now
    expect(parseListTime("Dec 31 23:59", now)?.ms).toBe(Date.UTC(2025, 11, 31, 23, 59));
    expect(parseListTime("May  1  2024", now)).toEqual({
      ms: Date.UTC(2024, 4, 1),
      hasTime: false,
    });
    expect(parseListTime("2024-05-01 12:07", now)?.ms).toBe(Date.UTC(2024, 4, 1, 12, 7));
    expect(parseListTime("1 May 12:00", now)?.ms).toBe(Date.UTC(2025, 4, 1, 12, 0));
    expect(parseListTime("yesterday", now)).toBeUndefined();
  });
});

describe("FTP source (vsftpd, LIST + MDTM)", { timeout: 60_000 }, () => {
  let ftp: FtpServer;
  const stores: Source[] = [];
  let stdout: ReturnType<typeof watchStdout>;
  const now = new Date();
  // whole seconds, not on a minute boundary: LIST alone would lose the seconds
  const recentTime = new Date(Math.floor(now.getTime() / 60_000) * 60_000 - 20 * 60_000 + 37_000);
  const today = isoDate(recentTime);
  const monthsAgo = new Date(Math.floor(now.getTime() / 1000) * 1000 - 90 * 86_400_000 + 23_000);
  const oldTime = new Date("2024-05-01T12:00:07Z");
  const clips: Record<string, Awaited<ReturnType<FtpServer["writeClip"]>>> = {};

  const makeStore = (over: Partial<FtpSourceOptions> = {}): Source => {
    const store = createFtpSource({
      host: ftp.host,
      port: ftp.port,
      user: ftp.user,
      password: ftp.password,
      secure: false,
      root: ftp.path,
      timeoutMs: 10_000,
      ...over,
    });
    stores.push(store);
    return store;
  };

  beforeAll(async () => {
    ftp = await startFtpServer();
    const w = async (rel: string, content: number | string, mtime: Date) => {
      clips[rel] = await ftp.writeClip(rel, content, mtime);
    };
    await w("Camera1/2024-05-01/12-00-00.mp4", 3000, oldTime);
    await w("Camera1/2024-05-01/12-00-00.mp4.thumb", 200, oldTime);
    await w(`Camera1/${isoDate(monthsAgo)}/08-15-00.mp4`, 1234, monthsAgo);
    await w(`Camera1/${today}/recent.mp4`, 2.5 * MiB, recentTime);
    await w(`Camera1/${today}/recent.mp4.thumb`, 512, recentTime);
    await w(`Camera2/${today}/big.mp4`, 24 * MiB, recentTime);
    await w("Camera 3/2024-05-01/with space.mp4", "hello", oldTime);
  });

  afterAll(async () => {
    await Promise.allSettled(stores.map((s) => s.close()));
    await ftp?.close();
  });

  beforeEach(() => {
    stdout = watchStdout();
  });
  afterEach(() => {
    const calls = stdout.calls();
    stdout.restore();
    expect(calls).toEqual([]);
  });

  it("describes itself without the password", () => {
    const store = makeStore();
    expect(store.description).toBe(`ftp://${ftp.user}@127.0.0.1:${ftp.port}/sdcard`);
    expect(store.description).not.toContain(ftp.password);
  });

  it("lists a motionEye-like tree with kinds and sizes", async () => {
    const store = makeStore();
    const top = await store.list("");
    expect(top.map((e) => [e.name, e.kind]).sort()).toEqual([
      ["Camera 3", "dir"],
      ["Camera1", "dir"],
      ["Camera2", "dir"],
    ]);
    const days = await store.list("Camera1");
    expect(days.map((e) => e.name).sort()).toEqual(
      ["2024-05-01", isoDate(monthsAgo), today].sort(),
    );
    expect(days.every((e) => e.kind === "dir")).toBe(true);

    const old = await store.list("Camera1/2024-05-01");
    expect(old.map((e) => [e.name, e.kind, e.size]).sort()).toEqual([
      ["12-00-00.mp4", "file", 3000],
      ["12-00-00.mp4.thumb", "file", 200],
    ]);
    const spaced = await store.list("Camera 3/2024-05-01");
    expect(spaced.map((e) => [e.name, e.size])).toEqual([["with space.mp4", 5]]);
  });

  it("gives exact (second) mtimes for recent files, LIST times for old ones", async () => {
    const store = makeStore();
    const recent = await store.list(`Camera1/${today}`);
    const byName = new Map(recent.map((e) => [e.name, e]));
    expect(byName.get("recent.mp4")?.mtimeMs).toBe(recentTime.getTime());
    expect(byName.get("recent.mp4.thumb")?.mtimeMs).toBe(recentTime.getTime());
    expect(byName.get("recent.mp4")?.size).toBe(2.5 * MiB);

    // three months old: LIST has "MMM dd HH:mm", minute precision is all it needs
    const [mid] = await store.list(`Camera1/${isoDate(monthsAgo)}`);
    expect(mid?.mtimeMs).toBe(Math.floor(monthsAgo.getTime() / 60_000) * 60_000);
    // over six months: LIST has only the day
    const [old] = await store.list("Camera1/2024-05-01");
    expect(old?.mtimeMs).toBe(Date.UTC(2024, 4, 1));
  });

  it("asks MDTM only for recent files, not for a folder full of old clips", async () => {
    const day = isoDate(monthsAgo);
    for (let i = 0; i < 40; i++) {
      const t = new Date(monthsAgo.getTime() + i * 60_000);
      await ftp.writeClip(`Camera4/${day}/old-${String(i).padStart(2, "0")}.mp4`, 10, t);
    }
    await ftp.writeClip(`Camera4/${day}/fresh-1.mp4`, 10, recentTime);
    await ftp.writeClip(`Camera4/${day}/fresh-2.mp4`, 10, recentTime);
    const store = makeStore();
    const before = (await readFile(ftp.logFile, "utf8")).split("\n").length;
    const entries = await store.list(`Camera4/${day}`);
    expect(entries).toHaveLength(42);
    const log = (await readFile(ftp.logFile, "utf8")).split("\n").slice(before - 1);
    const mdtms = log.filter((l) => /"MDTM /.test(l));
    expect(mdtms).toHaveLength(2);
    expect(mdtms.every((l) => l.includes("fresh-"))).toBe(true);
  });

  it("lists an absent directory as empty", async () => {
    const store = makeStore();
    expect(await store.list("NoSuchCamera")).toEqual([]);
    expect(await store.list("Camera1/1999-01-01")).toEqual([]);
  });

  it("stats files, directories and absent paths", async () => {
    const store = makeStore();
    expect(await store.stat(`Camera1/${today}/recent.mp4`)).toEqual({
      name: "recent.mp4",
      kind: "file",
      size: 2.5 * MiB,
      mtimeMs: recentTime.getTime(),
    });
    expect(await store.stat("Camera1")).toMatchObject({ name: "Camera1", kind: "dir" });
    expect(await store.stat("Camera1/nope.mp4")).toBeUndefined();
  });

  it("streams the exact bytes", async () => {
    const store = makeStore();
    const clip = clips[`Camera1/${today}/recent.mp4`];
    const data = await readAll(await store.read(`Camera1/${today}/recent.mp4`));
    expect(data.length).toBe(clip?.size);
    expect(sha256Hex(data)).toBe(clip?.sha256);
    expect((await readAll(await store.read("Camera 3/2024-05-01/with space.mp4"))).toString()).toBe(
      "hello",
    );
  });

  it("reads byte ranges (REST) and keeps its one control connection for the next command", async () => {
    const store = makeStore({ maxConnections: 1 });
    const rel = `Camera2/${today}/big.mp4`;
    const local = await readFile(join(ftp.localRoot, rel));
    const logins = async () =>
      (await readFile(ftp.logFile, "utf8")).split("\n").filter((l) => /OK LOGIN/.test(l)).length;
    expect((await store.stat(rel))?.size).toBe(local.length);
    const loginsBefore = await logins();
    expect(loginsBefore).toBeGreaterThan(0); // the log does show logins

    const ranges: Array<[number, number]> = [
      [0, 16],
      [40, 8],
      [12 * MiB + 5, 512],
      [local.length - 100, 512], // runs past the end: the last 100 bytes
      [local.length, 16], // at the end: nothing
      [local.length + 1000, 16],
    ];
    for (let round = 0; round < 3; round++) {
      for (const [offset, length] of ranges) {
        const got = await store.readRange(rel, offset, length);
        expect(got.equals(local.subarray(offset, offset + length)), `${offset}+${length}`).toBe(
          true,
        );
      }
    }
    // 18 ranged reads of a 24 MiB file cut short, then the same session lists and streams
    expect((await store.list(`Camera2/${today}`)).map((e) => e.name)).toEqual(["big.mp4"]);
    const small = clips[`Camera1/${today}/recent.mp4`];
    expect(sha256Hex(await readAll(await store.read(`Camera1/${today}/recent.mp4`)))).toBe(
      small?.sha256,
    );
    expect(await logins()).toBe(loginsBefore);
  });

  it("fails a ranged read of an absent file naming it, and rejects bad ranges", async () => {
    const store = makeStore({ maxConnections: 1 });
    const err = await store
      .readRange("Camera1/2024-05-01/missing.mp4", 0, 16)
      .catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).toBe("ENOENT");
    expect((err as Error).message).toContain("/sdcard/Camera1/2024-05-01/missing.mp4");
    await expect(store.readRange("Camera1/2024-05-01/12-00-00.mp4", -1, 16)).rejects.toThrow(
      /offset/,
    );
    await expect(store.readRange("Camera1/2024-05-01/12-00-00.mp4", 0, 64 * MiB)).rejects.toThrow(
      /length/,
    );
    const head = await store.readRange("Camera1/2024-05-01/12-00-00.mp4", 0, 4);
    expect(
      head.equals(
        (await readFile(clips["Camera1/2024-05-01/12-00-00.mp4"]?.localPath ?? "")).subarray(0, 4),
      ),
    ).toBe(true);
  });

  it("serves concurrent reads through a small pool", async () => {
    const store = makeStore({ maxConnections: 2 });
    const clip = clips[`Camera1/${today}/recent.mp4`];
    const results = await Promise.all(
      Array.from({ length: 5 }, async () =>
        sha256Hex(await readAll(await store.read(`Camera1/${today}/recent.mp4`))),
      ),
    );
    expect(results).toEqual(Array(5).fill(clip?.sha256));
  });

  it("stays usable after a read stream is destroyed mid-way", async () => {
    const store = makeStore({ maxConnections: 1 });
    const big = clips[`Camera2/${today}/big.mp4`];
    const stream = await store.read(`Camera2/${today}/big.mp4`);
    let got = 0;
    for await (const chunk of stream) {
      got += (chunk as Buffer).length;
      if (got >= 1 * MiB) break; // for-await's break destroys the stream
    }
    expect(stream.destroyed).toBe(true);
    expect(got).toBeLessThan(big?.size ?? 0);
    // the only pooled connection was busy with that transfer: it must be usable again
    expect((await store.list(`Camera2/${today}`)).map((e) => e.name)).toEqual(["big.mp4"]);
    const again = await readAll(await store.read(`Camera2/${today}/big.mp4`));
    expect(sha256Hex(again)).toBe(big?.sha256);
  });

  it("fails a read of an absent file up front, naming server and path, and recovers", async () => {
    const store = makeStore({ maxConnections: 1 });
    const err = await store.read("Camera1/2024-05-01/missing.mp4").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain(`127.0.0.1:${ftp.port}`);
    expect((err as Error).message).toContain("/sdcard/Camera1/2024-05-01/missing.mp4");
    expect((err as NodeJS.ErrnoException).code).toBe("ENOENT");
    expect(await store.stat("Camera1/2024-05-01/12-00-00.mp4")).toMatchObject({ size: 3000 });
  });

  it("reports a bad login without the password", async () => {
    const password = "wrong-password-4711";
    const store = makeStore({ password });
    const err = await store.list("").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    const msg = (err as Error).message;
    expect(msg).toContain(`127.0.0.1:${ftp.port}`);
    expect(msg).toMatch(/530|login/i);
    expect(msg).not.toContain(password);
    expect(msg).not.toContain(ftp.password);
  });

  it("reconnects after the server restarted", async () => {
    const store = makeStore({ maxConnections: 1 });
    expect(await store.list("Camera2")).toHaveLength(1);
    await ftp.stop();
    await ftp.start();
    expect(await store.list("Camera2")).toHaveLength(1);
    await store.close();
    await store.close();
  });
});

describe("SFTP vault (OpenSSH internal-sftp)", { timeout: 60_000 }, () => {
  let sshd: SftpServer;
  let state: string;
  let privateKey: Buffer;
  const stores: VaultStore[] = [];
  let stdout: ReturnType<typeof watchStdout>;

  const makeStore = (over: Partial<SftpVaultOptions> = {}) => {
    const store = createSftpVault({
      host: sshd.host,
      port: sshd.port,
      username: sshd.username,
      privateKey,
      hostKey: sshd.hostKeyFingerprint,
      knownHostsFile: join(state, "known_hosts"),
      root: sshd.root,
      timeoutMs: 10_000,
      ...over,
    });
    stores.push(store);
    return store;
  };

  beforeAll(async () => {
    sshd = await startSftpServer();
    state = await tempDir("mev-sftp-state-");
    privateKey = readFileSync(sshd.privateKeyPath);
  });
  afterAll(async () => {
    await Promise.allSettled(stores.map((s) => s.close()));
    await sshd?.close();
  });
  beforeEach(() => {
    stdout = watchStdout();
  });
  afterEach(() => {
    const calls = stdout.calls();
    stdout.restore();
    expect(calls).toEqual([]);
  });

  const remoteFiles = () => walk(sshd.root);

  it("describes itself without secrets", () => {
    const store = makeStore();
    expect(store.description).toBe(`sftp://${sshd.username}@127.0.0.1:${sshd.port}${sshd.root}`);
  });

  it("writes atomically and reads back a few MB, files mode 0600, no part file left", async () => {
    const store = makeStore();
    const data = pseudoRandomBytes(6 * MiB + 123, "sftp-roundtrip");
    const chunks = Array.from({ length: Math.ceil(data.length / 65_536) }, (_, i) =>
      data.subarray(i * 65_536, (i + 1) * 65_536),
    );
    const result = await store.put("Camera1/2024-05-01/12-00-00.mp4.age", Readable.from(chunks), {
      expectedSize: data.length,
    });
    expect(result).toEqual({ size: data.length });

    const local = join(sshd.root, "Camera1/2024-05-01/12-00-00.mp4.age");
    const st = await stat(local);
    expect(st.size).toBe(data.length);
    expect(st.mode & 0o777).toBe(0o600);
    expect(await remoteFiles()).toEqual(["Camera1/2024-05-01/12-00-00.mp4.age"]);

    const back = await readAll(await store.read("Camera1/2024-05-01/12-00-00.mp4.age"));
    expect(sha256Hex(back)).toBe(sha256Hex(data));

    expect(await store.stat("Camera1/2024-05-01/12-00-00.mp4.age")).toMatchObject({
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
  });

  it("reads byte ranges without reading the rest of the file", async () => {
    const store = makeStore();
    const data = pseudoRandomBytes(3 * MiB + 17, "sftp-range");
    await store.put("Range/r.bin", Readable.from([data]));
    for (const [offset, length] of [
      [0, 16],
      [MiB + 3, 100_000], // more than one SFTP read request
      [data.length - 10, 512],
      [data.length, 16],
      [data.length + 5, 16],
    ] as const) {
      const got = await store.readRange("Range/r.bin", offset, length);
      expect(got.equals(data.subarray(offset, offset + length)), `${offset}+${length}`).toBe(true);
    }
    const err = await store.readRange("Range/none.bin", 0, 8).catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).toBe("ENOENT");
    expect((err as Error).message).toContain(`${sshd.root}/Range/none.bin`);
  });

  it("discards a finished upload when beforeCommit refuses it, keeping the old file", async () => {
    const store = makeStore();
    await store.put("Commit/a.age", Readable.from([Buffer.from("old")]));
    const err = await store
      .put("Commit/a.age", Readable.from([Buffer.from("new bytes")]), {
        expectedSize: 9,
        beforeCommit: async () => {
          // the upload is complete under its temporary name when this runs
          const parts = (await remoteFiles()).filter((f) => PART_PATTERN.test(f));
          expect(parts).toHaveLength(1);
          throw new Error("the clip changed meanwhile");
        },
      })
      .catch((e: unknown) => e);
    expect((err as Error).message).toContain("the clip changed meanwhile");
    expect((await remoteFiles()).filter((f) => f.startsWith("Commit/"))).toEqual(["Commit/a.age"]);
    expect(await readFile(join(sshd.root, "Commit/a.age"), "utf8")).toBe("old");
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

  it("reports a source that cannot even open, without an unhandled error", async () => {
    const store = makeStore();
    const source = createReadStream(join(sshd.root, "no-such-local-file"));
    await expect(store.put("Open/x.age", source)).rejects.toThrow(/ENOENT/);
    expect((await remoteFiles()).filter((f) => f.startsWith("Open/"))).toEqual([]);
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

  it("replaces an existing file atomically (posix-rename), only once beforeCommit agrees", async () => {
    const store = makeStore();
    await store.put("Replace/a.age", Readable.from([Buffer.from("one")]));
    await store.put("Replace/a.age", Readable.from([Buffer.from("two")]));
    expect(await readFile(join(sshd.root, "Replace/a.age"), "utf8")).toBe("two");
    const refuse = async () => {
      throw new Error("the clip changed on the camera");
    };
    await expect(
      store.put("Replace/a.age", Readable.from([Buffer.from("three")]), { beforeCommit: refuse }),
    ).rejects.toThrow(/the clip changed on the camera/);
    expect(await readFile(join(sshd.root, "Replace/a.age"), "utf8")).toBe("two");
    let asked = 0;
    await store.put("Replace/a.age", Readable.from([Buffer.from("three")]), {
      beforeCommit: async () => {
        asked++;
      },
    });
    expect(asked).toBe(1);
    expect(await readFile(join(sshd.root, "Replace/a.age"), "utf8")).toBe("three");
    expect((await remoteFiles()).filter((f) => f.startsWith("Replace/"))).toEqual([
      "Replace/a.age",
    ]);
    await store.remove("Replace/a.age");
    await store.remove("Replace/a.age");
    expect((await remoteFiles()).filter((f) => f.startsWith("Replace/"))).toEqual([]);
  });

  it("handles absent paths", async () => {
    const store = makeStore();
    expect(await store.list("Nope/2024-01-01")).toEqual([]);
    expect(await store.stat("Nope/x.age")).toBeUndefined();
    const err = await store.read("Nope/x.age").catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).toBe("ENOENT");
    expect((err as Error).message).toContain(`127.0.0.1:${sshd.port}`);
    expect((err as Error).message).toContain(`${sshd.root}/Nope/x.age`);
  });

  it("is safe with concurrent calls on one connection", async () => {
    const store = makeStore();
    const items = Array.from({ length: 12 }, (_, i) => ({
      path: `Concurrent/2024-05-03/${i}.age`,
      data: pseudoRandomBytes(200_000 + i * 1000, `c${i}`),
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

  it("creates a new tree from concurrent writers (two connections) without mkdir races", async () => {
    const a = makeStore();
    const b = makeStore();
    const jobs = Array.from({ length: 16 }, (_, i) => ({
      store: i % 2 === 0 ? a : b,
      path: `Race/deep/Camera${i % 4}/2024-05-0${1 + (i % 3)}/${i}.age`,
    }));
    await Promise.all(jobs.map((j) => j.store.put(j.path, Readable.from([Buffer.from(j.path)]))));
    expect((await remoteFiles()).filter((f) => f.startsWith("Race/")).sort()).toEqual(
      jobs.map((j) => j.path).sort(),
    );
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
    // the proxy's port is another host:port: pin the key instead of recording it
    const viaProxy = () => makeStore({ port: proxy.port });

    it("reconnects after the connection was lost, without printing anything", async () => {
      const store = viaProxy();
      expect(await store.list("")).not.toEqual([]);
      // ssh2-sftp-client's "Global end/close listener" case: the server goes away while idle
      proxy.dropConnections();
      await new Promise((r) => setTimeout(r, 200));
      expect(await store.list("")).not.toEqual([]);
      expect(proxy.stats().connections).toBe(2);
      await store.close();
      await store.close();
      // close() is not final: the store reconnects on demand
      expect(await store.list("")).not.toEqual([]);
    });

    it("cleans up the part file when the connection breaks mid-upload", async () => {
      const store = viaProxy();
      await store.list("");
      proxy.setMode({ kind: "cut", afterBytes: 2 * MiB, direction: "up" });
      const data = pseudoRandomBytes(8 * MiB, "cut-upload");
      const err = await store
        .put("Cut/2024-05-04/a.age", Readable.from([data]), { expectedSize: data.length })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toContain(`127.0.0.1:${proxy.port}`);
      expect((err as Error).message).toContain("Cut/2024-05-04/a.age");
      expect((await remoteFiles()).filter((f) => f.startsWith("Cut/"))).toEqual([]);
      proxy.setMode({ kind: "pass" });
      await store.put("Cut/2024-05-04/a.age", Readable.from([data]));
      expect(sha256(await readFile(join(sshd.root, "Cut/2024-05-04/a.age")))).toBe(sha256Hex(data));
    });

    it("fails a read stream when the connection breaks, then recovers", async () => {
      const store = viaProxy();
      const data = pseudoRandomBytes(8 * MiB, "cut-read");
      await store.put("Cut/2024-05-05/r.age", Readable.from([data]));
      proxy.setMode({ kind: "cut", afterBytes: 2 * MiB, direction: "down" });
      const stream = await store.read("Cut/2024-05-05/r.age");
      const err = await readAll(stream).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toContain(`127.0.0.1:${proxy.port}`);
      proxy.setMode({ kind: "pass" });
      expect(sha256Hex(await readAll(await store.read("Cut/2024-05-05/r.age")))).toBe(
        sha256Hex(data),
      );
    });
  });

  it("refuses a bad login, naming the server but no key material", async () => {
    const store = makeStore({ privateKey: undefined, password: "not-the-password-1234" });
    const err = await store.list("").catch((e: unknown) => e);
    const msg = (err as Error).message;
    expect(msg).toContain(`sftp://${sshd.username}@127.0.0.1:${sshd.port}`);
    expect(msg).not.toContain("not-the-password-1234");
    expect(msg).not.toContain("PRIVATE KEY");
  });
});

describe("SFTP host keys", { timeout: 60_000 }, () => {
  let sshd: SftpServer;
  let privateKey: Buffer;
  let stdout: ReturnType<typeof watchStdout>;
  const stores: VaultStore[] = [];

  const makeStore = (over: Partial<SftpVaultOptions> & { knownHostsFile: string }): VaultStore => {
    const store = createSftpVault({
      host: sshd.host,
      port: sshd.port,
      username: sshd.username,
      privateKey,
      root: sshd.root,
      timeoutMs: 10_000,
      ...over,
    });
    stores.push(store);
    return store;
  };

  beforeAll(async () => {
    sshd = await startSftpServer();
    privateKey = readFileSync(sshd.privateKeyPath);
  });
  afterAll(async () => {
    await Promise.allSettled(stores.map((s) => s.close()));
    await sshd?.close();
  });
  beforeEach(() => {
    stdout = watchStdout();
  });
  afterEach(() => {
    const calls = stdout.calls();
    stdout.restore();
    expect(calls).toEqual([]);
  });

  it("computes fingerprints as ssh-keygen -lf prints them", async () => {
    const pub = (await readFile(sshd.hostPublicKeyPath, "utf8")).split(" ")[1] ?? "";
    expect(hostKeyFingerprint(Buffer.from(pub, "base64"))).toBe(sshd.hostKeyFingerprint);
  });

  it("connects with the pinned key and does not touch the known hosts file", async () => {
    const state = await tempDir("mev-hk-");
    const store = makeStore({
      hostKey: sshd.hostKeyFingerprint,
      knownHostsFile: join(state, "hosts/known_hosts"),
    });
    await store.put("pinned.age", Readable.from([Buffer.from("ok")]));
    expect(await readFile(join(sshd.root, "pinned.age"), "utf8")).toBe("ok");
    expect(await walk(state)).toEqual([]);
    await store.remove("pinned.age");
  });

  it("refuses a wrong pinned key with HostKeyMismatchError naming both keys, writing nothing", async () => {
    const state = await tempDir("mev-hk-");
    const wrong = hostKeyFingerprint(randomBytes(51));
    const store = makeStore({ hostKey: wrong, knownHostsFile: join(state, "known_hosts") });
    const before = await walk(sshd.root);
    const err = await store
      .put("evil.age", Readable.from([Buffer.from("secret clip")]))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HostKeyMismatchError);
    const e = err as HostKeyMismatchError;
    expect(e.expected).toBe(wrong);
    expect(e.presented).toBe(sshd.hostKeyFingerprint);
    expect(e.message).toContain(wrong);
    expect(e.message).toContain(sshd.hostKeyFingerprint);
    expect(e.message).toContain(`127.0.0.1:${sshd.port}`);
    expect(e.message).toContain("destination.hostKey");
    expect(e.message).not.toMatch(/Host denied/);
    expect(await walk(sshd.root)).toEqual(before);
    // every call is refused, not only the first
    await expect(store.list("")).rejects.toBeInstanceOf(HostKeyMismatchError);
    expect(await walk(state)).toEqual([]);
  });

  it("trusts on first use, records the key 0600, then enforces it after a key change", async () => {
    const state = await tempDir("mev-hk-");
    const knownHostsFile = join(state, "nested/dir/known_hosts");
    const { logger, lines } = captureLogger();
    const first = makeStore({ knownHostsFile, logger });
    await first.put("tofu.age", Readable.from([Buffer.from("1")]));

    const original = sshd.hostKeyFingerprint;
    const recorded = await readFile(knownHostsFile, "utf8");
    expect(recorded).toBe(`[127.0.0.1]:${sshd.port} ${original}\n`);
    expect((await stat(knownHostsFile)).mode & 0o777).toBe(0o600);
    const warning = lines.find((l) => l.level === 40);
    expect(warning?.msg).toContain(
      `trusting new host key ${original} for 127.0.0.1:${sshd.port} (first use)`,
    );

    // a second store (another run) accepts the recorded key without recording it again
    const second = makeStore({ knownHostsFile, logger });
    expect((await second.list("")).map((e) => e.name)).toContain("tofu.age");
    expect(await readFile(knownHostsFile, "utf8")).toBe(recorded);
    expect(lines.filter((l) => l.level === 40)).toHaveLength(1);

    const rotated = await sshd.rotateHostKey();
    expect(rotated).not.toBe(original);
    // the open connection (verified with the old key) may or may not survive the restart of
    // sshd; the next connection the store makes is refused
    await second.close();
    const err = await second.list("").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HostKeyMismatchError);
    const msg = (err as Error).message;
    expect(msg).toContain(original);
    expect(msg).toContain(rotated);
    expect(msg).toContain(knownHostsFile);
    expect(msg).toContain(`[127.0.0.1]:${sshd.port}`);
    // and so is a fresh one; the file is left as it was, nothing new is written remotely
    const before = await walk(sshd.root);
    await expect(
      makeStore({ knownHostsFile, logger }).put("after.age", Readable.from([Buffer.from("x")])),
    ).rejects.toBeInstanceOf(HostKeyMismatchError);
    expect(await walk(sshd.root)).toEqual(before);
    expect(await readFile(knownHostsFile, "utf8")).toBe(recorded);

    // the fix the message suggests works: pin the new key
    const pinned = makeStore({ knownHostsFile, hostKey: rotated });
    expect((await pinned.list("")).map((e) => e.name)).toContain("tofu.age");
  });

  it("accepts a known hosts file written by hand, with comments and other hosts", async () => {
    const state = await tempDir("mev-hk-");
    const knownHostsFile = join(state, "known_hosts");
    await mkdir(state, { recursive: true });
    await writeFile(
      knownHostsFile,
      `# trusted servers\n[other.example]:22 SHA256:AAAA\n[127.0.0.1]:${sshd.port} ${sshd.hostKeyFingerprint}\n`,
      { mode: 0o600 },
    );
    const store = makeStore({ knownHostsFile });
    await expect(store.list("")).resolves.toBeInstanceOf(Array);
  });
});
