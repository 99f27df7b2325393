import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { promisify } from "node:util";
import { Decrypter, Encrypter } from "age-encryption";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AgeError,
  decryptStream,
  encryptedSize,
  encryptStream,
  loadIdentity,
  writeNewIdentity,
} from "../../src/crypto/age/age.js";
import { ageCliDecrypt, ageKeygenRecipient } from "../harness/age.js";
import { tempDir } from "../harness/files.js";

/**
 * Our age (node:crypto) against Debian's `age` 1.1 and the age-encryption npm package: each
 * reads what the other writes, at sizes around the 64 KiB chunk boundaries and a few MB.
 */
const run = promisify(execFile);
const K = 64 * 1024;
const SIZES = [0, 1, K - 1, K, K + 1, 2 * K, 3 * 1024 * 1024 + 17];

async function encryptToBuffer(plain: Buffer, recipients: string[]): Promise<Buffer> {
  // Fed in odd-sized pieces, as a network stream would be.
  const pieces: Buffer[] = [];
  for (let i = 0; i < plain.length; i += 50_000) pieces.push(plain.subarray(i, i + 50_000));
  const { output, sizeFor } = await encryptStream(Readable.from(pieces), recipients);
  const parts: Buffer[] = [];
  for await (const c of output) parts.push(c as Buffer);
  const out = Buffer.concat(parts);
  expect(out.length).toBe(sizeFor(plain.length));
  return out;
}

async function decryptBuffer(data: Buffer, identities: string[]): Promise<Buffer> {
  const out = await decryptStream(Readable.from([data]), identities);
  const parts: Buffer[] = [];
  for await (const c of out) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

describe("age interop: node:crypto age vs Debian age and age-encryption", () => {
  let dir: string;
  let ours: { secret: string; recipient: string; file: string };
  let theirs: { secret: string; recipient: string; file: string };

  beforeAll(async () => {
    dir = await tempDir();
    const file = join(dir, "ours.txt");
    const made = await writeNewIdentity(file);
    ours = { ...made, file };
    const theirFile = join(dir, "age-keygen.txt");
    await run("age-keygen", ["-o", theirFile]);
    const loaded = await loadIdentity(theirFile);
    theirs = { secret: loaded.secret, recipient: loaded.recipient, file: theirFile };
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("keys: age-keygen reads our identity, we read age-keygen's", async () => {
    expect(await ageKeygenRecipient(ours.file)).toBe(ours.recipient);
    expect(ours.recipient).toMatch(/^age1[0-9a-z]{58}$/);
    expect(ours.secret).toMatch(/^AGE-SECRET-KEY-1[0-9A-Z]{58}$/);
    expect(theirs.recipient).toBe(await ageKeygenRecipient(theirs.file));
  });

  it.each(SIZES)(
    "%i bytes: age -d reads ours; we read age's and age-encryption's",
    async (size) => {
      const plain = randomBytes(size);

      const mine = await encryptToBuffer(plain, [ours.recipient, theirs.recipient]);
      expect(mine.length).toBe(await encryptedSize(size, [ours.recipient, theirs.recipient]));
      const mineFile = join(dir, `ours-${size}.age`);
      await writeFile(mineFile, mine);
      expect((await ageCliDecrypt(mineFile, ours.file)).equals(plain)).toBe(true);
      expect((await ageCliDecrypt(mineFile, theirs.file)).equals(plain)).toBe(true);

      const plainFile = join(dir, `plain-${size}`);
      await writeFile(plainFile, plain);
      const ageFile = join(dir, `age-${size}.age`);
      await run("age", ["-r", ours.recipient, "-o", ageFile, plainFile]);
      expect((await decryptBuffer(await readFile(ageFile), [ours.secret])).equals(plain)).toBe(
        true,
      );

      const e = new Encrypter();
      e.addRecipient(theirs.recipient);
      const typage = Buffer.from(await e.encrypt(plain));
      expect((await decryptBuffer(typage, [theirs.secret])).equals(plain)).toBe(true);

      const d = new Decrypter();
      d.addIdentity(ours.secret);
      expect(Buffer.from(await d.decrypt(mine)).equals(plain)).toBe(true);
    },
  );

  it("a tampered chunk fails the stream without releasing any of that chunk's bytes", async () => {
    const plain = randomBytes(3 * K + 100);
    const sealed = await encryptToBuffer(plain, [ours.recipient]);
    const tampered = Buffer.from(sealed);
    // A byte in the middle of the second chunk.
    const at = tampered.length - (2 * (K + 16) + 116) + K / 2;
    tampered.writeUInt8(tampered.readUInt8(at) ^ 1, at);

    const out = await decryptStream(Readable.from([tampered]), [ours.secret]);
    const released: Buffer[] = [];
    const error = await new Promise<unknown>((resolve) => {
      out.on("data", (c: Buffer) => released.push(c));
      out.once("error", resolve);
      out.once("end", () => resolve(undefined));
    });
    expect(error).toBeInstanceOf(AgeError);
    expect((error as AgeError).kind).toBe("payload");
    expect(Buffer.concat(released).equals(plain.subarray(0, K))).toBe(true);

    // The age CLI refuses it too.
    const file = join(dir, "tampered.age");
    await writeFile(file, tampered);
    await expect(ageCliDecrypt(file, ours.file)).rejects.toThrow();
  });

  it("a truncated file fails at its end; a file for other keys fails before any byte", async () => {
    const plain = randomBytes(2 * K + 10);
    const sealed = await encryptToBuffer(plain, [ours.recipient]);
    await expect(
      decryptBuffer(sealed.subarray(0, sealed.length - 26), [ours.secret]),
    ).rejects.toThrow(AgeError);
    await expect(decryptStream(Readable.from([sealed]), [theirs.secret])).rejects.toMatchObject({
      kind: "no match",
    });
  });
});
