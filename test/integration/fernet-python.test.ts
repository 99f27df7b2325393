import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  decryptFernetStream,
  FernetError,
  fernetDecrypt,
  fernetEncrypt,
  loadFernetKeyFile,
  looksLikeFernet,
} from "../../src/crypto/fernet/fernet.js";
import { sha256, tempDir } from "../harness/files.js";
import { PYTHON } from "../harness/python.js";

const run = promisify(execFile);

/**
 * Python's `cryptography` (Debian python3-cryptography) makes the legacy files we must read.
 * scripts/ensure-deps.sh installs it, so its absence is a failure, not a skip.
 */
const pythonMissing = PYTHON === undefined ? "no python3 with the cryptography package" : undefined;

/** The original tool, step for step: generate_key -> filekey.key; read whole clip -> encrypt -> write. */
const ORIGINAL_TOOL = `
import os, sys
from cryptography.fernet import Fernet
keyfile, clip, remote = sys.argv[1], sys.argv[2], sys.argv[3]
if not os.path.exists(keyfile):
    key = Fernet.generate_key()
    with open(keyfile, "wb") as filekey:
        filekey.write(key)
with open(keyfile, "rb") as filekey:
    key = filekey.read()
fernet = Fernet(key)
with open(clip, "rb") as file:
    original = file.read()
encrypted = fernet.encrypt(original)
with open(remote, "wb") as encrypted_file:
    encrypted_file.write(encrypted)
`;

/** The original DownloadAndDecrypt.py's decryption. */
const PYTHON_DECRYPT = `
import sys
from cryptography.fernet import Fernet
keyfile, enc, out = sys.argv[1], sys.argv[2], sys.argv[3]
with open(keyfile, "rb") as filekey:
    fernet = Fernet(filekey.read().strip())
with open(enc, "rb") as f:
    data = fernet.decrypt(f.read())
with open(out, "wb") as f:
    f.write(data)
`;

async function python(script: string, ...args: string[]): Promise<void> {
  if (!PYTHON) throw new Error(pythonMissing);
  await run(PYTHON, ["-c", script, ...args], { timeout: 60_000, maxBuffer: 1 << 20 });
}

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

describe("fernet interop with Python cryptography", () => {
  let work: string;
  let keyFile: string;

  beforeAll(async () => {
    work = await tempDir("mev-fernet-");
    keyFile = join(work, "filekey.key");
    await mkdir(join(work, "clips"), { recursive: true });
    await mkdir(join(work, "remote", "2024-05-01"), { recursive: true });
  });

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("decrypts a ~3 MB clip the original tool encrypted, byte for byte, with both APIs", async () => {
    const clip = join(work, "clips", "12-00-00.mp4");
    const remote = join(work, "remote", "2024-05-01", "12-00-00.mp4");
    const data = randomBytes(3 * 1024 * 1024 + 12345);
    await writeFile(clip, data);
    await python(ORIGINAL_TOOL, keyFile, clip, remote);

    const key = await loadFernetKeyFile(keyFile);
    const token = await readFile(remote);
    expect(looksLikeFernet(token.subarray(0, 64))).toBe(true);

    expect(sha256(fernetDecrypt(key, token))).toBe(sha256(data));

    // odd read sizes so base64 quads and AES blocks straddle chunk boundaries
    for (const highWaterMark of [65536, 4093, 1_000_001]) {
      let opens = 0;
      const stream = await decryptFernetStream(async () => {
        opens++;
        return createReadStream(remote, { highWaterMark });
      }, key);
      const out = await collect(stream);
      expect(out.length).toBe(data.length);
      expect(out.equals(data)).toBe(true);
      expect(opens).toBe(2);
    }
  });

  it("reads a key file with a trailing newline and small / empty / block-sized clips", async () => {
    const nlKey = join(work, "filekey-nl.key");
    await writeFile(nlKey, `${(await readFile(keyFile, "utf8")).trim()}\n`);
    const key = await loadFernetKeyFile(nlKey);
    for (const size of [0, 1, 16, 4096]) {
      const clip = join(work, "clips", `small-${size}.mp4`);
      const remote = join(work, "remote", "2024-05-01", `small-${size}.mp4`);
      const data = randomBytes(size);
      await writeFile(clip, data);
      await python(ORIGINAL_TOOL, nlKey, clip, remote);
      expect(fernetDecrypt(key, await readFile(remote)).equals(data)).toBe(true);
      const stream = await decryptFernetStream(async () => createReadStream(remote), key);
      expect((await collect(stream)).equals(data)).toBe(true);
    }
  });

  it("Python decrypts what fernetEncrypt makes (~3 MB)", async () => {
    const key = await loadFernetKeyFile(keyFile);
    const data = randomBytes(3 * 1024 * 1024 + 5);
    const enc = join(work, "ours.token");
    const out = join(work, "ours.decrypted");
    await writeFile(enc, fernetEncrypt(key, data));
    await python(PYTHON_DECRYPT, keyFile, enc, out);
    expect(sha256(await readFile(out))).toBe(sha256(data));
  });

  it("a file tampered on the server is refused before any plaintext", async () => {
    const key = await loadFernetKeyFile(keyFile);
    const remote = join(work, "remote", "2024-05-01", "12-00-00.mp4");
    const token = await readFile(remote);
    const i = Math.floor(token.length / 3);
    token[i] = token[i] === 0x41 ? 0x42 : 0x41;
    const tampered = join(work, "remote", "2024-05-01", "tampered.mp4");
    await writeFile(tampered, token);
    let opens = 0;
    const err = await decryptFernetStream(async () => {
      opens++;
      return createReadStream(tampered);
    }, key).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FernetError);
    expect((err as FernetError).reason).toBe("signature");
    expect(opens).toBe(1);
    // and Python agrees it is invalid
    await expect(python(PYTHON_DECRYPT, keyFile, tampered, join(work, "x"))).rejects.toThrow(
      /InvalidToken/,
    );
  });
});
