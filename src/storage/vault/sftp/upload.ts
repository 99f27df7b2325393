/**
 * Uploads over SFTP with several WRITE requests in flight, as OpenSSH's own `sftp` does (its -R
 * option): ssh2's WriteStream sends a large write as sequential requests, each waiting for the
 * server's reply, which leaves the link idle for a round trip every 256 KiB.
 */
import { Writable } from "node:stream";
import { ByteQueue } from "../../../util/byteQueue.js";

/** The part of ssh2's SFTP client used here (ssh2-sftp-client's `client.sftp`). */
export interface SftpWire {
  open(
    path: string,
    flags: string,
    attrs: { mode: number },
    callback: (err: Error | undefined | null, handle: Buffer) => void,
  ): void;
  close(handle: Buffer, callback: (err?: Error | null) => void): void;
  write(
    handle: Buffer,
    data: Buffer,
    offset: number,
    length: number,
    position: number,
    callback: (err?: Error | null) => void,
  ): void;
  /**
   * One WRITE of several buffers sent as they are (writev), for transports that can: requests
   * bigger than the chunks they are made of then cost no copy (openssh/).
   */
  writeParts?(
    handle: Buffer,
    parts: Buffer[],
    position: number,
    callback: (err?: Error | null) => void,
  ): void;
}

/**
 * Bytes of WRITE requests awaiting the server's reply: what OpenSSH's sftp keeps in flight
 * (64 x 32 KiB) and OpenSSH's channel window. Over a WAN a transfer cannot be faster than this
 * per round trip (2 MiB / 50 ms = 40 MB/s); on loopback 512 KiB to 4 MiB measured the same.
 */
const MAX_IN_FLIGHT_BYTES = 2 * 1024 * 1024;
/** ssh2's own cap per request on servers it does not know (it splits bigger writes). */
const SAFE_REQUEST = 32 * 1024;

/** The largest WRITE ssh2 sends as one request to this server (it learns it from the server). */
function requestSize(sftp: SftpWire): number {
  const max = (sftp as unknown as { _maxWriteLen?: unknown })._maxWriteLen;
  return typeof max === "number" && max >= SAFE_REQUEST ? max : SAFE_REQUEST;
}

/**
 * Request size that fills whole SSH packets: ssh2 sends an SFTP packet as CHANNEL_DATA packets
 * of at most the server's packet size (OpenSSH: 32 KiB), so a 64 KiB write would go out as two
 * full packets and a 49-byte one. Each packet costs a socket write and its own encryption.
 */
function requestSizeFor(sftp: SftpWire, handle: Buffer): number {
  const max = requestSize(sftp);
  const packet = (sftp as unknown as { outgoing?: { packetSize?: unknown } }).outgoing?.packetSize;
  // length, type, request id, handle (length-prefixed), offset, data length
  const header = 4 + 1 + 4 + 4 + handle.length + 8 + 4;
  if (typeof packet !== "number" || packet < 1024) return max;
  const packets = Math.floor((max + header) / packet);
  return packets >= 1 ? packets * packet - header : max;
}

/**
 * A Writable onto an open SFTP file handle, writing from offset 0. It sends requests of one
 * size (see requestSizeFor), whatever the sizes of the chunks written to it, and accepts more
 * data while fewer than MAX_IN_FLIGHT_BYTES await replies; `end()` finishes once every write
 * succeeded. The caller opens and closes the handle. After a failure replies are ignored.
 */
export function createPipelinedWriter(
  sftp: SftpWire,
  handle: Buffer,
  /** Other transports than ssh2 say their own request size and window (openssh/). */
  opts: { requestSize?: number; maxInFlight?: number } = {},
): Writable & { readonly bytesAccepted: number } {
  const piece = opts.requestSize ?? requestSizeFor(sftp, handle);
  const maxInFlight = opts.maxInFlight ?? MAX_IN_FLIGHT_BYTES;
  let position = 0;
  let inFlight = 0;
  let failed: Error | undefined;
  /** Continues a write or final waiting for room or for the last replies. */
  let waiting: (() => void) | undefined;
  /** Bytes written to us but not sent yet: less than one request's worth between writes. */
  const carry = new ByteQueue();
  /** Bytes written to us (all sent once `final` succeeded). */
  let accepted = 0;

  const onReply = (size: number) => (err: Error | undefined | null) => {
    inFlight -= size;
    if (err) failed ??= err;
    const next = waiting;
    waiting = undefined;
    next?.();
  };

  const send = (size: number) => {
    inFlight += size;
    if (sftp.writeParts) sftp.writeParts(handle, carry.takeParts(size), position, onReply(size));
    else {
      const data = carry.take(size);
      sftp.write(handle, data, 0, size, position, onReply(size));
    }
    position += size;
  };

  /** Sends whole requests from `carry` while there is room; `all` sends the last short one too. */
  const pump = (all: boolean, done: (err?: Error) => void) => {
    const step = () => {
      if (failed) return done(failed);
      const ready = () => carry.length >= piece || (all && carry.length > 0);
      while (inFlight < maxInFlight && ready()) {
        send(Math.min(piece, carry.length));
      }
      if (ready()) waiting = step;
      else done();
    };
    step();
  };

  const writer = new Writable({
    highWaterMark: 256 * 1024,
    write(chunk: Buffer, _encoding, callback) {
      accepted += chunk.length;
      carry.push(chunk);
      pump(false, callback);
    },
    final(callback) {
      pump(true, (err) => {
        if (err) return callback(err);
        const drained = () => {
          if (failed) callback(failed);
          else if (inFlight === 0) callback();
          else waiting = drained;
        };
        drained();
      });
    },
    destroy(err, callback) {
      carry.clear();
      callback(err);
    },
  });
  return Object.defineProperty(writer, "bytesAccepted", { get: () => accepted }) as Writable & {
    readonly bytesAccepted: number;
  };
}

/** Creates (or truncates) `path` for writing with `mode`; resolves with the handle. */
export function openForWrite(sftp: SftpWire, path: string, mode: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    sftp.open(path, "w", { mode }, (err, handle) => (err ? reject(err) : resolve(handle)));
  });
}

/** Closes a handle; once this resolves the server has the file's data. */
export function closeHandle(sftp: SftpWire, handle: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    sftp.close(handle, (err) => (err ? reject(err) : resolve()));
  });
}
