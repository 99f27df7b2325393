import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { afterEach, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../../src/config/load.js";
import { throttle } from "../../src/storage/uploadLimit.js";
import {
  BandwidthLimit,
  formatRate,
  parseBandwidthLimit,
  parseRate,
  rateAt,
} from "../../src/util/bandwidth.js";

/** A local time today (the timetable is in local time). */
function at(hh: number, mm: number, day = 1): Date {
  return new Date(2024, 4, day, hh, mm, 0, 0);
}

describe("sync.bandwidthLimit parsing", () => {
  it("reads rclone-style rates: k = KiB, M = MiB, G = GiB, bare numbers in bytes/s", () => {
    expect(parseRate("512k")).toBe(512 * 1024);
    expect(parseRate("512K")).toBe(512 * 1024);
    expect(parseRate("2M")).toBe(2 * 1024 * 1024);
    expect(parseRate("1.5M")).toBe(1.5 * 1024 * 1024);
    expect(parseRate("1G")).toBe(1024 ** 3);
    expect(parseRate("64000")).toBe(64000);
    expect(parseRate("64000B")).toBe(64000);
    expect(parseRate("2MiB")).toBe(2 * 1024 * 1024);
    expect(parseRate("off")).toBeNull();
    expect(parseRate("OFF")).toBeNull();
  });

  it("refuses what is not a rate, saying what a rate looks like", () => {
    expect(() => parseRate("2X")).toThrow(/"2X" is not a rate.*512k or 2M/);
    expect(() => parseRate("fast")).toThrow(/not a rate/);
    expect(() => parseRate("-1M")).toThrow(/not a rate/);
    expect(() => parseRate("100")).toThrow(/under 1k/);
  });

  it("reads a timetable, in time order, and refuses bad entries", () => {
    expect(parseBandwidthLimit("23:00,off 08:00,512k")).toEqual({
      kind: "timetable",
      entries: [
        { minute: 8 * 60, rate: 512 * 1024 },
        { minute: 23 * 60, rate: null },
      ],
    });
    expect(parseBandwidthLimit(2097152)).toEqual({ kind: "rate", rate: 2097152 });
    expect(() => parseBandwidthLimit("08:00,512k 23:00")).toThrow(/"23:00" is not HH:MM,RATE/);
    expect(() => parseBandwidthLimit("25:00,1M 08:00,off")).toThrow(/25:00 is not a time of day/);
    expect(() => parseBandwidthLimit("08:00,1M 08:00,off")).toThrow(/given twice/);
    expect(() => parseBandwidthLimit("08:00,1Q 09:00,off")).toThrow(
      /timetable entry "08:00,1Q": "1Q" is not a rate/,
    );
  });

  it("is a config error (exit 2) naming the key", () => {
    const env = { MOTIONEYE_VAULT_SYNC_BANDWIDTH_LIMIT: "08:00,lots" };
    expect(() => loadConfig({ env, cwd: "/nonexistent" })).toThrow(
      /sync\.bandwidthLimit: timetable entry "08:00,lots": "lots" is not a rate/,
    );
    const ok = loadConfig({ env: { MOTIONEYE_VAULT_SYNC_BANDWIDTH_LIMIT: "2M" }, cwd: "/x" });
    expect(ok.config.sync.bandwidthLimit).toBe("2M");
  });

  it("formats rates for people", () => {
    expect(formatRate(null)).toBe("off");
    expect(formatRate(512 * 1024)).toBe("512 KiB/s");
    expect(formatRate(2 * 1024 * 1024)).toBe("2 MiB/s");
    expect(formatRate(1500)).toBe("1.46 KiB/s");
  });
});

describe("the timetable", () => {
  const table = parseBandwidthLimit("08:00,512k 12:30,2M 23:00,off");

  it("gives the entry in force, the last one before the first time of the day", () => {
    expect(rateAt(table, at(7, 59))).toEqual({ rate: null, nextChange: at(8, 0) });
    expect(rateAt(table, at(8, 0))).toEqual({ rate: 512 * 1024, nextChange: at(12, 30) });
    expect(rateAt(table, at(12, 45)).rate).toBe(2 * 1024 * 1024);
    expect(rateAt(table, at(23, 0))).toEqual({ rate: null, nextChange: at(8, 0, 2) });
  });

  it("switches the shared limit when the clock passes a change (injected clock)", () => {
    let now = at(22, 59).getTime();
    const limit = new BandwidthLimit(table, "08:00,512k 12:30,2M 23:00,off", { now: () => now });
    const seen: Array<number | null> = [];
    const off = limit.onChange((s) => seen.push(s.bytesPerSecond));
    expect(limit.state()).toMatchObject({
      bytesPerSecond: 2 * 1024 * 1024,
      text: "2 MiB/s",
      from: "config",
      nextChange: at(23, 0).toISOString(),
    });
    now = at(23, 0).getTime();
    expect(limit.state()).toMatchObject({ bytesPerSecond: null, text: "off" });
    now = at(8, 1, 2).getTime();
    expect(limit.state().bytesPerSecond).toBe(512 * 1024);
    expect(seen).toEqual([null, 512 * 1024]);
    off();
  });

  it("takes a live override until the timetable's next change", () => {
    let now = at(9, 0).getTime();
    const limit = new BandwidthLimit(table, "08:00,512k 12:30,2M 23:00,off", { now: () => now });
    limit.override(4 * 1024 * 1024);
    expect(limit.state()).toMatchObject({ text: "4 MiB/s", from: "override" });
    now = at(12, 30).getTime();
    expect(limit.state()).toMatchObject({ text: "2 MiB/s", from: "config" });
  });
});

describe("the shared token bucket", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** Sends `bytes` through a throttle in 64 KiB chunks; counts what came out. */
  function flow(limit: BandwidthLimit, bytes: number) {
    let out = 0;
    const chunks = Array.from({ length: bytes / 65536 }, () => Buffer.alloc(65536));
    const done = pipeline(
      Readable.from(chunks),
      throttle(limit),
      new Writable({
        write(chunk: Buffer, _e, cb) {
          out += chunk.length;
          cb();
        },
      }),
    );
    return { done, out: () => out };
  }

  it("lets two concurrent uploads through at the one rate, shared, and completes both", async () => {
    vi.useFakeTimers({ now: at(10, 0) });
    const rate = 256 * 1024;
    const limit = new BandwidthLimit({ kind: "rate", rate }, "256k");
    const a = flow(limit, 1024 * 1024);
    const b = flow(limit, 1024 * 1024);
    await vi.advanceTimersByTimeAsync(4000);
    const sent = a.out() + b.out();
    // 4 s at 256 KiB/s, plus the bucket's burst (1/8 s, at least 16 KiB), for both together.
    expect(sent).toBeGreaterThanOrEqual(4 * rate - 64 * 1024);
    expect(sent).toBeLessThanOrEqual(4 * rate + 32 * 1024 + 64 * 1024);
    // Shared fairly: neither got much more than the other.
    expect(Math.abs(a.out() - b.out())).toBeLessThanOrEqual(128 * 1024);
    await vi.advanceTimersByTimeAsync(5000);
    await Promise.all([a.done, b.done]);
    expect(a.out()).toBe(1024 * 1024);
    expect(b.out()).toBe(1024 * 1024);
  });

  it("lets everything through at once when off, and releases waiters when the cap lifts", async () => {
    vi.useFakeTimers({ now: at(22, 59, 1) });
    const limit = new BandwidthLimit(
      parseBandwidthLimit("08:00,16k 23:00,off"),
      "08:00,16k 23:00,off",
    );
    const f = flow(limit, 4 * 1024 * 1024);
    await vi.advanceTimersByTimeAsync(1000);
    expect(f.out()).toBeLessThan(64 * 1024);
    // 23:00: no cap any more; the waiting upload finishes without waiting out its old rate.
    await vi.advanceTimersByTimeAsync(60_000);
    await f.done;
    expect(f.out()).toBe(4 * 1024 * 1024);
  });
});
