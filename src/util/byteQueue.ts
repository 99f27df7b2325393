/**
 * A FIFO of buffers from which pieces of exact sizes are taken, copying only when a piece spans
 * two buffers: how the age payload cuts 64 KiB chunks and the SFTP upload cuts its requests
 * from whatever chunk sizes a stream delivers.
 */
export class ByteQueue {
  private parts: Buffer[] = [];
  /** Bytes queued. */
  length = 0;

  push(b: Buffer): void {
    if (b.length === 0) return;
    this.parts.push(b);
    this.length += b.length;
  }

  /** The next `n` bytes (`n` <= length). */
  take(n: number): Buffer {
    this.length -= n;
    const first = this.parts[0];
    if (first && first.length >= n) {
      if (first.length === n) this.parts.shift();
      else this.parts[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const part = this.parts[0] as Buffer;
      const used = Math.min(part.length, n - filled);
      part.copy(out, filled, 0, used);
      filled += used;
      if (used === part.length) this.parts.shift();
      else this.parts[0] = part.subarray(used);
    }
    return out;
  }

  /** The next `n` bytes (`n` <= length) as views of the queued buffers: never a copy. */
  takeParts(n: number): Buffer[] {
    this.length -= n;
    const out: Buffer[] = [];
    for (let left = n; left > 0; ) {
      const part = this.parts[0] as Buffer;
      if (part.length <= left) {
        out.push(part);
        this.parts.shift();
        left -= part.length;
      } else {
        out.push(part.subarray(0, left));
        this.parts[0] = part.subarray(left);
        left = 0;
      }
    }
    return out;
  }

  clear(): void {
    this.parts = [];
    this.length = 0;
  }
}
