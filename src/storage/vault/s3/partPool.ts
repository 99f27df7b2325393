/**
 * Part buffers shared by a store's uploads. A fresh 5 MiB buffer costs page faults on its first
 * fill and a garbage collection to give back, several times per clip; handed from one part (and
 * one clip) to the next, the buffers are filled at memory speed and memory stays at the parts in
 * use. Buffers nobody took for a while are dropped, so an idle service does not keep them.
 */
export class PartPool {
  private readonly free: Buffer[] = [];
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    /** The size pooled; parts of other sizes (very large clips) are allocated and let go. */
    readonly size: number,
    private readonly keepIdleMs = 10_000,
    /** Most buffers kept free: enough for the parts of two clips at once. */
    private readonly maxFree = 6,
  ) {}

  take(size: number): Buffer {
    if (size !== this.size) return Buffer.allocUnsafe(size);
    return this.free.pop() ?? Buffer.allocUnsafe(size);
  }

  /** Hands a buffer (or a start of one: a clip's last part) back; it must not be used again. */
  give(b: Buffer): void {
    // A pooled size is never cut from Node's small-buffer slab: its memory is its own.
    const whole = b.byteOffset === 0 && b.buffer.byteLength === this.size;
    if (!whole || this.free.length >= this.maxFree) return;
    this.free.push(b.length === this.size ? b : Buffer.from(b.buffer, 0, this.size));
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.free.length = 0;
    }, this.keepIdleMs);
    this.idleTimer.unref();
  }

  /** Buffers waiting to be taken (for tests). */
  get freeCount(): number {
    return this.free.length;
  }
}
