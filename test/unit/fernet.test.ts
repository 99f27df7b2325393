import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { Readable } from "node:stream";
import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import {
  decryptFernetStream,
  FernetError,
  type FernetErrorReason,
  type FernetKey,
  fernetDecrypt,
  fernetEncrypt,
  looksLikeFernet,
  parseFernetKey,
} from "../../src/crypto/fernet/fernet.js";

/** The official vectors, copied verbatim from github.com/fernet/spec. */
function vectors<T>(name: string): T[] {
  return JSON.parse(readFileSync(new URL(`../fixtures/fernet/${name}`, import.meta.url), "utf8"));
}
interface GenerateVector {
  token: string;
  now: string;
  iv: number[];
  src: string;
  secret: string;
}
interface VerifyVector {
  token: string;
  now: string;
  ttl_sec: number;
  src: string;
  secret: string;
}
interface InvalidVector {
  desc: string;
  token: string;
  now: string;
  ttl_sec: number;
  secret: string;
}
const generate = vectors<GenerateVector>("generate.json");
const verify = vectors<VerifyVector>("verify.json");
const invalid = vectors<InvalidVector>("invalid.json");

const seconds = (iso: string) => Date.parse(iso) / 1000;

/** What each official invalid vector must be rejected as. */
const expectedReason: Record<string, FernetErrorReason> = {
  "incorrect mac": "signature",
  "too short": "format",
  "invalid base64": "format",
  "payload size not multiple of block size": "format",
  "payload padding error": "padding",
  "far-future TS (unacceptable clock skew)": "future",
  "expired TTL": "expired",
  "incorrect IV (causes padding error)": "padding",
  "trailing characters after b64 padding": "format",
  "invalid characters in b64": "format",
  "invalid non-urlsafe characters in b64": "format",
};

/** Splits `data` into chunks of the given sizes (cycling), as a stream would deliver it. */
function chunked(data: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  let i = 0;
  while (at < data.length) {
    const n = sizes[i++ % sizes.length] as number;
    out.push(data.subarray(at, at + n));
    at += n;
  }
  return out;
}

/** An `open()` for decryptFernetStream over in-memory bytes; counts how often it was called. */
function opener(data: Buffer | (() => Buffer), sizes: number[] = [65536]) {
  const calls = { count: 0 };
  const open = async () => {
    calls.count++;
    return Readable.from(chunked(typeof data === "function" ? data() : data, sizes));
  };
  return { open, calls };
}

async function collect(stream: Readable): Promise<{ data: Buffer; chunks: number }> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return { data: Buffer.concat(parts), chunks: parts.length };
}

async function streamDecrypt(
  key: FernetKey,
  token: Buffer,
  sizes?: number[],
  opts?: { ttlSeconds?: number; nowSeconds?: number },
): Promise<Buffer> {
  const { open } = opener(token, sizes);
  return (await collect(await decryptFernetStream(open, key, opts))).data;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

describe("fernet: official vectors (github.com/fernet/spec)", () => {
  it("has the vectors", () => {
    expect(generate.length).toBeGreaterThan(0);
    expect(verify.length).toBeGreaterThan(0);
    expect(invalid).toHaveLength(11);
    for (const v of invalid) expect(expectedReason[v.desc], v.desc).toBeDefined();
  });

  it.each(generate.map((v) => [v.src, v] as const))("generate %j reproduces the token", (_, v) => {
    const key = parseFernetKey(v.secret);
    const token = fernetEncrypt(key, Buffer.from(v.src), {
      iv: Uint8Array.from(v.iv),
      timeSeconds: seconds(v.now),
    });
    expect(token).toBe(v.token);
    expect(fernetDecrypt(key, token).toString()).toBe(v.src);
  });

  it.each(verify.map((v) => [v.src, v] as const))("verify %j decrypts", async (_, v) => {
    const key = parseFernetKey(v.secret);
    const opts = { ttlSeconds: v.ttl_sec, nowSeconds: seconds(v.now) };
    expect(fernetDecrypt(key, v.token, opts).toString()).toBe(v.src);
    expect(fernetDecrypt(key, Buffer.from(v.token), opts).toString()).toBe(v.src);
    for (const sizes of [[1], [3, 5], [1000]]) {
      const out = await streamDecrypt(key, Buffer.from(v.token), sizes, opts);
      expect(out.toString()).toBe(v.src);
    }
  });

  it.each(invalid.map((v) => [v.desc, v] as const))("invalid: %s is rejected", async (desc, v) => {
    const key = parseFernetKey(v.secret);
    const opts = { ttlSeconds: v.ttl_sec, nowSeconds: seconds(v.now) };
    const reason = expectedReason[desc];

    let err: unknown;
    try {
      fernetDecrypt(key, v.token, opts);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FernetError);
    expect((err as FernetError).reason).toBe(reason);
    expect((err as Error).message).not.toContain(v.secret);

    for (const sizes of [[1], [7], [65536]]) {
      const { open, calls } = opener(Buffer.from(v.token), sizes);
      const e = await rejection(
        decryptFernetStream(open, key, opts).then((s) => collect(s).then(() => s)),
      );
      expect(e).toBeInstanceOf(FernetError);
      expect((e as FernetError).reason).toBe(reason);
      // every official invalid vector is caught in pass 1: the plaintext pass never starts
      expect(calls.count).toBe(1);
    }
  });

  it("checks no timestamps without a TTL (as the spec and Python do)", () => {
    // both tokens are authentic, with an empty message (Python agrees)
    for (const desc of ["expired TTL", "far-future TS (unacceptable clock skew)"]) {
      const v = invalid.find((x) => x.desc === desc) as InvalidVector;
      expect(fernetDecrypt(parseFernetKey(v.secret), v.token)).toEqual(Buffer.alloc(0));
    }
  });
});

describe("fernet: keys", () => {
  const secret = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
  const token = (generate[0] as GenerateVector).token;

  it("accepts a key file's text with whitespace, and standard base64", () => {
    expect(fernetDecrypt(parseFernetKey(`  ${secret}\n`), token).toString()).toBe("hello");
    expect(fernetDecrypt(parseFernetKey(`${secret}\r\n`), token).toString()).toBe("hello");
    const standard = secret.replace(/-/g, "+").replace(/_/g, "/");
    expect(fernetDecrypt(parseFernetKey(standard), token).toString()).toBe("hello");
    expect(fernetDecrypt(parseFernetKey(secret.replace(/=$/, "")), token).toString()).toBe("hello");
  });

  it.each([
    ["", /empty/],
    ["   \n", /empty/],
    ["c2hvcnQ=", /32 bytes.*got 5/],
    [`${secret}AAAA`, /`=` may only end it/],
    [`${secret.slice(0, 43)}AAAA`, /32 bytes \(signing key \| encryption key\), got 35/],
    [`${secret.slice(0, 10)}!${secret.slice(11)}`, /invalid character at position 11/],
    [`${secret.slice(0, 10)}=${secret.slice(11)}`, /`=` may only end it/],
    [secret.slice(0, 42), /got 31 \(from 42 characters; a key is 44\)/],
    [secret.slice(0, 41), /bad length/],
  ])("rejects %j clearly", (text, message) => {
    expect(() => parseFernetKey(text)).toThrow(message);
  });

  it("never shows key material", () => {
    const key = parseFernetKey(secret);
    expect(inspect(key)).toBe("[FernetKey]");
    expect(JSON.stringify({ key })).toBe('{"key":"[FernetKey]"}');
    expect(`${key}`).toBe("[FernetKey]");
    try {
      parseFernetKey(`${secret}x`);
    } catch (err) {
      expect((err as Error).message).not.toContain(secret.slice(0, 8));
    }
  });

  it("a wrong key fails the HMAC, not the padding", () => {
    const other = parseFernetKey(randomBytes(32).toString("base64url"));
    expect(() => fernetDecrypt(other, token)).toThrow(
      expect.objectContaining({ reason: "signature" }),
    );
  });
});

describe("fernet: format edge cases", () => {
  const key = parseFernetKey(randomBytes(32).toString("base64url"));

  it("round-trips every length around block boundaries, as buffer and stream", async () => {
    for (const n of [0, 1, 15, 16, 17, 31, 32, 33, 255, 256, 1000]) {
      const data = randomBytes(n);
      const token = fernetEncrypt(key, data);
      expect(token.length % 4).toBe(0);
      expect(fernetDecrypt(key, token)).toEqual(data);
      expect(await streamDecrypt(key, Buffer.from(token), [1, 2, 3])).toEqual(data);
    }
  });

  it("accepts a trailing newline and unpadded tokens; refuses whitespace inside", () => {
    const data = randomBytes(100);
    const token = fernetEncrypt(key, data);
    expect(fernetDecrypt(key, `${token}\n`)).toEqual(data);
    expect(fernetDecrypt(key, `${token}\r\n`)).toEqual(data);
    expect(fernetDecrypt(key, token.replace(/=+$/, ""))).toEqual(data);
    expect(() => fernetDecrypt(key, `${token.slice(0, 50)}\n${token.slice(50)}`)).toThrow(
      /data after the end of the token at offset 51/,
    );
    expect(() => fernetDecrypt(key, `${token}=`)).toThrow(FernetError);
    expect(() => fernetDecrypt(key, `${token.replace(/=+$/, "")}===`)).toThrow(FernetError);
  });

  it("refuses other versions and non-tokens", () => {
    const raw = Buffer.from(fernetEncrypt(key, Buffer.from("x")), "base64url");
    raw[0] = 0x81;
    expect(() => fernetDecrypt(key, raw.toString("base64url"))).toThrow(
      expect.objectContaining({ reason: "version" }),
    );
    expect(() => fernetDecrypt(key, "")).toThrow(/too short/);
    expect(() => fernetDecrypt(key, "age-encryption.org/v1\n")).toThrow(FernetError);
  });

  it("recognises tokens by their first bytes", () => {
    const token = Buffer.from(fernetEncrypt(key, randomBytes(500)));
    expect(looksLikeFernet(token)).toBe(true);
    expect(looksLikeFernet(token.subarray(0, 6))).toBe(true);
    expect(looksLikeFernet(token.subarray(0, 5))).toBe(false);
    expect(looksLikeFernet(Buffer.from("gAAAAAAdwJ6wAAEC==\n"))).toBe(true);
    expect(looksLikeFernet(Buffer.from("age-encryption.org/v1\n-> X25519 abc\n"))).toBe(false);
    expect(looksLikeFernet(Buffer.from("gAAAAA%%%"))).toBe(false);
    expect(looksLikeFernet(new Uint8Array(0))).toBe(false);
  });
});

describe("fernet: streaming", () => {
  const key = parseFernetKey(randomBytes(32).toString("base64url"));
  const plaintext = randomBytes(3 * 1024 * 1024 + 7);
  const token = Buffer.from(`${fernetEncrypt(key, plaintext)}\n`);

  it("equals the buffer decrypt on a few MB, whatever the chunk boundaries", async () => {
    expect(fernetDecrypt(key, token).equals(plaintext)).toBe(true);
    for (const sizes of [[65536], [1, 4093, 3, 65537, 2], [1_000_003], [token.length]]) {
      const out = await streamDecrypt(key, token, sizes);
      expect(out.length).toBe(plaintext.length);
      expect(out.equals(plaintext)).toBe(true);
    }
  });

  it("accepts string chunks (a stream with an encoding set)", async () => {
    const open = async () => Readable.from(chunked(token, [777]).map((b) => b.toString("latin1")));
    const { data } = await collect(await decryptFernetStream(open, key));
    expect(data.equals(plaintext)).toBe(true);
  });

  it("streams instead of buffering: the plaintext arrives in many chunks", async () => {
    const { open } = opener(token, [65536]);
    const { chunks } = await collect(await decryptFernetStream(open, key));
    expect(chunks).toBeGreaterThan(10);
  });

  it("a flipped byte anywhere fails before any plaintext is emitted", async () => {
    // header (version, time, IV), ciphertext start/middle/end, HMAC; the last data character
    const at = [2, 8, 20, 40, 1000, Math.floor(token.length / 2), token.length - 50, -4];
    for (const pos of at) {
      const bad = Buffer.from(token);
      const i = pos < 0 ? token.length - 1 + pos : pos;
      const c = String.fromCharCode(bad[i] as number);
      bad[i] = (c === "A" ? "B" : "A").charCodeAt(0);
      const { open, calls } = opener(bad, [65536]);
      const err = await rejection(decryptFernetStream(open, key));
      expect(err, `flip at ${i}`).toBeInstanceOf(FernetError);
      expect(["signature", "version"]).toContain((err as FernetError).reason);
      expect(calls.count, "pass 2 must not be opened").toBe(1);
      expect(() => fernetDecrypt(key, bad)).toThrow(FernetError);
    }
  });

  it("truncation and appended garbage fail before any plaintext is emitted", async () => {
    for (const bad of [
      token.subarray(0, token.length - 5),
      token.subarray(0, 4 * 1000),
      Buffer.concat([token.subarray(0, token.length - 1), Buffer.from("AAAA\n")]),
      Buffer.concat([token, Buffer.from("x")]),
    ]) {
      const { open, calls } = opener(bad);
      expect(await rejection(decryptFernetStream(open, key))).toBeInstanceOf(FernetError);
      expect(calls.count).toBe(1);
    }
  });

  it("a file that changes between the two passes fails the stream", async () => {
    const other = Buffer.from(`${fernetEncrypt(key, randomBytes(plaintext.length))}\n`);
    let n = 0;
    const { open } = opener(() => (n++ === 0 ? token : other));
    const stream = await decryptFernetStream(open, key);
    const err = await rejection(collect(stream));
    expect(err).toBeInstanceOf(FernetError);
    expect((err as FernetError).reason).toBe("changed");
  });

  it("passes the source's own errors through, and stops the source when the reader does", async () => {
    const broken = async () =>
      new Readable({
        read() {
          this.destroy(new Error("connection reset"));
        },
      });
    await expect(decryptFernetStream(broken, key)).rejects.toThrow("connection reset");

    let source2: Readable | undefined;
    let n = 0;
    const open = async () => {
      const s = Readable.from(chunked(token, [65536]));
      if (n++ === 1) source2 = s;
      return s;
    };
    const out = await decryptFernetStream(open, key);
    for await (const _ of out) break; // the consumer stops early
    await new Promise((r) => setImmediate(r));
    expect(source2?.destroyed).toBe(true);
  });
});
