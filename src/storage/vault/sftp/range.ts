/**
 * A ranged read over SFTP: OPEN, READ at the offset (more READs only when the server answers
 * short), CLOSE. Three round trips for a box header, whatever the file's size.
 */

/** The part of ssh2's SFTP client used here (ssh2-sftp-client's `client.sftp`). */
export interface SftpReadWire {
  open(
    path: string,
    flags: string,
    callback: (err: Error | undefined | null, handle: Buffer) => void,
  ): void;
  read(
    handle: Buffer,
    buffer: Buffer,
    offset: number,
    length: number,
    position: number,
    callback: (err: Error | undefined | null, bytesRead: number) => void,
  ): void;
  close(handle: Buffer, callback: (err?: Error | null) => void): void;
}

function call<T>(fn: (cb: (err: Error | undefined | null, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));
}

/** Up to `length` bytes of `path` from `offset`; fewer only at the end of the file. */
export async function sftpReadRange(
  wire: SftpReadWire,
  path: string,
  offset: number,
  length: number,
): Promise<Buffer> {
  const handle = await call<Buffer>((cb) => wire.open(path, "r", cb));
  try {
    const buf = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      // ssh2 answers a read at or past the end with 0 bytes, not an error.
      const n = await call<number>((cb) =>
        wire.read(handle, buf, got, length - got, offset + got, cb),
      );
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  } finally {
    await new Promise<void>((resolve) => wire.close(handle, () => resolve()));
  }
}
