/**
 * Pipelined reads for the ssh2 transport: ssh2's own read stream has one READ in flight at a
 * time; this keeps several going (./readAhead.ts) on ssh2's SFTP channel.
 */
import type { Readable } from "node:stream";
import type { SftpReadWire } from "./range.js";
import { createReadAhead } from "./readAhead.js";

/** Requests in flight: 16 x ~255 KiB against OpenSSH (4 MiB), as much as the upload side. */
const IN_FLIGHT = 16;

/** The largest READ ssh2 sends as one request to this server (it learns it from the server). */
function chunkSize(wire: SftpReadWire): number {
  const max = (wire as unknown as { _maxReadLen?: unknown })._maxReadLen;
  return typeof max === "number" && max >= 16 * 1024 ? max : 32 * 1024;
}

/** Opens `path` and reads it with several requests in flight; `size` is its size from a stat. */
export function openPipelinedRead(
  wire: SftpReadWire,
  path: string,
  size: number,
): Promise<Readable> {
  return new Promise((resolve, reject) => {
    wire.open(path, "r", (err, handle) => {
      if (err) return reject(err);
      resolve(
        createReadAhead(
          (position, length) =>
            new Promise((res, rej) => {
              const buffer = Buffer.allocUnsafe(length);
              wire.read(handle, buffer, 0, length, position, (e, bytesRead) =>
                e ? rej(e) : res(bytesRead > 0 ? buffer.subarray(0, bytesRead) : null),
              );
            }),
          {
            chunkSize: chunkSize(wire),
            inFlight: IN_FLIGHT,
            size,
            onClose: () => wire.close(handle, () => {}),
          },
        ),
      );
    });
  });
}
