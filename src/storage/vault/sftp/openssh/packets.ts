/**
 * SFTP version 3 (draft-ietf-secsh-filexfer-02, what OpenSSH's sftp-server speaks) on the wire:
 * the packet types, flags and status codes this client uses, the attributes record, and the
 * framing of the byte stream into packets (`uint32 length, byte type, data`).
 */

export const FXP = {
  INIT: 1,
  VERSION: 2,
  OPEN: 3,
  CLOSE: 4,
  READ: 5,
  WRITE: 6,
  LSTAT: 7,
  FSTAT: 8,
  OPENDIR: 11,
  READDIR: 12,
  REMOVE: 13,
  MKDIR: 14,
  STAT: 17,
  RENAME: 18,
  STATUS: 101,
  HANDLE: 102,
  DATA: 103,
  NAME: 104,
  ATTRS: 105,
  EXTENDED: 200,
  EXTENDED_REPLY: 201,
} as const;

/** SSH_FXF_* open flags. */
export const OPEN_FLAGS = { READ: 0x01, WRITE: 0x02, CREAT: 0x08, TRUNC: 0x10 } as const;

/** SSH_FX_* status codes. */
export const STATUS = {
  OK: 0,
  EOF: 1,
  NO_SUCH_FILE: 2,
  PERMISSION_DENIED: 3,
  FAILURE: 4,
  OP_UNSUPPORTED: 8,
} as const;

const ATTR = { SIZE: 0x1, UIDGID: 0x2, PERMISSIONS: 0x4, ACMODTIME: 0x8, EXTENDED: 0x80000000 };

/** The file type bits of `permissions` (st_mode). */
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

export interface Attrs {
  size?: number;
  /** st_mode, type bits included. */
  permissions?: number;
  /** Seconds since the epoch. */
  mtime?: number;
}

export function kindOf(attrs: Attrs): "file" | "dir" | "link" | "other" {
  const type = (attrs.permissions ?? 0) & S_IFMT;
  if (type === S_IFDIR) return "dir";
  if (type === S_IFREG) return "file";
  if (type === S_IFLNK) return "link";
  return "other";
}

/** A status reply other than OK, as an error carrying the SFTP code (2 = no such file). */
export class SftpStatusError extends Error {
  override name = "SftpStatusError";
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message || `SFTP status ${code}`);
  }
}

// -- encoding -----------------------------------------------------------------------------------

/** A value of a request body: a uint32, a uint64, a string (text or bytes) or an attrs record. */
export type Field =
  | { u32: number }
  | { u64: number }
  | { str: string | Buffer }
  | { attrs: { permissions?: number } };

function fieldSize(f: Field): number {
  if ("u32" in f) return 4;
  if ("u64" in f) return 8;
  if ("str" in f) return 4 + (typeof f.str === "string" ? Buffer.byteLength(f.str) : f.str.length);
  return f.attrs.permissions === undefined ? 4 : 8;
}

/**
 * A whole packet: length, type, request id, then the fields. `payloadLength` bytes that follow
 * separately (a WRITE's data, sent as its own buffer without a copy) are counted in the length.
 */
export function encodePacket(type: number, id: number, fields: Field[], payloadLength = 0): Buffer {
  const bodySize = fields.reduce((n, f) => n + fieldSize(f), 0);
  const buf = Buffer.allocUnsafe(4 + 1 + 4 + bodySize);
  buf.writeUInt32BE(1 + 4 + bodySize + payloadLength, 0);
  buf[4] = type;
  buf.writeUInt32BE(id >>> 0, 5);
  let p = 9;
  for (const f of fields) {
    if ("u32" in f) {
      buf.writeUInt32BE(f.u32 >>> 0, p);
      p += 4;
    } else if ("u64" in f) {
      buf.writeUInt32BE(Math.floor(f.u64 / 2 ** 32), p);
      buf.writeUInt32BE(f.u64 >>> 0, p + 4);
      p += 8;
    } else if ("str" in f) {
      const bytes = typeof f.str === "string" ? Buffer.from(f.str) : f.str;
      buf.writeUInt32BE(bytes.length, p);
      bytes.copy(buf, p + 4);
      p += 4 + bytes.length;
    } else if (f.attrs.permissions === undefined) {
      buf.writeUInt32BE(0, p);
      p += 4;
    } else {
      buf.writeUInt32BE(ATTR.PERMISSIONS, p);
      buf.writeUInt32BE(f.attrs.permissions, p + 4);
      p += 8;
    }
  }
  return buf;
}

/** SSH_FXP_INIT carries a version where the others carry a request id. */
export function encodeInit(version: number): Buffer {
  return encodePacket(FXP.INIT, version, []);
}

// -- decoding -----------------------------------------------------------------------------------

/** Reads the fields of a reply in order; throws on a packet shorter than its fields. */
export class Reader {
  private p = 0;
  constructor(private readonly buf: Buffer) {}

  get remaining(): number {
    return this.buf.length - this.p;
  }

  private need(n: number): void {
    if (this.p + n > this.buf.length) throw new Error("malformed SFTP packet (too short)");
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.p);
    this.p += 4;
    return v;
  }

  u64(): number {
    const hi = this.u32();
    return hi * 2 ** 32 + this.u32();
  }

  bytes(): Buffer {
    const n = this.u32();
    this.need(n);
    const v = this.buf.subarray(this.p, this.p + n);
    this.p += n;
    return v;
  }

  string(): string {
    return this.bytes().toString("utf8");
  }

  attrs(): Attrs {
    const flags = this.u32();
    const a: Attrs = {};
    if (flags & ATTR.SIZE) a.size = this.u64();
    if (flags & ATTR.UIDGID) this.p += 8;
    if (flags & ATTR.PERMISSIONS) a.permissions = this.u32();
    if (flags & ATTR.ACMODTIME) {
      this.u32(); // atime
      a.mtime = this.u32();
    }
    if (flags & ATTR.EXTENDED) {
      for (let n = this.u32(); n > 0; n--) {
        this.bytes();
        this.bytes();
      }
    }
    return a;
  }
}

/**
 * Cuts a byte stream into SFTP packets (type + data, without the length), each handed out as the
 * views of the chunks it arrived in: never copied (a 255 KiB DATA reply usually spans four).
 */
export class PacketFramer {
  /** The packet being gathered, and how many of its bytes are still to come. */
  private parts: Buffer[] = [];
  private missing = 0;
  /** Bytes of a length prefix split across chunks. */
  private head = Buffer.alloc(0);

  constructor(
    private readonly onPacket: (parts: Buffer[]) => void,
    private readonly maxLength = 4 * 1024 * 1024,
  ) {}

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.missing > 0) {
        const n = Math.min(this.missing, chunk.length - at);
        this.parts.push(chunk.subarray(at, at + n));
        this.missing -= n;
        at += n;
        if (this.missing === 0) {
          const done = this.parts;
          this.parts = [];
          this.onPacket(done);
        }
        continue;
      }
      if (this.head.length > 0 || chunk.length - at < 4) {
        const n = Math.min(4 - this.head.length, chunk.length - at);
        this.head = Buffer.concat([this.head, chunk.subarray(at, at + n)]);
        at += n;
        if (this.head.length < 4) return;
        this.missing = this.length(this.head.readUInt32BE(0));
        this.head = Buffer.alloc(0);
        continue;
      }
      this.missing = this.length(chunk.readUInt32BE(at));
      at += 4;
    }
  }

  private length(n: number): number {
    if (n < 5 || n > this.maxLength) throw new Error(`bad SFTP packet length ${n}`);
    return n;
  }
}

/** `parts` from byte `offset` on, as views (`offset` within the parts' total). */
export function partsFrom(parts: Buffer[], offset: number): Buffer[] {
  const out: Buffer[] = [];
  let skip = offset;
  for (const p of parts) {
    if (skip >= p.length) {
      skip -= p.length;
      continue;
    }
    out.push(skip > 0 ? p.subarray(skip) : p);
    skip = 0;
  }
  return out;
}
