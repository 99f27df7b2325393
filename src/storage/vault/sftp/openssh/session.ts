/**
 * An SFTP v3 client over any pair of byte streams: here the stdin/stdout of `ssh -s host sftp`,
 * so OpenSSH's client does the SSH transport (key exchange, encryption, MACs, windows) in C.
 *
 * Requests are pipelined: each gets an id and its reply settles its promise, whatever the order.
 * When the streams end (ssh exited, the connection was cut) every pending request fails with the
 * reason; a session never leaves a request waiting forever.
 */
import type { Readable, Writable } from "node:stream";
import {
  type Attrs,
  encodeInit,
  encodePacket,
  type Field,
  FXP,
  OPEN_FLAGS,
  PacketFramer,
  partsFrom,
  Reader,
  SftpStatusError,
  STATUS,
} from "./packets.js";

interface Reply {
  type: number;
  body: Reader;
  /** A DATA reply's bytes as the views they arrived in (no copy). */
  data?: Buffer[];
}

interface Pending {
  resolve(reply: Reply): void;
  reject(err: Error): void;
}

/** The largest read and write a server takes in one request (limits@openssh.com). */
export interface SftpLimits {
  readLength: number;
  writeLength: number;
}

/** What servers without limits@openssh.com take (the draft's minimum packet is 34000 bytes). */
const DEFAULT_LIMITS: SftpLimits = { readLength: 32 * 1024, writeLength: 32 * 1024 };
/** Never more per request than this, whatever a server says (bounds memory per request). */
const MAX_REQUEST = 256 * 1024;

export class SftpSession {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly framer: PacketFramer;
  private readonly extensions = new Map<string, string>();
  private version: ((v: number) => void) | undefined;
  private lostError: Error | undefined;
  private readonly lostListeners = new Set<(err: Error) => void>();
  limits: SftpLimits = DEFAULT_LIMITS;

  private constructor(
    private readonly out: Writable,
    input: Readable,
    whyEnded: () => Promise<Error>,
  ) {
    this.framer = new PacketFramer((p) => this.onPacket(p));
    input.on("data", (chunk: Buffer) => {
      try {
        this.framer.push(chunk);
      } catch (err) {
        this.lost(err as Error);
      }
    });
    // A broken pipe says less than why the other end went away (ssh's exit): prefer that.
    const ended = () => void whyEnded().then((err) => this.lost(err));
    input.on("end", ended);
    input.on("error", ended);
    out.on("error", ended);
  }

  /**
   * Speaks INIT/VERSION over the streams and asks for the server's limits. Rejects when the
   * streams end first (or `lost()` is called, e.g. on a timeout), with that reason.
   */
  static async start(
    out: Writable,
    input: Readable,
    /** Why the input ended (e.g. ssh's exit status and message), for the errors that follow. */
    whyEnded: () => Promise<Error> = async () => new Error("the server closed the SFTP channel"),
  ): Promise<SftpSession> {
    const session = new SftpSession(out, input, whyEnded);
    await session.handshake();
    return session;
  }

  private async handshake(): Promise<void> {
    let off = () => {};
    const version = new Promise<number>((resolve, reject) => {
      this.version = resolve;
      off = this.onLost(reject);
    });
    this.out.write(encodeInit(3));
    const v = await version.finally(off);
    if (v < 3) throw new Error(`the server speaks SFTP version ${v}; version 3 is needed`);
    if (this.extensions.get("limits@openssh.com") === "1") {
      const r = await this.extended("limits@openssh.com", []);
      r.u64(); // max packet length
      const read = r.u64();
      const write = r.u64();
      this.limits = {
        readLength: read > 0 ? Math.min(read, MAX_REQUEST) : DEFAULT_LIMITS.readLength,
        writeLength: write > 0 ? Math.min(write, MAX_REQUEST) : DEFAULT_LIMITS.writeLength,
      };
    }
  }

  /** True once the streams ended or broke: every request fails from then on. */
  get dead(): boolean {
    return this.lostError !== undefined;
  }

  has(extension: string): boolean {
    return this.extensions.has(extension);
  }

  /** Ends the session with `err`: pending and later requests fail with it. Idempotent. */
  lost(err: Error): void {
    if (this.lostError) return;
    this.lostError = err;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(err);
    for (const l of [...this.lostListeners]) l(err);
    this.lostListeners.clear();
  }

  /** Calls `cb` once when the session is lost (at once, asynchronously, if it is). */
  onLost(cb: (err: Error) => void): () => void {
    if (this.lostError) {
      const err = this.lostError;
      queueMicrotask(() => cb(err));
      return () => {};
    }
    this.lostListeners.add(cb);
    return () => this.lostListeners.delete(cb);
  }

  // -- requests ---------------------------------------------------------------------------------

  private request(type: number, fields: Field[], payload?: Buffer[]): Promise<Reply> {
    if (this.lostError) return Promise.reject(this.lostError);
    const id = this.nextId;
    this.nextId = (this.nextId + 1) >>> 0 || 1;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const size = payload ? payload.reduce((n, b) => n + b.length, 0) : 0;
      const header = encodePacket(type, id, fields, size);
      if (payload) {
        // One writev for header and data, the data itself never copied.
        this.out.cork();
        this.out.write(header);
        for (const b of payload) this.out.write(b);
        process.nextTick(() => this.out.uncork());
      } else {
        this.out.write(header);
      }
    });
  }

  private onPacket(parts: Buffer[]): void {
    const first = parts[0] as Buffer;
    const type = first[0] as number;
    // A DATA reply spread over several chunks: its header (type, id, length: 9 bytes) is read
    // out, its data passed on as the views it arrived in.
    if (type === FXP.DATA && parts.length > 1) {
      const header = first.length >= 9 ? first : Buffer.concat(parts).subarray(0, 9);
      const id = header.readUInt32BE(1);
      const p = this.pending.get(id);
      if (!p) return;
      this.pending.delete(id);
      p.resolve({ type, body: new Reader(Buffer.alloc(0)), data: partsFrom(parts, 9) });
      return;
    }
    const packet = parts.length === 1 ? first : Buffer.concat(parts);
    const body = new Reader(packet.subarray(1));
    if (type === FXP.VERSION) {
      const version = body.u32();
      while (body.remaining > 0) this.extensions.set(body.string(), body.string());
      this.version?.(version);
      this.version = undefined;
      return;
    }
    const id = body.u32();
    const p = this.pending.get(id);
    if (!p) return; // a reply to a request given up on
    this.pending.delete(id);
    p.resolve({ type, body });
  }

  /** A STATUS reply as an error (or undefined for OK). */
  private static statusError(body: Reader): SftpStatusError | undefined {
    const code = body.u32();
    if (code === STATUS.OK) return undefined;
    let message = "";
    try {
      message = body.string();
    } catch {}
    return new SftpStatusError(code, message);
  }

  private static unexpected(type: number): Error {
    return new Error(`unexpected SFTP reply type ${type}`);
  }

  private async expectStatus(type: number, fields: Field[], payload?: Buffer[]): Promise<void> {
    const r = await this.request(type, fields, payload);
    if (r.type !== FXP.STATUS) throw SftpSession.unexpected(r.type);
    const err = SftpSession.statusError(r.body);
    if (err) throw err;
  }

  private async expect<T>(
    type: number,
    fields: Field[],
    replyType: number,
    read: (body: Reader) => T,
  ): Promise<T> {
    const r = await this.request(type, fields);
    if (r.type === replyType) return read(r.body);
    if (r.type === FXP.STATUS)
      throw SftpSession.statusError(r.body) ?? SftpSession.unexpected(r.type);
    throw SftpSession.unexpected(r.type);
  }

  private extended(name: string, fields: Field[]): Promise<Reader> {
    return this.expect(FXP.EXTENDED, [{ str: name }, ...fields], FXP.EXTENDED_REPLY, (b) => b);
  }

  stat(path: string): Promise<Attrs> {
    return this.expect(FXP.STAT, [{ str: path }], FXP.ATTRS, (b) => b.attrs());
  }

  lstat(path: string): Promise<Attrs> {
    return this.expect(FXP.LSTAT, [{ str: path }], FXP.ATTRS, (b) => b.attrs());
  }

  fstat(handle: Buffer): Promise<Attrs> {
    return this.expect(FXP.FSTAT, [{ str: handle }], FXP.ATTRS, (b) => b.attrs());
  }

  /** Opens for writing, created or truncated, with `mode` for a new file. */
  openWrite(path: string, mode: number): Promise<Buffer> {
    const flags = OPEN_FLAGS.WRITE | OPEN_FLAGS.CREAT | OPEN_FLAGS.TRUNC;
    return this.expect(
      FXP.OPEN,
      [{ str: path }, { u32: flags }, { attrs: { permissions: mode } }],
      FXP.HANDLE,
      (b) => Buffer.from(b.bytes()),
    );
  }

  openRead(path: string): Promise<Buffer> {
    return this.expect(
      FXP.OPEN,
      [{ str: path }, { u32: OPEN_FLAGS.READ }, { attrs: {} }],
      FXP.HANDLE,
      (b) => Buffer.from(b.bytes()),
    );
  }

  close(handle: Buffer): Promise<void> {
    return this.expectStatus(FXP.CLOSE, [{ str: handle }]);
  }

  /** One WRITE of `data` (several buffers are sent one after the other, not copied). */
  write(handle: Buffer, position: number, data: Buffer | Buffer[]): Promise<void> {
    const parts = Array.isArray(data) ? data : [data];
    const size = parts.reduce((n, b) => n + b.length, 0);
    return this.expectStatus(FXP.WRITE, [{ str: handle }, { u64: position }, { u32: size }], parts);
  }

  /** Up to `length` bytes at `position` (in one or more pieces); null at the end of the file. */
  async read(handle: Buffer, position: number, length: number): Promise<Buffer[] | null> {
    const r = await this.request(FXP.READ, [{ str: handle }, { u64: position }, { u32: length }]);
    if (r.type === FXP.DATA) return r.data ?? [r.body.bytes()];
    if (r.type !== FXP.STATUS) throw SftpSession.unexpected(r.type);
    const err = SftpSession.statusError(r.body);
    if (err?.code === STATUS.EOF) return null;
    throw err ?? SftpSession.unexpected(r.type);
  }

  /** Every entry of a directory but `.` and `..`, with its attributes (lstat: links as links). */
  async readdir(path: string): Promise<Array<{ name: string; attrs: Attrs }>> {
    const handle = await this.expect(FXP.OPENDIR, [{ str: path }], FXP.HANDLE, (b) =>
      Buffer.from(b.bytes()),
    );
    const entries: Array<{ name: string; attrs: Attrs }> = [];
    try {
      for (;;) {
        const r = await this.request(FXP.READDIR, [{ str: handle }]);
        if (r.type === FXP.STATUS) {
          const err = SftpSession.statusError(r.body);
          if (err?.code === STATUS.EOF) break;
          throw err ?? SftpSession.unexpected(r.type);
        }
        if (r.type !== FXP.NAME) throw SftpSession.unexpected(r.type);
        for (let n = r.body.u32(); n > 0; n--) {
          const name = r.body.string();
          r.body.string(); // longname, for humans
          const attrs = r.body.attrs();
          if (name !== "." && name !== "..") entries.push({ name, attrs });
        }
      }
    } finally {
      await this.close(handle).catch(() => {});
    }
    return entries;
  }

  mkdir(path: string, mode = 0o755): Promise<void> {
    return this.expectStatus(FXP.MKDIR, [{ str: path }, { attrs: { permissions: mode } }]);
  }

  remove(path: string): Promise<void> {
    return this.expectStatus(FXP.REMOVE, [{ str: path }]);
  }

  /** Plain SFTP rename: refuses to replace an existing target. */
  rename(from: string, to: string): Promise<void> {
    return this.expectStatus(FXP.RENAME, [{ str: from }, { str: to }]);
  }

  /** rename(2) on the server: replaces the target atomically (posix-rename@openssh.com). */
  posixRename(from: string, to: string): Promise<void> {
    return this.expectStatus(FXP.EXTENDED, [
      { str: "posix-rename@openssh.com" },
      { str: from },
      { str: to },
    ]);
  }
}
