import { afterEach, describe, expect, it, vi } from "vitest";
import { PartPool } from "../../src/storage/vault/s3/partPool.js";

const SIZE = 5 * 1024 * 1024;

describe("S3 part buffers shared between uploads", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("hands a returned buffer to the next part, a clip's shorter last part included", () => {
    const pool = new PartPool(SIZE);
    const first = pool.take(SIZE);
    pool.give(first);
    expect(pool.take(SIZE)).toBe(first);

    const last = pool.take(SIZE).subarray(0, 1234);
    pool.give(last);
    const again = pool.take(SIZE);
    expect(again.length).toBe(SIZE);
    expect(again.buffer).toBe(last.buffer);
  });

  it("keeps no buffer of another size, nor one cut from a bigger allocation", () => {
    const pool = new PartPool(SIZE);
    pool.give(Buffer.allocUnsafe(SIZE * 2));
    pool.give(Buffer.allocUnsafe(SIZE * 2).subarray(SIZE));
    pool.give(Buffer.allocUnsafe(SIZE * 2).subarray(0, SIZE));
    expect(pool.freeCount).toBe(0);
    expect(pool.take(SIZE * 2).length).toBe(SIZE * 2);
  });

  it("keeps at most maxFree buffers, and drops them once none came back for a while", () => {
    vi.useFakeTimers();
    const pool = new PartPool(SIZE, 1000, 2);
    for (let i = 0; i < 4; i++) pool.give(Buffer.allocUnsafe(SIZE));
    expect(pool.freeCount).toBe(2);
    vi.advanceTimersByTime(999);
    expect(pool.freeCount).toBe(2);
    vi.advanceTimersByTime(1);
    expect(pool.freeCount).toBe(0);
  });
});
