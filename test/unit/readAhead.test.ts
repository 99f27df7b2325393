import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { PacketFramer } from "../../src/storage/vault/sftp/openssh/packets.js";
import { createReadAhead, type ReadChunk } from "../../src/storage/vault/sftp/readAhead.js";

/**
 * The read-ahead's ordering and bounds, against a file in memory whose replies come back in an
 * order the test picks (a real server answers in order; the stream must not rely on it).
 */
function fakeFile(
  content: Buffer,
  opts: { shortEvery?: number; maxReply?: number } = {},
): {
  read: ReadChunk;
  /** Requests asked but not answered. */
  outstanding: Array<{ position: number; length: number; answer(): void }>;
  maxOutstanding: number;
  asked: number;
} {
  const state = {
    outstanding: [] as Array<{ position: number; length: number; answer(): void }>,
    maxOutstanding: 0,
    asked: 0,
    read: ((position, length) =>
      new Promise<Buffer | null>((resolve) => {
        state.asked++;
        let n = Math.min(length, opts.maxReply ?? length);
        if (opts.shortEvery && state.asked % opts.shortEvery === 0) n = Math.ceil(n / 3);
        const req = {
          position,
          length,
          answer: () =>
            resolve(position >= content.length ? null : content.subarray(position, position + n)),
        };
        state.outstanding.push(req);
        state.maxOutstanding = Math.max(state.maxOutstanding, state.outstanding.length);
      })) as ReadChunk,
  };
  return state;
}

async function drain(
  stream: Readable,
  file: ReturnType<typeof fakeFile>,
  pick: (n: number) => number,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let ended = false;
  let failed: unknown;
  stream.on("data", (c: Buffer) => chunks.push(c));
  stream.on("end", () => {
    ended = true;
  });
  stream.on("error", (e) => {
    failed = e;
  });
  for (let guard = 0; !ended && failed === undefined && guard < 100_000; guard++) {
    await new Promise((r) => setImmediate(r));
    if (file.outstanding.length === 0) continue;
    const [req] = file.outstanding.splice(pick(file.outstanding.length), 1);
    req?.answer();
  }
  if (failed) throw failed;
  return Buffer.concat(chunks);
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("pipelined SFTP reads", () => {
  const content = Buffer.from(Array.from({ length: 1_000_003 }, (_, i) => (i * 31) & 255));

  it("keeps several requests in flight, never more than asked, and delivers in order", async () => {
    const file = fakeFile(content);
    const stream = createReadAhead(file.read, {
      chunkSize: 64 * 1024,
      inFlight: 8,
      size: content.length,
    });
    // Replies in reverse order of asking: the stream still gives the bytes in file order.
    const got = await drain(stream, file, (n) => n - 1);
    expect(sha(got)).toBe(sha(content));
    expect(file.maxOutstanding).toBe(8);
  });

  it("asks again for the rest of a short reply, and stops at the end of the file", async () => {
    const file = fakeFile(content, { shortEvery: 3 });
    const stream = createReadAhead(file.read, { chunkSize: 50_000, inFlight: 4 });
    const got = await drain(stream, file, () => 0);
    expect(sha(got)).toBe(sha(content));
  });

  it("reads a file that grew after its size was taken, and an empty one", async () => {
    const grown = fakeFile(content);
    const stream = createReadAhead(grown.read, { chunkSize: 64 * 1024, inFlight: 4, size: 1000 });
    expect(sha(await drain(stream, grown, () => 0))).toBe(sha(content));

    const empty = fakeFile(Buffer.alloc(0));
    const none = createReadAhead(empty.read, { chunkSize: 64 * 1024, inFlight: 4, size: 0 });
    expect((await drain(none, empty, () => 0)).length).toBe(0);
    expect(empty.asked).toBe(1);
  });

  it("fails with the error of a failed request, described, and closes the file once", async () => {
    let closes = 0;
    let asked = 0;
    const stream = createReadAhead(
      async (position, length) => {
        if (++asked === 3) throw new Error("connection lost");
        return Buffer.alloc(Math.min(length, 10 * length - position));
      },
      {
        chunkSize: 1000,
        inFlight: 4,
        onClose: () => closes++,
        describeError: (err) => new Error(`read /v/x.age failed: ${(err as Error).message}`),
      },
    );
    const err = await (async () => {
      for await (const _ of stream);
    })().catch((e: unknown) => e);
    expect((err as Error).message).toBe("read /v/x.age failed: connection lost");
    expect(closes).toBe(1);
  });
});

describe("SFTP packet framing", () => {
  it("cuts a stream into packets whatever the chunk boundaries", () => {
    const packets = [
      Buffer.from([101, 0, 0, 0, 1]),
      Buffer.alloc(70_000, 9),
      Buffer.from([2, 0, 0, 0, 3]),
    ];
    const wire = Buffer.concat(
      packets.flatMap((p) => {
        const len = Buffer.alloc(4);
        len.writeUInt32BE(p.length);
        return [len, p];
      }),
    );
    for (const size of [1, 3, 4, 5, 1000, wire.length]) {
      const got: Buffer[] = [];
      const framer = new PacketFramer((p) => got.push(Buffer.concat(p)));
      for (let i = 0; i < wire.length; i += size) framer.push(wire.subarray(i, i + size));
      expect(
        got.map((p) => sha(p)),
        `chunks of ${size}`,
      ).toEqual(packets.map((p) => sha(p)));
    }
    expect(() => new PacketFramer(() => {}).push(Buffer.from([0xff, 0xff, 0xff, 0xff]))).toThrow(
      /bad SFTP packet length/,
    );
  });
});
