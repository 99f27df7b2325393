/**
 * Downloads over SFTP with several READ requests in flight, as OpenSSH's `sftp` does: a read
 * stream that asks for one chunk at a time waits a round trip per chunk with the link idle.
 * Used by restore, verify, the shell and the bot, over either transport.
 */
import { Readable } from "node:stream";

/**
 * One READ: up to `length` bytes at `position` (one buffer, or the pieces they arrived in); null
 * or empty at the end of the file.
 */
export type ReadChunk = (position: number, length: number) => Promise<Buffer | Buffer[] | null>;

export interface ReadAheadOptions {
  /** Bytes asked for per request (the server's largest read). */
  chunkSize: number;
  /** Requests in flight at most: memory is bounded by chunkSize x inFlight. */
  inFlight: number;
  /** The size the file had when opened: no request is sent far past it. */
  size?: number;
  /** Called once when the stream is done, ended or destroyed (e.g. to close the handle). */
  onClose?: () => void;
  /** The error the stream fails with when a request fails (e.g. naming the file). */
  describeError?: (err: unknown) => Error;
}

interface Request {
  position: number;
  length: number;
  settled: boolean;
  data?: Buffer[];
}

/**
 * A Readable of the file's bytes in order, read through `read` with up to `inFlight` requests
 * outstanding. It reads until the server says end of file (so a file that grew is read whole); a
 * short reply is followed by a request for the rest before anything after it is delivered.
 */
export function createReadAhead(read: ReadChunk, opts: ReadAheadOptions): Readable {
  const queue: Request[] = [];
  let next = 0;
  let eof = false;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    opts.onClose?.();
  };

  const issue = (position: number, length: number, atHead = false): void => {
    const req: Request = { position, length, settled: false };
    if (atHead) queue.unshift(req);
    else queue.push(req);
    read(position, length).then(
      (data) => {
        req.settled = true;
        req.data = data === null ? [] : Array.isArray(data) ? data : [data];
        if (req === queue[0]) deliver();
      },
      (err: unknown) => {
        if (!eof && !stream.destroyed) stream.destroy(opts.describeError?.(err) ?? (err as Error));
      },
    );
  };

  /** Keeps `inFlight` requests going, up to one past the known size (it finds the end). */
  const fill = () => {
    while (!eof && !stream.destroyed && queue.length < opts.inFlight) {
      // Past the size taken at open, one request at a time until the end shows.
      if (opts.size !== undefined && next > opts.size && queue.length > 0) break;
      issue(next, opts.chunkSize);
      next += opts.chunkSize;
    }
  };

  let wanted = false;
  const deliver = () => {
    while (wanted && !stream.destroyed) {
      const head = queue[0];
      if (!head?.settled) break;
      queue.shift();
      const parts = head.data ?? [];
      const size = parts.reduce((n, b) => n + b.length, 0);
      if (size === 0) {
        // The end: later requests (past it) are dropped as they come back.
        eof = true;
        queue.length = 0;
        stream.push(null);
        close();
        return;
      }
      if (size < head.length) {
        // A short read: the rest of this range comes before anything after it.
        issue(head.position + size, head.length - size, true);
      }
      for (const part of parts) wanted = stream.push(part);
    }
    fill();
  };

  const stream = new Readable({
    // Replies wait in `queue`; the stream itself buffers little.
    highWaterMark: opts.chunkSize,
    read() {
      wanted = true;
      deliver();
    },
    destroy(err, callback) {
      queue.length = 0;
      close();
      callback(err);
    },
  });
  return stream;
}
