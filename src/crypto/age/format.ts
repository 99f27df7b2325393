/**
 * The age v1 header (https://age-encryption.org/v1) with X25519 recipients, on node:crypto:
 * keys and their Bech32 encodings, the recipient stanza (X25519 + HKDF-SHA256 +
 * ChaCha20-Poly1305 wrap of the file key), the header's text format and its HMAC.
 *
 * Parsing is as strict as the reference implementation: it passes the official conformance
 * vectors (npm `cctv-age`, see test/unit/age-vectors.test.ts). Only X25519 is implemented;
 * other stanza types (scrypt, post-quantum, grease) are parsed and skipped.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
  randomBytes,
  timingSafeEqual,
} from "node:crypto";

/** How a file failed to decrypt, in the conformance suite's terms. */
export type AgeErrorKind = "header" | "no match" | "hmac" | "payload";

export class AgeError extends Error {
  override name = "AgeError";
  constructor(
    readonly kind: AgeErrorKind,
    message: string,
  ) {
    super(message);
  }
}

const headerError = (what: string) => new AgeError("header", `invalid age header: ${what}`);

export const VERSION_LINE = "age-encryption.org/v1";
const X25519_LABEL = "age-encryption.org/v1/X25519";
const FILE_KEY_SIZE = 16;
/** Nonce of the payload key derivation, written right after the header. */
export const PAYLOAD_NONCE_SIZE = 16;
/** Bigger headers are refused rather than buffered without end. */
export const MAX_HEADER_SIZE = 1 << 20;

// ---------------------------------------------------------------- Bech32 (BIP 173, no length cap)

const BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const GENERATORS = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];

function polymod(values: number[]): number {
  let chk = 1;
  for (const v of values) {
    const top = chk >>> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= GENERATORS[i] as number;
  }
  return chk >>> 0;
}

function hrpExpand(hrp: string): number[] {
  const codes = [...hrp].map((c) => c.charCodeAt(0));
  return [...codes.map((c) => c >> 5), 0, ...codes.map((c) => c & 31)];
}

function convertBits(data: Uint8Array | number[], from: number, to: number, pad: boolean) {
  let acc = 0;
  let bits = 0;
  const out: number[] = [];
  const max = (1 << to) - 1;
  for (const v of data) {
    acc = (acc << from) | v;
    bits += from;
    while (bits >= to) {
      bits -= to;
      out.push((acc >> bits) & max);
    }
    acc &= (1 << bits) - 1;
  }
  if (pad) {
    if (bits > 0) out.push((acc << (to - bits)) & max);
  } else if (bits >= from || acc !== 0) {
    return undefined;
  }
  return out;
}

export function bech32Encode(hrp: string, data: Uint8Array): string {
  const words = convertBits(data, 8, 5, true) as number[];
  const chk = polymod([...hrpExpand(hrp), ...words, 0, 0, 0, 0, 0, 0]) ^ 1;
  const checksum = Array.from({ length: 6 }, (_, i) => (chk >>> (5 * (5 - i))) & 31);
  return `${hrp}1${[...words, ...checksum].map((w) => BECH32[w]).join("")}`;
}

/** Decodes a Bech32 string (all lower or all upper case); undefined when invalid. */
export function bech32Decode(text: string): { hrp: string; data: Buffer } | undefined {
  if (text !== text.toLowerCase() && text !== text.toUpperCase()) return undefined;
  const s = text.toLowerCase();
  const sep = s.lastIndexOf("1");
  if (sep < 1 || sep + 7 > s.length) return undefined;
  const hrp = s.slice(0, sep);
  if ([...hrp].some((c) => c.charCodeAt(0) < 33 || c.charCodeAt(0) > 126)) return undefined;
  const words: number[] = [];
  for (const c of s.slice(sep + 1)) {
    const w = BECH32.indexOf(c);
    if (w < 0) return undefined;
    words.push(w);
  }
  if (polymod([...hrpExpand(hrp), ...words]) !== 1) return undefined;
  const bytes = convertBits(words.slice(0, -6), 5, 8, false);
  return bytes ? { hrp, data: Buffer.from(bytes) } : undefined;
}

// ---------------------------------------------------------------- X25519 keys

const PKCS8_X25519 = Buffer.from("302e020100300506032b656e04220420", "hex");
const SPKI_X25519 = Buffer.from("302a300506032b656e032100", "hex");
const RECIPIENT_HRP = "age";
const IDENTITY_HRP = "age-secret-key-";

function privateKeyOf(scalar: Uint8Array): KeyObject {
  return createPrivateKey({
    key: Buffer.concat([PKCS8_X25519, scalar]),
    format: "der",
    type: "pkcs8",
  });
}

function publicKeyOf(point: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_X25519, point]), format: "der", type: "spki" });
}

function rawPublic(key: KeyObject): Buffer {
  return (createPublicKey(key).export({ format: "der", type: "spki" }) as Buffer).subarray(
    SPKI_X25519.length,
  );
}

/** X25519(scalar, point); throws for the all-zero result of a low-order point. */
function x25519(privateKey: KeyObject, point: Uint8Array): Buffer {
  const shared = diffieHellman({ privateKey, publicKey: publicKeyOf(point) });
  if (shared.every((b) => b === 0)) throw new Error("all-zero X25519 shared secret");
  return shared;
}

/** A parsed `AGE-SECRET-KEY-1...` identity. */
export interface X25519Identity {
  key: KeyObject;
  /** The raw public key (the recipient's 32 bytes). */
  publicKey: Buffer;
}

export function parseIdentity(text: string): X25519Identity | undefined {
  const d = bech32Decode(text.trim());
  if (
    !d ||
    d.hrp !== IDENTITY_HRP ||
    d.data.length !== 32 ||
    text.trim() !== text.trim().toUpperCase()
  )
    return undefined;
  const key = privateKeyOf(d.data);
  return { key, publicKey: rawPublic(key) };
}

/** The raw public key of an `age1...` X25519 recipient, or undefined. */
export function parseRecipient(text: string): Buffer | undefined {
  const d = bech32Decode(text.trim());
  if (
    !d ||
    d.hrp !== RECIPIENT_HRP ||
    d.data.length !== 32 ||
    text.trim() !== text.trim().toLowerCase()
  )
    return undefined;
  return d.data;
}

export function encodeRecipient(publicKey: Uint8Array): string {
  return bech32Encode(RECIPIENT_HRP, publicKey);
}

/** A new random X25519 identity: `AGE-SECRET-KEY-1...` and its `age1...` recipient. */
export function generateIdentity(): { secret: string; recipient: string } {
  const { privateKey } = generateKeyPairSync("x25519");
  const scalar = (privateKey.export({ format: "der", type: "pkcs8" }) as Buffer).subarray(
    PKCS8_X25519.length,
  );
  return {
    secret: bech32Encode(IDENTITY_HRP, scalar).toUpperCase(),
    recipient: encodeRecipient(rawPublic(privateKey)),
  };
}

/** The `age1...` recipient of an identity string. */
export function recipientOf(identity: string): string | undefined {
  const id = parseIdentity(identity);
  return id && encodeRecipient(id.publicKey);
}

// ---------------------------------------------------------------- primitives

export function hkdf(ikm: Uint8Array, salt: Uint8Array, info: string, length = 32): Buffer {
  return Buffer.from(hkdfSync("sha256", ikm, salt, info, length));
}

const ZERO_NONCE = Buffer.alloc(12);

function seal(key: Uint8Array, plaintext: Uint8Array): Buffer {
  const c = createCipheriv("chacha20-poly1305", key, ZERO_NONCE, { authTagLength: 16 });
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
}

function open(key: Uint8Array, sealed: Uint8Array): Buffer | undefined {
  if (sealed.length < 16) return undefined;
  const d = createDecipheriv("chacha20-poly1305", key, ZERO_NONCE, { authTagLength: 16 });
  d.setAuthTag(sealed.subarray(sealed.length - 16));
  const out = d.update(sealed.subarray(0, sealed.length - 16));
  try {
    d.final();
  } catch {
    return undefined;
  }
  return out;
}

/** Unpadded standard base64, as age writes it. */
export function b64(data: Uint8Array): string {
  return Buffer.from(data).toString("base64").replace(/=+$/, "");
}

/** Strict unpadded base64: only the alphabet, canonical trailing bits; undefined otherwise. */
export function unb64(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]*$/.test(text)) return undefined;
  const data = Buffer.from(text, "base64");
  return b64(data) === text ? data : undefined;
}

// ---------------------------------------------------------------- header

export interface Stanza {
  type: string;
  args: string[];
  body: Buffer;
}

/** The stanza that wraps `fileKey` to one X25519 recipient. */
export function wrapX25519(fileKey: Uint8Array, recipient: Uint8Array): Stanza {
  const ephemeral = randomBytes(32);
  const key = privateKeyOf(ephemeral);
  const share = rawPublic(key);
  const shared = x25519(key, recipient);
  const wrapKey = hkdf(shared, Buffer.concat([share, recipient]), X25519_LABEL);
  return { type: "X25519", args: [b64(share)], body: seal(wrapKey, fileKey) };
}

/**
 * The file key from an X25519 stanza, undefined when the stanza is not for this identity.
 * A malformed X25519 stanza is a header failure, as in the reference implementation.
 */
function unwrapX25519(stanza: Stanza, identity: X25519Identity): Buffer | undefined {
  if (stanza.type !== "X25519") return undefined;
  if (stanza.args.length !== 1) throw headerError("X25519 stanza with wrong arguments");
  const share = unb64(stanza.args[0] as string);
  if (share?.length !== 32) throw headerError("X25519 share is not 32 bytes");
  if (stanza.body.length !== FILE_KEY_SIZE + 16) throw headerError("X25519 body is not 32 bytes");
  let shared: Buffer;
  try {
    shared = x25519(identity.key, share);
  } catch {
    throw headerError("X25519 share is a low-order point");
  }
  const wrapKey = hkdf(shared, Buffer.concat([share, identity.publicKey]), X25519_LABEL);
  return open(wrapKey, stanza.body);
}

function stanzaText(s: Stanza): string {
  const body = b64(s.body);
  const lines: string[] = [];
  for (let i = 0; i <= body.length; i += 64) lines.push(body.slice(i, i + 64));
  // A body whose encoding fills whole lines ends with an empty line (the loop adds it).
  return `-> ${[s.type, ...s.args].join(" ")}\n${lines.join("\n")}\n`;
}

function headerMac(fileKey: Uint8Array, headerUpToDashes: Buffer): Buffer {
  return createHmac("sha256", hkdf(fileKey, Buffer.alloc(0), "header"))
    .update(headerUpToDashes)
    .digest();
}

/** The encoded header (ending with the MAC line's newline) for these stanzas. */
export function encodeHeader(fileKey: Uint8Array, stanzas: Stanza[]): Buffer {
  const head = Buffer.from(`${VERSION_LINE}\n${stanzas.map(stanzaText).join("")}---`);
  return Buffer.concat([head, Buffer.from(` ${b64(headerMac(fileKey, head))}\n`)]);
}

export interface ParsedHeader {
  stanzas: Stanza[];
  mac: Buffer;
  /** The header bytes the MAC covers: up to and including the final line's `---`. */
  macInput: Buffer;
  /** Length of the whole header, MAC line included. */
  length: number;
}

/** Valid stanza argument: non-empty, visible ASCII only. */
const ARG = /^[\x21-\x7e]+$/;

/**
 * Parses a header at the start of `data`. Returns undefined when `data` ends before the header
 * does (read more and call again); throws AgeError("header") when it is malformed.
 */
export function parseHeader(data: Buffer): ParsedHeader | undefined {
  let pos = 0;
  const line = (): string | undefined => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) {
      if (data.length - pos > MAX_HEADER_SIZE) throw headerError("line too long");
      return undefined;
    }
    const text = data.toString("latin1", pos, end);
    pos = end + 1;
    return text;
  };
  if (data.length === 0) return undefined;
  // Fail early on something that is not age at all, without waiting for a newline.
  const prefix = data.toString("latin1", 0, Math.min(data.length, VERSION_LINE.length + 1));
  if (!`${VERSION_LINE}\n`.startsWith(prefix)) throw headerError("not an age v1 file");
  const version = line();
  if (version === undefined) return undefined;
  const stanzas: Stanza[] = [];
  for (;;) {
    if (pos > MAX_HEADER_SIZE) throw headerError("header too large");
    const start = pos;
    const l = line();
    if (l === undefined) return undefined;
    if (l.startsWith("---")) {
      if (!l.startsWith("--- ")) throw headerError("malformed MAC line");
      const mac = unb64(l.slice(4));
      if (mac?.length !== 32) throw headerError("malformed MAC");
      return { stanzas, mac, macInput: data.subarray(0, start + 3), length: pos };
    }
    if (!l.startsWith("-> ")) throw headerError("expected a stanza or the MAC line");
    const args = l.slice(3).split(" ");
    if (!args.every((a) => ARG.test(a))) throw headerError("malformed stanza arguments");
    const bodyParts: Buffer[] = [];
    for (;;) {
      const b = line();
      if (b === undefined) return undefined;
      const part = b.length <= 64 ? unb64(b) : undefined;
      if (!part) throw headerError("malformed stanza body");
      bodyParts.push(part);
      if (b.length < 64) break;
    }
    stanzas.push({ type: args[0] as string, args: args.slice(1), body: Buffer.concat(bodyParts) });
  }
}

/** Finds the file key with one of the identities and checks the header's MAC. */
export function unwrapFileKey(header: ParsedHeader, identities: X25519Identity[]): Buffer {
  let fileKey: Buffer | undefined;
  for (const stanza of header.stanzas) {
    for (const identity of identities) {
      fileKey = unwrapX25519(stanza, identity);
      if (fileKey) break;
    }
    if (fileKey) break;
  }
  if (!fileKey) {
    throw new AgeError(
      "no match",
      "no identity matches this file: it was encrypted to other keys (wrong identity file?)",
    );
  }
  if (fileKey.length !== FILE_KEY_SIZE) throw headerError("wrapped file key is not 16 bytes");
  if (!timingSafeEqual(headerMac(fileKey, header.macInput), header.mac)) {
    throw new AgeError("hmac", "age header MAC mismatch: the header was altered");
  }
  return fileKey;
}

/** A fresh file key and the header wrapping it to every recipient (raw X25519 public keys). */
export function newHeader(recipients: Uint8Array[]): { fileKey: Buffer; header: Buffer } {
  const fileKey = randomBytes(FILE_KEY_SIZE);
  return {
    fileKey,
    header: encodeHeader(
      fileKey,
      recipients.map((r) => wrapX25519(fileKey, r)),
    ),
  };
}
