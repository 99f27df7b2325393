import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { inflateSync } from "node:zlib";
import * as vectors from "cctv-age";
import { describe, expect, it } from "vitest";
import { AgeError, decryptStream } from "../../src/crypto/age/age.js";
import { parseHeader } from "../../src/crypto/age/format.js";

/**
 * The official age conformance vectors (C2SP CCTV, npm `cctv-age`): every one that concerns
 * X25519 recipients, the header or the payload. Left out: ASCII armor, scrypt (passphrase)
 * and post-quantum (hybrid) recipients, which this program does not read.
 */

interface Vector {
  name: string;
  expect: "success" | "no match" | "HMAC failure" | "header failure" | "payload failure";
  identities: string[];
  payloadSha256?: string;
  file: Buffer;
}

function parseVector(name: string, raw: Uint8Array): Vector & { meta: Record<string, string[]> } {
  const buf = Buffer.from(raw);
  const split = buf.indexOf("\n\n");
  const meta: Record<string, string[]> = {};
  for (const line of buf.subarray(0, split).toString("utf8").split("\n")) {
    const i = line.indexOf(": ");
    const key = line.slice(0, i);
    meta[key] = [...(meta[key] ?? []), line.slice(i + 2)];
  }
  let file = buf.subarray(split + 2);
  if (meta.compressed?.[0] === "zlib") file = inflateSync(file);
  return {
    name,
    meta,
    expect: meta.expect?.[0] as Vector["expect"],
    identities: meta.identity ?? [],
    payloadSha256: meta.payload?.[0],
    file,
  };
}

const all = Object.entries(vectors as Record<string, Uint8Array>).map(([name, raw]) =>
  parseVector(name, raw),
);
const applicable = all.filter(
  (v) =>
    !v.meta.armored &&
    !v.meta.passphrase &&
    v.identities.every((id) => id.startsWith("AGE-SECRET-KEY-1")),
);
// A vector without identities only tests header parsing: any X25519 identity will do.
const SOME_IDENTITY = "AGE-SECRET-KEY-1XMWWC06LY3EE5RYTXM9MFLAZ2U56JJJ36S0MYPDRWSVLUL66MV4QX3S7F6";

const KIND: Record<Exclude<Vector["expect"], "success">, AgeError["kind"]> = {
  "no match": "no match",
  "HMAC failure": "hmac",
  "header failure": "header",
  "payload failure": "payload",
};

/**
 * Decrypts, feeding the file in small pieces and reading the output as `pipe` does (flowing
 * mode); returns every byte released and the error, if any.
 */
async function tryDecrypt(v: Vector): Promise<{ released: Buffer; error?: unknown }> {
  const pieces: Buffer[] = [];
  for (let i = 0; i < v.file.length; i += 7919) pieces.push(v.file.subarray(i, i + 7919));
  const input = Readable.from(pieces, { objectMode: false });
  const released: Buffer[] = [];
  try {
    const out = await decryptStream(input, v.identities.length ? v.identities : [SOME_IDENTITY]);
    await new Promise<void>((resolve, reject) => {
      out.on("data", (chunk: Buffer) => released.push(chunk));
      out.once("end", resolve);
      out.once("error", reject);
    });
    return { released: Buffer.concat(released) };
  } catch (error) {
    return { released: Buffer.concat(released), error };
  }
}

describe("age conformance vectors (cctv-age)", () => {
  it("covers the X25519, header and payload vectors", () => {
    expect(applicable.length).toBeGreaterThanOrEqual(65);
    for (const prefix of ["x25519", "stanza_", "hmac_", "stream_", "header_", "version_"]) {
      expect(applicable.some((v) => v.name.startsWith(prefix))).toBe(true);
    }
  });

  it.each(applicable.map((v) => [v.name, v] as const))("%s", async (_name, v) => {
    const { released, error } = await tryDecrypt(v);
    if (v.expect === "success") {
      expect(error).toBeUndefined();
    } else {
      expect(error).toBeInstanceOf(AgeError);
      expect((error as AgeError).kind).toBe(KIND[v.expect]);
    }
    // Everything released, even before a payload failure, is the expected plaintext.
    if (v.payloadSha256) {
      expect(createHash("sha256").update(released).digest("hex")).toBe(v.payloadSha256);
    } else {
      expect(released.length).toBe(0);
    }
  });

  it("parses the same header whether it arrives whole or byte by byte", () => {
    const v = applicable.find((x) => x.name === "x25519_multiple_recipients") as Vector;
    const whole = parseHeader(v.file);
    expect(whole?.stanzas).toHaveLength(2);
    const end = whole?.length ?? 0;
    for (let i = 0; i < end; i++) expect(parseHeader(v.file.subarray(0, i))).toBeUndefined();
  });
});
