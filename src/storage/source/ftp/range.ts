/**
 * A ranged read over FTP on one pooled control connection: PASV, REST <offset>, RETR, take the
 * first `length` bytes from the data connection, then close the data connection. The server
 * answers the early close on the control connection (vsftpd and ProFTPD: 426) and that answer
 * is read here, so the control connection stays in step and goes back to the pool.
 *
 * basic-ftp's own downloadTo cannot stop early without closing the whole session (its transfer
 * fails as soon as the data connection closes, before the server's answer has arrived), so this
 * drives its FTPContext directly.
 */
import { type Client, FTPError, type TaskResolver } from "basic-ftp";

/** How long to wait for the server's answer to an early close before giving up the session. */
const ANSWER_AFTER_CLOSE_MS = 3_000;

export interface FtpRangeResult {
  data: Buffer;
  /** Bytes that came over the data connection: the server sends ahead of what was asked for. */
  received: number;
}

/**
 * Up to `length` (> 0) bytes of `remotePath` from `offset`; fewer only at the end of the file.
 * A server error (e.g. 550: no such file) rejects with basic-ftp's FTPError and leaves the client
 * usable; a broken connection rejects and leaves it closed.
 */
export async function ftpReadRange(
  client: Client,
  remotePath: string,
  offset: number,
  length: number,
): Promise<FtpRangeResult> {
  const ftp = client.ftp;
  if (/[\r\n]/.test(remotePath)) throw new Error("path contains a line break");
  await client.prepareTransfer(ftp);
  const socket = ftp.dataSocket;
  if (!socket) throw new Error("no data connection after PASV");

  const chunks: Buffer[] = [];
  let kept = 0;
  let received = 0;
  let closedEarly = false;
  let dataEnded = false;
  let answered = false;
  let task: TaskResolver | undefined;
  let giveUp: NodeJS.Timeout | undefined;
  /** Done once we have our bytes (or the file ended) and the server has answered. */
  const settle = () => {
    if (task && answered && (dataEnded || closedEarly)) task.resolve(undefined);
  };

  socket.on("data", (chunk: Buffer) => {
    received += chunk.length;
    if (closedEarly) return;
    const take = Math.min(chunk.length, length - kept);
    chunks.push(take === chunk.length ? chunk : chunk.subarray(0, take));
    kept += take;
    if (kept < length) return;
    closedEarly = true;
    socket.destroy();
    // A server that never answers the close costs this session, not the read.
    giveUp = setTimeout(() => client.close(), ANSWER_AFTER_CLOSE_MS);
    settle();
  });
  socket.on("end", () => {
    dataEnded = true;
    settle();
  });

  try {
    await ftp.handle(offset > 0 ? `REST ${offset}` : `RETR ${remotePath}`, (res, resolver) => {
      task = resolver;
      if (res instanceof Error) {
        // Our early close makes the server report a failed transfer: that is the answer we
        // wait for. Any error before we had our bytes fails the read.
        if (!closedEarly) return resolver.reject(res);
        answered = true;
        if (!(res instanceof FTPError)) client.close(); // the session itself broke
        return settle();
      }
      if (res.code === 350) {
        ftp.send(`RETR ${remotePath}`);
      } else if (res.code >= 200 && res.code < 300) {
        answered = true;
        settle();
      } else if (res.code >= 300 && res.code < 400) {
        resolver.reject(new Error(`unexpected FTP answer: ${res.message}`));
      }
      // 1xx (150/125, transfer starting): the data connection's handlers do the work.
    });
  } finally {
    clearTimeout(giveUp);
    // Closes the data connection if it is still open, as basic-ftp's own transfers do.
    ftp.dataSocket = undefined;
  }
  return { data: Buffer.concat(chunks, kept), received };
}
