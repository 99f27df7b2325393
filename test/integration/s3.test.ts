/**
 * The S3 vault against a real S3-protocol server on loopback (s3rver, test/harness/s3.ts),
 * checked with an independent client (boto3): what S3 shows while and after we write, that a
 * failed write leaves no object and no multipart upload, and what the user is told.
 */
import { createHash, randomBytes } from "node:crypto";
import { readFile, utimes } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { VaultStore } from "../../src/storage/types.js";
import { createS3Vault, type S3VaultOptions } from "../../src/storage/vault/s3/s3Vault.js";
import { tempDir } from "../harness/files.js";
import { pseudoRandomBytes } from "../harness/ftp.js";
import { type FaultProxy, startFaultProxy } from "../harness/proxy.js";
import {
  BOTO3_PYTHON,
  type Boto3Object,
  boto3,
  type S3Server,
  startS3Server,
} from "../harness/s3.js";

const MiB = 1024 * 1024;
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** `data` in 64 KiB chunks, as a file stream delivers it. */
const chunked = (data: Buffer) =>
  Readable.from(
    Array.from({ length: Math.ceil(data.length / 65_536) }, (_, i) =>
      data.subarray(i * 65_536, (i + 1) * 65_536),
    ),
  );

/** Yields `good` bytes, then fails. */
function failingSource(good: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= good) return this.destroy(new Error("camera went away"));
      const n = Math.min(256 * 1024, good - sent);
      sent += n;
      this.push(randomBytes(n));
    },
  });
}

describe.skipIf(!BOTO3_PYTHON)("S3 vault (s3rver, checked with boto3)", { timeout: 90_000 }, () => {
  let s3: S3Server;
  const stores: VaultStore[] = [];
  const make = (over: Partial<S3VaultOptions> = {}): VaultStore => {
    const store = createS3Vault({
      endpoint: s3.endpoint,
      region: "us-east-1",
      bucket: s3.bucket,
      prefix: "vault",
      accessKeyId: s3.accessKeyId,
      secretAccessKey: s3.secretAccessKey,
      forcePathStyle: true,
      timeoutMs: 10_000,
      partSize: 5 * MiB,
      ...over,
    });
    stores.push(store);
    return store;
  };
  const objects = async (prefix: string) =>
    (await boto3<Boto3Object[]>(s3, "list", prefix)).map((o) => [o.key, o.size]);
  const uploads = (prefix: string) => boto3<Array<{ key: string }>>(s3, "uploads", prefix);

  beforeAll(async () => {
    s3 = await startS3Server();
  });
  afterAll(async () => {
    await Promise.allSettled(stores.map((s) => s.close()));
    await s3?.close();
  });

  it("describes itself by bucket, prefix and endpoint, without credentials", () => {
    const store = make({ secretAccessKey: "very-secret-key-123" });
    expect(store.description).toBe(`s3://vault/vault at ${s3.endpoint}`);
    expect(store.description).not.toContain("very-secret");
  });

  it("writes one small object and one multipart object that boto3 lists and reads back whole", async () => {
    const store = make();
    const small = pseudoRandomBytes(300_000, "small");
    const big = pseudoRandomBytes(12 * MiB + 5, "big"); // three 5 MiB parts
    expect(await store.put("Cam/2024-05-01/a.mp4.age", chunked(small))).toEqual({
      size: small.length,
    });
    const written = await store.put("Cam/2024-05-01/b.mp4.age", chunked(big), {
      expectedSize: big.length,
    });
    expect(written).toEqual({ size: big.length });
    expect(await objects("vault/Cam/")).toEqual([
      ["vault/Cam/2024-05-01/a.mp4.age", small.length],
      ["vault/Cam/2024-05-01/b.mp4.age", big.length],
    ]);
    expect(await uploads("vault/")).toEqual([]);
    const copy = join(await tempDir("mev-s3-get-"), "b.age");
    await boto3(s3, "get", "vault/Cam/2024-05-01/b.mp4.age", copy);
    expect(sha(await readFile(copy))).toBe(sha(big));

    expect(sha(await readAll(await store.read("Cam/2024-05-01/b.mp4.age")))).toBe(sha(big));
    expect(await store.list("")).toEqual([{ name: "Cam", kind: "dir", size: 0, mtimeMs: 0 }]);
    expect(await store.list("Cam")).toEqual([
      { name: "2024-05-01", kind: "dir", size: 0, mtimeMs: 0 },
    ]);
    const files = await store.list("Cam/2024-05-01");
    expect(files.map((f) => [f.name, f.kind, f.size])).toEqual([
      ["a.mp4.age", "file", small.length],
      ["b.mp4.age", "file", big.length],
    ]);
    expect(Math.abs((files[0]?.mtimeMs ?? 0) - Date.now())).toBeLessThan(120_000);
    expect(await store.stat("Cam/2024-05-01/a.mp4.age")).toMatchObject({
      name: "a.mp4.age",
      kind: "file",
      size: small.length,
    });
  });

  for (const [label, size] of [
    ["one PUT", 100_000],
    ["multipart", 11 * MiB],
  ] as const) {
    it(`runs beforeCommit before the object shows (${label}); a refusal leaves the old object`, async () => {
      const store = make();
      const key = `Commit/${label.replace(" ", "-")}.age`;
      await store.put(key, chunked(Buffer.from("old")));
      const data = pseudoRandomBytes(size, label);
      let seenWhileCommitting: unknown[] = [];
      await store.put(key, chunked(data), {
        expectedSize: size,
        beforeCommit: async () => {
          seenWhileCommitting = await objects(`vault/${key}`);
        },
      });
      // While beforeCommit ran, S3 still had the old object: the new one was not visible yet.
      expect(seenWhileCommitting).toEqual([[`vault/${key}`, 3]]);
      expect(await objects(`vault/${key}`)).toEqual([[`vault/${key}`, size]]);

      await expect(
        store.put(key, chunked(pseudoRandomBytes(size, "other")), {
          beforeCommit: async () => {
            throw new Error("the clip changed on the camera");
          },
        }),
      ).rejects.toThrow(/the clip changed on the camera/);
      expect(sha(await readAll(await store.read(key)))).toBe(sha(data));
      expect(await uploads("vault/Commit/")).toEqual([]);
    });
  }

  it("a source failing mid-way or a wrong size leaves no object and no multipart upload", async () => {
    const store = make();
    await expect(store.put("Fail/a.age", failingSource(11 * MiB))).rejects.toThrow(
      /camera went away/,
    );
    await expect(store.put("Fail/b.age", failingSource(MiB))).rejects.toThrow(/camera went away/);
    // A size known to need parts starts the multipart upload at once: a source that fails
    // before its answer, after some parts, or ends short still leaves nothing behind.
    for (const [name, good] of [
      ["d", 0],
      ["e", 6 * MiB],
    ] as const) {
      await expect(
        store.put(`Fail/${name}.age`, failingSource(good), { expectedSize: 20 * MiB }),
      ).rejects.toThrow(/camera went away/);
    }
    await expect(
      store.put("Fail/f.age", chunked(Buffer.alloc(7 * MiB)), { expectedSize: 20 * MiB }),
    ).rejects.toThrow(/expected 20971520 bytes, got 7340032/);
    const err = await store
      .put("Fail/c.age", chunked(Buffer.alloc(11 * MiB)), { expectedSize: 11 * MiB - 1 })
      .catch((e: unknown) => e as Error);
    expect((err as Error).message).toMatch(/expected 11534335 bytes, got 11534336/);
    expect((err as Error).message).toContain(`s3://vault/vault at ${s3.endpoint}`);
    expect(await objects("vault/Fail/")).toEqual([]);
    expect(await uploads("vault/Fail/")).toEqual([]);
  });

  it("handles absent paths: empty listing, no stat, ENOENT on read, quiet remove", async () => {
    const store = make();
    expect(await store.list("Nope/2024-01-01")).toEqual([]);
    expect(await store.stat("Nope/x.age")).toBeUndefined();
    const err = (await store.read("Nope/x.age").catch((e: unknown) => e)) as NodeJS.ErrnoException;
    expect(err.code).toBe("ENOENT");
    expect(err.message).toContain("vault/Nope/x.age");
    await store.remove("Nope/x.age");
    await store.put("Gone/x.age", chunked(Buffer.from("x")));
    await store.remove("Gone/x.age");
    expect(await objects("vault/Gone/")).toEqual([]);
  });

  it("sweepStale aborts our uploads older than the limit, and nothing else", async () => {
    const store = make();
    const started = async (key: string, ageMs: number) => {
      const { uploadId } = await boto3<{ uploadId: string }>(s3, "start-upload", key);
      const keyFile = join(s3.dir, s3.bucket, "._S3rver_uploads", uploadId, "key");
      const when = new Date(Date.now() - ageMs);
      await utimes(keyFile, when, when);
    };
    const day = 24 * 3600_000;
    await started("vault/Sweep/old.mp4.age", 2 * day);
    await started("vault/Sweep/young.mp4.age", 60_000);
    await started("vault/Sweep/old-notes.txt", 2 * day); // not one of ours
    await started("elsewhere/old.mp4.age", 2 * day); // outside the vault's prefix
    expect(await store.sweepStale?.(day)).toBe(1);
    expect((await uploads("")).map((u) => u.key).sort()).toEqual([
      "elsewhere/old.mp4.age",
      "vault/Sweep/old-notes.txt",
      "vault/Sweep/young.mp4.age",
    ]);
  });

  it("says which setting is wrong: access key, bucket, endpoint", async () => {
    const msg = async (store: VaultStore) =>
      ((await store.list("").catch((e: unknown) => e)) as Error).message;
    expect(await msg(make({ accessKeyId: "NOT-A-KEY" }))).toMatch(
      /InvalidAccessKeyId\): check destination\.accessKeyId$/,
    );
    expect(await msg(make({ bucket: "no-such-bucket" }))).toMatch(
      /bucket "no-such-bucket" does not exist at http:\/\/127\.0\.0\.1:\d+ \(NoSuchBucket\): create it or fix destination\.bucket$/,
    );
    expect(await msg(make({ endpoint: "http://127.0.0.1:1" }))).toMatch(
      /cannot reach http:\/\/127\.0\.0\.1:1 \(ECONNREFUSED\): check destination\.endpoint/,
    );
  });

  describe("through a fault proxy", () => {
    let proxy: FaultProxy;
    beforeAll(async () => {
      proxy = await startFaultProxy({ host: s3.host, port: s3.port });
    });
    afterAll(async () => {
      await proxy?.close();
    });
    afterEach(() => {
      proxy.setMode({ kind: "pass" });
    });
    const viaProxy = () => make({ endpoint: `http://127.0.0.1:${proxy.port}` });

    it("a cut mid-upload aborts the multipart upload; the next put completes", async () => {
      const store = viaProxy();
      const data = pseudoRandomBytes(16 * MiB, "cut");
      // Every connection is cut after 2 MiB: the SDK's own retries of a part fail too.
      proxy.setMode({ kind: "cut", afterBytes: 2 * MiB, direction: "up" });
      const put = store.put("Cut/a.age", chunked(data), { expectedSize: data.length });
      // The abort request is small: it gets through while parts cannot.
      await expect(put).rejects.toThrow(/Cut\/a\.age/);
      expect(proxy.stats().cuts).toBeGreaterThanOrEqual(1);
      expect(await objects("vault/Cut/")).toEqual([]);
      expect(await uploads("vault/Cut/")).toEqual([]);
      proxy.setMode({ kind: "pass" });
      await store.put("Cut/a.age", chunked(data), { expectedSize: data.length });
      expect(sha(await readAll(await store.read("Cut/a.age")))).toBe(sha(data));
    });

    it("a read stream cut mid-way fails naming the object, then reads again", async () => {
      const store = viaProxy();
      const data = pseudoRandomBytes(6 * MiB, "cut-read");
      await store.put("Cut/r.age", chunked(data));
      proxy.setMode({ kind: "cut", afterBytes: 2 * MiB, direction: "down" });
      const err = await readAll(await store.read("Cut/r.age")).catch((e: unknown) => e);
      expect((err as Error).message).toContain("vault/Cut/r.age");
      proxy.setMode({ kind: "pass" });
      expect(sha(await readAll(await store.read("Cut/r.age")))).toBe(sha(data));
    });
  });
});

describe("S3 vault over TLS with a private CA", { timeout: 60_000 }, () => {
  let s3: S3Server;
  beforeAll(async () => {
    s3 = await startS3Server({ tls: true });
  });
  afterAll(async () => {
    await s3?.close();
  });
  const make = (caFile: string | undefined) =>
    createS3Vault({
      endpoint: s3.endpoint,
      region: "us-east-1",
      bucket: s3.bucket,
      prefix: "",
      accessKeyId: s3.accessKeyId,
      secretAccessKey: s3.secretAccessKey,
      forcePathStyle: true,
      timeoutMs: 10_000,
      caFile,
    });

  it("trusts the server with destination.caFile, and says to set it without", async () => {
    const trusted = make(s3.caFile);
    await trusted.put("2024-05-01/a.mp4.age", chunked(Buffer.from("over tls")));
    expect((await readAll(await trusted.read("2024-05-01/a.mp4.age"))).toString()).toBe("over tls");
    await trusted.close();

    const untrusted = make(undefined);
    const err = (await untrusted.list("").catch((e: unknown) => e)) as Error;
    expect(err.name).toBe("PermanentError");
    expect(err.message).toMatch(
      /TLS certificate of https:\/\/127\.0\.0\.1:\d+ is not trusted \([A-Z_]+\): give the CA that signed it as destination\.caFile$/,
    );
    await untrusted.close();
  });
});
