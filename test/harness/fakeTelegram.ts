/**
 * A fake Telegram Bot API server on 127.0.0.1 (real HTTP, random port) for testing a grammY
 * bot without the network:
 *
 *   const tg = await startFakeTelegram({ token: "123456:TEST" });
 *   const bot = new Bot(tg.token, { client: { apiRoot: tg.apiRoot } });
 *   void bot.start();
 *   tg.sendText(42, "/status");
 *   const reply = await tg.nextCall("sendMessage", (c) => c.params.chat_id === 42);
 *   await bot.stop();
 *   await tg.stop();
 *
 * It speaks `POST|GET /bot<token>/<method>` with JSON, urlencoded or multipart/form-data
 * bodies, as Telegram does, and answers like Telegram: `{ ok, result }` or
 * `{ ok: false, error_code, description, parameters? }` with the HTTP status equal to
 * error_code. Multipart uploads are parsed as a stream and written to a temp dir while being
 * hashed, so a 60 MB upload costs a few 64 KiB buffers, not 60 MB. (Node's own
 * `Request.formData()` would buffer every file in memory, and it rejects grammY's bodies
 * outright: grammY writes `content-disposition:form-data;name="x";filename=clip.mp4`, with the
 * filename unquoted, which undici's parser refuses. The parser here accepts both forms.)
 *
 * `sendText` / `pressButton` return the queued update, so a bot that is not polling can also
 * be fed directly: `await bot.init(); await bot.handleUpdate(tg.sendText(42, "/help"));`.
 *
 * Realistic checks that catch bugs the real API would reject: text > 4096 / caption > 1024
 * characters, malformed HTML / MarkdownV2 with `parse_mode`, callback_data > 64 bytes,
 * "message is not modified", editing / deleting unknown messages, answering a callback query
 * twice, empty uploads, uploads over `maxUploadBytes` (413), a thumbnail that is not an uploaded
 * file (`attach://`), a second concurrent getUpdates (409, like Telegram). Everything else is
 * accepted. Uploaded thumbnails are recorded like any file (`param: "thumbnail"`).
 */
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream, type WriteStream } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import {
  createServer,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import type { Update, User, UserFromGetMe } from "grammy/types";

// ---------------------------------------------------------------------------------------------
// Public types

/** One file part of a multipart request, with its bytes on disk. */
export interface UploadedFile {
  /** The multipart field name (grammY uses a random id and refers to it as `attach://<id>`). */
  field: string;
  /** The API parameter the file was given for (`video`, `document`, `photo`, ...), if any. */
  param?: string;
  /** The filename from Content-Disposition (grammY: the basename of an `InputFile(path)`). */
  filename: string;
  contentType?: string;
  /** Bytes received (all of them, also when the upload was rejected as too large). */
  size: number;
  /** Hex sha256 of the received bytes. */
  sha256: string;
  /** Where the bytes are (inside `uploadDir`); undefined when rejected as too large. */
  path?: string;
  /** True when the file was larger than `maxUploadBytes` (the request got a 413). */
  tooLarge?: boolean;
}

/** One API request the server answered. */
export interface Call {
  /** Position in `calls` order of completion (0, 1, 2, ...; never reused, also after clearCalls). */
  seq: number;
  /** Method name as Telegram spells it (`sendMessage`), or as sent when unknown. */
  method: string;
  /**
   * Parameters from the query string and body. Form values (multipart, urlencoded) arrive as
   * strings and are decoded as Telegram would: JSON objects/arrays parsed, ids and numbers of
   * known numeric parameters turned into numbers, "true"/"false" into booleans.
   */
  params: Record<string, unknown>;
  files: UploadedFile[];
  /** Date.now() when the request arrived. */
  at: number;
  /** Date.now() when it was answered. */
  answeredAt: number;
  body: "none" | "json" | "urlencoded" | "multipart" | "other";
  ok: boolean;
  /** HTTP status of the answer (equals errorCode on failure). */
  status: number;
  result?: unknown;
  errorCode?: number;
  description?: string;
}

export interface FailSpec {
  /** Telegram error code / HTTP status; default 500. */
  errorCode?: number;
  /** Default: Telegram's usual text for the code (429: "Too Many Requests: retry after N"). */
  description?: string;
  /** Seconds, sent as `parameters.retry_after` (429 defaults to 1). */
  retryAfter?: number;
  /** How many of the next calls to fail; default 1. */
  times?: number;
  /** Drop the connection without an answer (grammY sees an HttpError) instead of replying. */
  disconnect?: boolean;
}

export interface FakeTelegramOptions {
  /** Bot token; default "123456789:TEST-fake-telegram-token". The bot id is the part before ':'. */
  token?: string;
  /** Default "vault_test_bot". */
  botUsername?: string;
  /** Default "Vault Test Bot". */
  botFirstName?: string;
  /**
   * Largest accepted uploaded file in bytes (per file part); bigger ones get Telegram's 413
   * "Request Entity Too Large". Default 50 MiB like the cloud Bot API; Infinity for none.
   */
  maxUploadBytes?: number;
  /** Where uploads are written; default a fresh temp dir, removed again by stop(). */
  uploadDir?: string;
  /** Keep the uploads (and a default temp dir) after stop(). */
  keepUploads?: boolean;
}

export interface FakeTelegram {
  /** e.g. "http://127.0.0.1:40123": pass as `client.apiRoot` (no trailing slash). */
  apiRoot: string;
  token: string;
  /** What getMe returns; can be passed to `new Bot(token, { botInfo })` to skip getMe. */
  botInfo: UserFromGetMe;
  /** Every answered request, in order of completion (getUpdates included). */
  calls: Call[];
  /** Every uploaded file, in order. */
  uploads: UploadedFile[];
  uploadDir: string;
  port: number;

  /** Queues a text message from a user in chat `chatId` (private chat when chatId > 0). */
  sendText(chatId: number, text: string, from?: Partial<User>): Update;
  /** Queues a callback_query: the user pressed an inline button with `data` on message `messageId`. */
  pressButton(chatId: number, messageId: number, data: string, from?: Partial<User>): Update;
  /** Queues any update (update_id is assigned). */
  queueUpdate(update: Omit<Update, "update_id">): Update;
  /** Updates queued and not yet confirmed by a getUpdates offset. */
  pendingUpdates(): Update[];

  /**
   * The first call of `method` (matching `predicate`) that has been or will be answered,
   * counting from `since` (a `seq`, default 0: calls already recorded match too). Rejects after
   * `timeoutMs` (default 5000) with a message listing the calls of that method seen so far.
   */
  waitForCall(
    method: string,
    predicate?: (call: Call) => boolean,
    timeoutMs?: number,
    options?: { since?: number },
  ): Promise<Call>;
  /** Like waitForCall, but only for calls answered after this call to nextCall. */
  nextCall(method: string, predicate?: (call: Call) => boolean, timeoutMs?: number): Promise<Call>;
  /**
   * What the user in `chatId` saw: successful send and edit calls to that chat (sendMessage,
   * sendVideo, sendDocument, sendPhoto, editMessageText, ...), in order.
   */
  messagesTo(chatId: number | string): Call[];
  /** Texts (text or caption) of messagesTo(chatId). */
  textsTo(chatId: number | string): string[];
  /** Makes the next call(s) of `method` fail (e.g. `{ errorCode: 429, retryAfter: 1 }`). */
  failNext(method: string, spec?: FailSpec): void;
  /** Forgets recorded calls and uploads (seq keeps counting). */
  clearCalls(): void;
  /** Answers held getUpdates with [], closes every connection and the server; removes uploads. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Telegram's method names (lookup is case-insensitive, as on the real server)

const KNOWN_METHODS = [
  "getMe",
  "getUpdates",
  "deleteWebhook",
  "setMyCommands",
  "getMyCommands",
  "deleteMyCommands",
  "sendMessage",
  "editMessageText",
  "editMessageReplyMarkup",
  "answerCallbackQuery",
  "sendChatAction",
  "sendVideo",
  "sendDocument",
  "sendPhoto",
  "sendAnimation",
  "deleteMessage",
] as const;
type KnownMethod = (typeof KNOWN_METHODS)[number];
const METHOD_BY_LOWER = new Map<string, KnownMethod>(
  KNOWN_METHODS.map((m) => [m.toLowerCase(), m]),
);

/** Methods whose successful calls show the user something in `chat_id`. */
const USER_VISIBLE = new Set([
  "sendMessage",
  "sendVideo",
  "sendDocument",
  "sendPhoto",
  "sendAnimation",
  "editMessageText",
  "editMessageReplyMarkup",
]);

const NUMERIC_PARAMS = new Set([
  "chat_id",
  "message_id",
  "from_chat_id",
  "message_thread_id",
  "reply_to_message_id",
  "offset",
  "limit",
  "timeout",
  "duration",
  "width",
  "height",
  "cache_time",
]);

const DEFAULT_TOKEN = "123456789:TEST-fake-telegram-token";
const MAX_FIELD_BYTES = 1 << 20;
const MAX_SIMPLE_BODY_BYTES = 10 << 20;

type Json = Record<string, unknown>;

class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly description: string,
    readonly parameters?: Json,
  ) {
    super(description);
  }
}

const badRequest = (what: string) => new ApiError(400, `Bad Request: ${what}`);

function defaultDescription(code: number, retryAfter?: number): string {
  switch (code) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden: bot was blocked by the user";
    case 404:
      return "Not Found";
    case 409:
      return "Conflict: terminated by other getUpdates request";
    case 413:
      return "Request Entity Too Large";
    case 429:
      return `Too Many Requests: retry after ${retryAfter ?? 1}`;
    case 502:
      return "Bad Gateway";
    default:
      return "Internal Server Error";
  }
}

// ---------------------------------------------------------------------------------------------
// Streaming multipart/form-data parser

type MultipartEvent =
  | { kind: "part"; headers: Map<string, string> }
  | { kind: "data"; data: Buffer }
  | { kind: "partEnd" }
  | { kind: "end" };

/**
 * Push-style parser: feed it chunks, get events. Part bodies come out as slices of the input
 * with at most `delimiter.length - 1` bytes held back, so memory stays flat for any size.
 */
class MultipartParser {
  private buf: Buffer;
  private state: "preamble" | "afterBoundary" | "headers" | "body" | "done" = "preamble";
  private readonly delimiter: Buffer;

  constructor(boundary: string) {
    this.delimiter = Buffer.from(`\r\n--${boundary}`, "latin1");
    // A leading CRLF lets the first boundary (at the very start of the body) match too.
    this.buf = Buffer.from("\r\n", "latin1");
  }

  get done(): boolean {
    return this.state === "done";
  }

  push(chunk: Buffer): MultipartEvent[] {
    const events: MultipartEvent[] = [];
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      if (this.state === "preamble") {
        const i = this.buf.indexOf(this.delimiter);
        if (i < 0) {
          this.buf = this.buf.subarray(Math.max(0, this.buf.length - this.delimiter.length + 1));
          break;
        }
        this.buf = this.buf.subarray(i + this.delimiter.length);
        this.state = "afterBoundary";
      } else if (this.state === "afterBoundary") {
        if (this.buf.length < 2) break;
        if (this.buf[0] === 0x2d && this.buf[1] === 0x2d) {
          this.state = "done";
          this.buf = Buffer.alloc(0);
          events.push({ kind: "end" });
          break;
        }
        const eol = this.buf.indexOf("\r\n");
        if (eol < 0) {
          if (this.buf.length > 1024) throw new Error("malformed multipart boundary line");
          break;
        }
        this.buf = this.buf.subarray(eol + 2);
        this.state = "headers";
      } else if (this.state === "headers") {
        let headerEnd: number;
        let skip: number;
        if (this.buf.length >= 2 && this.buf[0] === 0x0d && this.buf[1] === 0x0a) {
          headerEnd = 0; // a part without headers
          skip = 2;
        } else {
          headerEnd = this.buf.indexOf("\r\n\r\n");
          skip = 4;
        }
        if (headerEnd < 0) {
          if (this.buf.length > 16 * 1024) throw new Error("multipart part headers too large");
          break;
        }
        const headers = new Map<string, string>();
        for (const line of this.buf.subarray(0, headerEnd).toString("utf8").split("\r\n")) {
          const colon = line.indexOf(":");
          if (colon <= 0) continue;
          headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
        }
        this.buf = this.buf.subarray(headerEnd + skip);
        this.state = "body";
        events.push({ kind: "part", headers });
      } else if (this.state === "body") {
        const i = this.buf.indexOf(this.delimiter);
        if (i < 0) {
          const keep = Math.min(this.buf.length, this.delimiter.length - 1);
          if (this.buf.length > keep) {
            events.push({ kind: "data", data: this.buf.subarray(0, this.buf.length - keep) });
          }
          this.buf = this.buf.subarray(this.buf.length - keep);
          break;
        }
        if (i > 0) events.push({ kind: "data", data: this.buf.subarray(0, i) });
        events.push({ kind: "partEnd" });
        this.buf = this.buf.subarray(i + this.delimiter.length);
        this.state = "afterBoundary";
      } else {
        this.buf = Buffer.alloc(0); // epilogue
        break;
      }
    }
    return events;
  }
}

/** `form-data; name="x"; filename="y"`, also grammY's unquoted `filename=y`, and `filename*=`. */
function parseHeaderParams(value: string): { type: string; params: Map<string, string> } {
  const semi = value.indexOf(";");
  const type = (semi < 0 ? value : value.slice(0, semi)).trim().toLowerCase();
  const params = new Map<string, string>();
  const re = /;\s*([^=;\s]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))/g;
  for (const m of (semi < 0 ? "" : value.slice(semi)).matchAll(re)) {
    const key = (m[1] ?? "").toLowerCase();
    let val = m[2] !== undefined ? m[2].replace(/\\(.)/g, "$1") : (m[3] ?? "").trim();
    if (key.endsWith("*")) {
      const ext = /^([^']*)'[^']*'(.*)$/.exec(val);
      if (ext) {
        try {
          val = decodeURIComponent(ext[2] ?? "");
        } catch {
          // keep it raw
        }
      }
      params.set(key.slice(0, -1), val);
    } else if (!params.has(key)) {
      params.set(key, val);
    }
  }
  return { type, params };
}

// ---------------------------------------------------------------------------------------------
// Body parsing

interface ParsedBody {
  kind: Call["body"];
  fields: Record<string, unknown>;
  files: UploadedFile[];
}

function coerceFormValue(key: string, value: string): unknown {
  const t = value.trim();
  if ((t.startsWith("{") && t.endsWith("}")) || (t.startsWith("[") && t.endsWith("]"))) {
    try {
      return JSON.parse(t);
    } catch {
      return value;
    }
  }
  if (NUMERIC_PARAMS.has(key) && /^-?\d+$/.test(t)) return Number(t);
  if (t === "true") return true;
  if (t === "false") return false;
  return value;
}

async function readAll(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  let tooBig = false;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit)
      tooBig = true; // keep draining so the client reads our answer
    else chunks.push(chunk);
  }
  if (tooBig) throw new ApiError(413, "Request Entity Too Large");
  return Buffer.concat(chunks);
}

function safeName(filename: string): string {
  const base = basename(filename.replace(/\\/g, "/")).replace(/[^A-Za-z0-9._-]/g, "_");
  return base.replace(/^\.+/, "_").slice(0, 100) || "file";
}

async function parseMultipart(
  req: IncomingMessage,
  boundary: string,
  uploadDir: string,
  maxUploadBytes: number,
  requestId: number,
): Promise<ParsedBody> {
  const parser = new MultipartParser(boundary);
  const fields: Record<string, unknown> = {};
  const files: UploadedFile[] = [];
  const openStreams: WriteStream[] = [];
  let current:
    | { kind: "field"; name: string; chunks: Buffer[]; size: number }
    | {
        kind: "file";
        file: UploadedFile;
        hash: ReturnType<typeof createHash>;
        out?: WriteStream;
        path: string;
      }
    | undefined;
  let tooLarge = false;
  let fieldTooLarge = false;

  const closeFile = async (out: WriteStream | undefined): Promise<void> => {
    if (!out) return;
    await new Promise<void>((resolve, reject) => {
      out.once("error", reject);
      out.end(() => resolve());
    });
  };

  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      for (const ev of parser.push(chunk)) {
        if (ev.kind === "part") {
          const disposition = parseHeaderParams(ev.headers.get("content-disposition") ?? "");
          const name = disposition.params.get("name") ?? "";
          const filename = disposition.params.get("filename");
          if (filename !== undefined) {
            const path = join(uploadDir, `${requestId}-${files.length}-${safeName(filename)}`);
            const out = createWriteStream(path, { highWaterMark: 1 << 20 });
            openStreams.push(out);
            const file: UploadedFile = {
              field: name,
              filename,
              contentType: ev.headers.get("content-type"),
              size: 0,
              sha256: "",
              path,
            };
            files.push(file);
            current = { kind: "file", file, hash: createHash("sha256"), out, path };
          } else {
            current = { kind: "field", name, chunks: [], size: 0 };
          }
        } else if (ev.kind === "data" && current) {
          if (current.kind === "field") {
            current.size += ev.data.length;
            if (current.size > MAX_FIELD_BYTES) fieldTooLarge = true;
            else current.chunks.push(ev.data);
          } else {
            const f = current.file;
            f.size += ev.data.length;
            current.hash.update(ev.data);
            if (f.size > maxUploadBytes && !f.tooLarge) {
              f.tooLarge = true;
              tooLarge = true;
              const out = current.out;
              current.out = undefined;
              await closeFile(out);
              await rm(current.path, { force: true });
              f.path = undefined;
            }
            if (current.out && !current.out.write(ev.data)) {
              const out = current.out;
              await new Promise<void>((resolve, reject) => {
                const onError = (err: Error) => reject(err);
                out.once("error", onError);
                out.once("drain", () => {
                  out.off("error", onError);
                  resolve();
                });
              });
            }
          }
        } else if (ev.kind === "partEnd" && current) {
          if (current.kind === "field") {
            const text = Buffer.concat(current.chunks).toString("utf8");
            fields[current.name] = text;
          } else {
            current.file.sha256 = current.hash.digest("hex");
            await closeFile(current.out);
          }
          current = undefined;
        }
      }
    }
  } catch (err) {
    for (const out of openStreams) out.destroy();
    await Promise.all(files.map((f) => (f.path ? rm(f.path, { force: true }) : undefined)));
    throw err;
  }
  if (!parser.done) {
    for (const out of openStreams) out.destroy();
    await Promise.all(files.map((f) => (f.path ? rm(f.path, { force: true }) : undefined)));
    throw badRequest("multipart body ended before its closing boundary");
  }
  if (fieldTooLarge) throw new ApiError(413, "Request Entity Too Large");
  const decoded: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) decoded[k] = coerceFormValue(k, String(v));
  const body: ParsedBody = { kind: "multipart", fields: decoded, files };
  if (tooLarge) throw Object.assign(new ApiError(413, "Request Entity Too Large"), { body });
  return body;
}

async function parseBody(
  req: IncomingMessage,
  uploadDir: string,
  maxUploadBytes: number,
  requestId: number,
): Promise<ParsedBody> {
  const { type, params } = parseHeaderParams(req.headers["content-type"] ?? "");
  if (type === "multipart/form-data") {
    const boundary = params.get("boundary");
    if (!boundary) throw badRequest("multipart boundary is missing");
    return parseMultipart(req, boundary, uploadDir, maxUploadBytes, requestId);
  }
  const raw = await readAll(req, MAX_SIMPLE_BODY_BYTES);
  if (raw.length === 0) return { kind: "none", fields: {}, files: [] };
  if (type === "application/json") {
    let value: unknown;
    try {
      value = JSON.parse(raw.toString("utf8"));
    } catch {
      throw badRequest("can't parse JSON encoded request body");
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw badRequest("JSON request body must be an object");
    }
    return { kind: "json", fields: value as Json, files: [] };
  }
  if (type === "application/x-www-form-urlencoded") {
    const fields: Record<string, unknown> = {};
    for (const [k, v] of new URLSearchParams(raw.toString("utf8"))) {
      fields[k] = coerceFormValue(k, v);
    }
    return { kind: "urlencoded", fields, files: [] };
  }
  return { kind: "other", fields: {}, files: [] };
}

// ---------------------------------------------------------------------------------------------
// Formatting checks (what Telegram answers "can't parse entities" to)

const HTML_TAGS = new Set([
  "b",
  "strong",
  "i",
  "em",
  "u",
  "ins",
  "s",
  "strike",
  "del",
  "span",
  "tg-spoiler",
  "a",
  "code",
  "pre",
  "blockquote",
  "tg-emoji",
]);

/** Validates Telegram HTML and returns the plain text the user sees. */
function renderHtml(text: string): string {
  const stack: string[] = [];
  let out = "";
  let i = 0;
  const byteOffset = (pos: number) => Buffer.byteLength(text.slice(0, pos));
  while (i < text.length) {
    const c = text[i];
    if (c === "<") {
      const close = text.indexOf(">", i);
      if (close < 0) {
        throw badRequest(
          `can't parse entities: Unclosed start tag at byte offset ${byteOffset(i)}`,
        );
      }
      const inner = text.slice(i + 1, close);
      if (inner.startsWith("/")) {
        const name = inner.slice(1).trim().toLowerCase();
        const open = stack.pop();
        if (open === undefined) {
          throw badRequest(
            `can't parse entities: Unexpected end tag at byte offset ${byteOffset(i)}`,
          );
        }
        if (name !== open) {
          throw badRequest(
            `can't parse entities: Unmatched end tag at byte offset ${byteOffset(i)}, expected "</${open}>", found "</${name}>"`,
          );
        }
      } else {
        const name = (/^[A-Za-z][A-Za-z0-9-]*/.exec(inner)?.[0] ?? "").toLowerCase();
        if (!HTML_TAGS.has(name)) {
          throw badRequest(
            `can't parse entities: Unsupported start tag "${name || inner}" at byte offset ${byteOffset(i)}`,
          );
        }
        stack.push(name);
      }
      i = close + 1;
    } else if (c === "&") {
      const m = /^&(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);/.exec(text.slice(i, i + 12));
      if (m) {
        const e = m[1] ?? "";
        out +=
          e === "lt"
            ? "<"
            : e === "gt"
              ? ">"
              : e === "amp"
                ? "&"
                : e === "quot"
                  ? '"'
                  : String.fromCodePoint(
                      e.startsWith("#x") ? Number.parseInt(e.slice(2), 16) : Number(e.slice(1)),
                    );
        i += m[0].length;
      } else {
        out += c; // Telegram tolerates a bare '&'
        i++;
      }
    } else {
      out += c;
      i++;
    }
  }
  if (stack.length > 0) {
    throw badRequest(
      `can't parse entities: Can't find end tag corresponding to start tag "${stack[stack.length - 1]}"`,
    );
  }
  return out;
}

/** Validates MarkdownV2 (reserved characters escaped, entities closed); returns plain text. */
function renderMarkdownV2(text: string): string {
  const reserved = "_*[]()~`>#+-=|{}.!";
  const byteOffset = (pos: number) => Buffer.byteLength(text.slice(0, pos));
  const open: { token: string; at: number }[] = [];
  let out = "";
  let i = 0;
  let lineStart = true;
  while (i < text.length) {
    const c = text[i] ?? "";
    if (c === "\\") {
      const next = text[i + 1];
      if (next === undefined) {
        throw badRequest(
          `can't parse entities: Character '\\' is reserved and must be escaped with the preceding '\\'`,
        );
      }
      out += next;
      i += 2;
      lineStart = false;
      continue;
    }
    if (c === "`") {
      const fence = text.startsWith("```", i) ? "```" : "`";
      const end = text.indexOf(fence, i + fence.length);
      if (end < 0) {
        throw badRequest(
          `can't parse entities: Can't find end of ${fence === "`" ? "Code" : "Pre"} entity at byte offset ${byteOffset(i)}`,
        );
      }
      out += text.slice(i + fence.length, end).replace(/\\([`\\])/g, "$1");
      i = end + fence.length;
      lineStart = false;
      continue;
    }
    if (c === "]") {
      const top = open[open.length - 1];
      if (top?.token !== "[") {
        throw badRequest(
          `can't parse entities: Character ']' is reserved and must be escaped with the preceding '\\'`,
        );
      }
      open.pop();
      if (text[i + 1] === "(") {
        const end = text.indexOf(")", i + 2);
        if (end < 0) {
          throw badRequest(
            `can't parse entities: Can't find end of a URL at byte offset ${byteOffset(i + 1)}`,
          );
        }
        i = end + 1;
      } else {
        i++;
      }
      lineStart = false;
      continue;
    }
    let token = "";
    if (c === "_" && text[i + 1] === "_") token = "__";
    else if (c === "|" && text[i + 1] === "|") token = "||";
    else if (c === "*" || c === "_" || c === "~" || c === "[") token = c;
    if (token) {
      const top = open[open.length - 1];
      if (token !== "[" && top?.token === token) open.pop();
      else open.push({ token, at: i });
      i += token.length;
      lineStart = false;
      continue;
    }
    if (c === ">" && lineStart) {
      i++;
      lineStart = false;
      continue;
    }
    if (reserved.includes(c)) {
      throw badRequest(
        `can't parse entities: Character '${c}' is reserved and must be escaped with the preceding '\\'`,
      );
    }
    out += c;
    lineStart = c === "\n";
    i++;
  }
  const unclosed = open[open.length - 1];
  if (unclosed) {
    throw badRequest(
      `can't parse entities: Can't find end of the entity starting at byte offset ${byteOffset(unclosed.at)}`,
    );
  }
  return out;
}

/** Legacy Markdown: only checks that entities are closed. */
function renderMarkdown(text: string): string {
  let out = "";
  let i = 0;
  while (i < text.length) {
    const c = text[i] ?? "";
    if (c === "\\" && i + 1 < text.length) {
      out += text[i + 1];
      i += 2;
      continue;
    }
    if (c === "*" || c === "_" || c === "`") {
      const end = text.indexOf(c, i + 1);
      if (end < 0) {
        throw badRequest(
          `can't parse entities: Can't find end of the entity starting at byte offset ${Buffer.byteLength(text.slice(0, i))}`,
        );
      }
      out += text.slice(i + 1, end);
      i = end + 1;
      continue;
    }
    out += c;
    i++;
  }
  return out;
}

function render(text: string, parseMode: unknown): string {
  if (parseMode === undefined || parseMode === null || parseMode === "") return text;
  switch (String(parseMode).toLowerCase()) {
    case "html":
      return renderHtml(text);
    case "markdownv2":
      return renderMarkdownV2(text);
    case "markdown":
      return renderMarkdown(text);
    default:
      throw badRequest(`unsupported parse_mode`);
  }
}

function checkReplyMarkup(markup: unknown): void {
  if (markup === undefined || markup === null) return;
  if (typeof markup !== "object") throw badRequest("can't parse reply keyboard markup JSON object");
  const rows = (markup as Json).inline_keyboard;
  if (rows === undefined) return;
  if (!Array.isArray(rows)) throw badRequest('field "inline_keyboard" must be an Array');
  for (const row of rows) {
    if (!Array.isArray(row)) throw badRequest('field "inline_keyboard" must be an Array of Arrays');
    for (const button of row) {
      if (typeof button !== "object" || button === null || typeof button.text !== "string") {
        throw badRequest(
          "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
        );
      }
      const data = (button as Json).callback_data;
      if (
        data !== undefined &&
        (typeof data !== "string" || Buffer.byteLength(data) > 64 || data === "")
      ) {
        throw badRequest("BUTTON_DATA_INVALID");
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The server

export async function startFakeTelegram(options: FakeTelegramOptions = {}): Promise<FakeTelegram> {
  const token = options.token ?? DEFAULT_TOKEN;
  const maxUploadBytes = options.maxUploadBytes ?? 50 * 1024 * 1024;
  const ownDir = options.uploadDir === undefined;
  const uploadDir = options.uploadDir ?? (await mkdtemp(join(tmpdir(), "fake-telegram-")));
  if (!ownDir) await mkdir(uploadDir, { recursive: true });
  const botId = Number(/^(\d+):/.exec(token)?.[1] ?? "123456789");
  const botInfo: UserFromGetMe = {
    id: botId,
    is_bot: true,
    first_name: options.botFirstName ?? "Vault Test Bot",
    username: options.botUsername ?? "vault_test_bot",
    can_join_groups: true,
    can_read_all_group_messages: false,
    supports_inline_queries: false,
    can_connect_to_business: false,
    has_main_web_app: false,
    has_topics_enabled: false,
    allows_users_to_create_topics: false,
    can_manage_bots: false,
    supports_join_request_queries: false,
  };

  const calls: Call[] = [];
  const uploads: UploadedFile[] = [];
  let seq = 0;
  let requestCounter = 0;
  let nextUpdateId = 100_000;
  let queue: Update[] = [];
  let allowedUpdates: string[] | undefined;
  const messages = new Map<string, { message: Json; source: string }>();
  const chatMessageIds = new Map<string, number>();
  const callbackQueries = new Map<string, { answered: boolean }>();
  const commands = new Map<string, unknown[]>();
  const failures = new Map<string, FailSpec & { remaining: number }>();
  const callListeners = new Set<(call: Call) => void>();
  const sockets = new Set<Socket>();
  let stopped = false;

  interface Poller {
    offset?: number;
    limit: number;
    finish: (updates: Update[] | ApiError) => void;
  }
  const pollers = new Set<Poller>();

  // ---- chats, users, messages

  const chatFor = (chatId: number, from?: Partial<User>): Json => {
    if (chatId > 0) {
      return {
        id: chatId,
        type: "private",
        first_name: from?.first_name ?? "Test",
        ...(from?.last_name ? { last_name: from.last_name } : {}),
        username: from?.username ?? `user${chatId}`,
      };
    }
    return {
      id: chatId,
      type: String(chatId).startsWith("-100") ? "supergroup" : "group",
      title: "Test group",
    };
  };

  const userFor = (chatId: number, from?: Partial<User>): User => ({
    id: chatId > 0 ? chatId : 1000,
    is_bot: false,
    first_name: "Test",
    username: `user${chatId > 0 ? chatId : 1000}`,
    language_code: "en",
    ...from,
  });

  const nextMessageId = (chatId: number | string): number => {
    const key = String(chatId);
    const id = (chatMessageIds.get(key) ?? 0) + 1;
    chatMessageIds.set(key, id);
    return id;
  };

  const now = () => Math.floor(Date.now() / 1000);
  const fileId = () => `BQACAgI-fake-${randomBytes(12).toString("base64url")}`;

  // ---- updates and long polling

  const updateType = (u: Update) => Object.keys(u).find((k) => k !== "update_id") ?? "";

  const available = (offset: number | undefined, limit: number): Update[] => {
    if (offset !== undefined) {
      if (offset < 0) queue = queue.slice(Math.max(0, queue.length + offset));
      else queue = queue.filter((u) => u.update_id >= offset);
    }
    if (allowedUpdates && allowedUpdates.length > 0) {
      const allowed = new Set(allowedUpdates);
      queue = queue.filter((u) => allowed.has(updateType(u)));
    }
    return queue.slice(0, Math.max(1, Math.min(100, limit)));
  };

  const wakePollers = () => {
    for (const p of [...pollers]) {
      const updates = available(p.offset, p.limit);
      if (updates.length > 0) p.finish(updates);
    }
  };

  const queueUpdate = (partial: Omit<Update, "update_id">): Update => {
    if (stopped) throw new Error("fake Telegram: stopped");
    const update = { update_id: nextUpdateId++, ...partial } as Update;
    queue.push(update);
    wakePollers();
    return update;
  };

  const sendText = (chatId: number, text: string, from?: Partial<User>): Update => {
    const user = userFor(chatId, from);
    const message: Json = {
      message_id: nextMessageId(chatId),
      from: user,
      chat: chatFor(chatId, user),
      date: now(),
      text,
    };
    const command = /^\/\S+/.exec(text);
    if (command) message.entities = [{ type: "bot_command", offset: 0, length: command[0].length }];
    messages.set(`${chatId}:${message.message_id}`, { message, source: text });
    return queueUpdate({ message } as unknown as Omit<Update, "update_id">);
  };

  const pressButton = (
    chatId: number,
    messageId: number,
    data: string,
    from?: Partial<User>,
  ): Update => {
    const user = userFor(chatId, from);
    const id = `${Date.now()}${randomBytes(4).readUInt32BE(0)}`;
    callbackQueries.set(id, { answered: false });
    const known = messages.get(`${chatId}:${messageId}`)?.message;
    const message = known ?? {
      message_id: messageId,
      from: botInfo,
      chat: chatFor(chatId, user),
      date: now(),
    };
    return queueUpdate({
      callback_query: {
        id,
        from: user,
        message,
        chat_instance: String(Math.abs(chatId) * 7919),
        data,
      },
    } as unknown as Omit<Update, "update_id">);
  };

  // ---- method handlers

  const requireChat = (params: Json): number | string => {
    const chat = params.chat_id;
    if (chat === undefined || chat === null || chat === "") throw badRequest("chat_id is empty");
    if (typeof chat === "number") return chat;
    const s = String(chat);
    return /^-?\d+$/.test(s) ? Number(s) : s;
  };

  const findMessage = (params: Json, missing: string) => {
    const chat = requireChat(params);
    const messageId = Number(params.message_id);
    const entry = messages.get(`${chat}:${messageId}`);
    if (!entry) throw badRequest(missing);
    return { chat, messageId, entry };
  };

  const sameMarkup = (a: unknown, b: unknown) =>
    JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

  const botMessage = (chat: number | string, params: Json, extra: Json, source: string): Json => {
    const chatObj =
      typeof chat === "number" ? chatFor(chat) : { id: chat, type: "channel", title: chat };
    const message: Json = {
      message_id: nextMessageId(chat),
      from: botInfo,
      chat: chatObj,
      date: now(),
      ...extra,
    };
    if (params.reply_markup && (params.reply_markup as Json).inline_keyboard) {
      message.reply_markup = params.reply_markup;
    }
    messages.set(`${chat}:${message.message_id}`, { message, source });
    return message;
  };

  const captionOf = (params: Json): Json => {
    if (params.caption === undefined || params.caption === null || params.caption === "") return {};
    const caption = render(String(params.caption), params.parse_mode);
    if (caption.length > 1024) throw badRequest("message caption is too long");
    return { caption };
  };

  /**
   * A new thumbnail must come as an uploaded file (`attach://<field>`), as on the real API; it
   * is answered as a PhotoSize (the sizes are what Telegram allows at most, not measured).
   */
  const thumbnailOf = (params: Json, files: UploadedFile[]): Json | undefined => {
    const value = params.thumbnail;
    if (value === undefined) return undefined;
    const file =
      typeof value === "string" && value.startsWith("attach://")
        ? files.find((f) => f.field === value.slice("attach://".length))
        : undefined;
    if (!file) throw badRequest("wrong thumbnail: it must be uploaded as attach://<file>");
    if (file.size === 0) throw badRequest("thumbnail must be non-empty");
    return {
      file_id: fileId(),
      file_unique_id: randomBytes(8).toString("base64url"),
      width: 320,
      height: 320,
      file_size: file.size,
    };
  };

  const sendMedia = (
    params: Json,
    files: UploadedFile[],
    param: "video" | "document" | "photo" | "animation",
  ): Json => {
    const chat = requireChat(params);
    checkReplyMarkup(params.reply_markup);
    const value = params[param];
    let file: UploadedFile | undefined;
    if (typeof value === "string" && value.startsWith("attach://")) {
      file = files.find((f) => f.field === value.slice("attach://".length));
      if (!file) throw badRequest(`wrong file identifier/HTTP URL specified`);
    } else if (value === undefined) {
      file = files.find((f) => f.field === param);
      if (!file) throw badRequest(`there is no ${param} in the request`);
    } else if (typeof value !== "string" || value === "") {
      throw badRequest(`there is no ${param} in the request`);
    }
    if (file) {
      file.param = param;
      if (file.size === 0) throw badRequest("file must be non-empty");
    }
    const thumb = thumbnailOf(params, files);
    const caption = captionOf(params);
    const ids = { file_id: fileId(), file_unique_id: randomBytes(8).toString("base64url") };
    const size = file ? { file_size: file.size } : {};
    let media: Json;
    if (param === "photo") {
      media = {
        photo: [
          { ...ids, width: 90, height: 51, ...size },
          { ...ids, width: 320, height: 180, ...size },
        ],
      };
    } else if (param === "video" || param === "animation") {
      media = {
        [param]: {
          ...ids,
          width: Number(params.width ?? 0),
          height: Number(params.height ?? 0),
          duration: Number(params.duration ?? 0),
          ...(thumb ? { thumbnail: thumb } : {}),
          ...(file ? { file_name: file.filename } : {}),
          mime_type: "video/mp4",
          ...size,
        },
      };
    } else {
      media = {
        document: {
          ...ids,
          ...(file ? { file_name: file.filename } : {}),
          mime_type: "application/octet-stream",
          ...size,
        },
      };
    }
    return botMessage(chat, params, { ...media, ...caption }, String(params.caption ?? ""));
  };

  const handlers: Record<
    Exclude<KnownMethod, "getUpdates">,
    (params: Json, files: UploadedFile[]) => unknown
  > = {
    getMe: () => botInfo,
    deleteWebhook: (params) => {
      if (params.drop_pending_updates === true) queue = [];
      return true;
    },
    setMyCommands: (params) => {
      const list = params.commands;
      if (!Array.isArray(list)) throw badRequest('field "commands" must be an Array');
      if (list.length > 100) throw badRequest("too many commands");
      for (const c of list) {
        const command = (c as Json)?.command;
        const description = (c as Json)?.description;
        if (typeof command !== "string" || !/^[a-z0-9_]{1,32}$/.test(command)) {
          throw badRequest("BOT_COMMAND_INVALID");
        }
        if (typeof description !== "string" || description.length < 1 || description.length > 256) {
          throw badRequest("BOT_COMMAND_DESCRIPTION_INVALID");
        }
      }
      commands.set(
        `${JSON.stringify(params.scope ?? { type: "default" })}|${params.language_code ?? ""}`,
        list,
      );
      return true;
    },
    getMyCommands: (params) =>
      commands.get(
        `${JSON.stringify(params.scope ?? { type: "default" })}|${params.language_code ?? ""}`,
      ) ?? [],
    deleteMyCommands: (params) => {
      commands.delete(
        `${JSON.stringify(params.scope ?? { type: "default" })}|${params.language_code ?? ""}`,
      );
      return true;
    },
    sendMessage: (params) => {
      const chat = requireChat(params);
      const source = params.text === undefined || params.text === null ? "" : String(params.text);
      if (source.trim() === "") throw badRequest("message text is empty");
      const text = render(source, params.parse_mode);
      if (text.length > 4096) throw badRequest("message is too long");
      checkReplyMarkup(params.reply_markup);
      const extra: Json = { text };
      if (Array.isArray(params.entities)) extra.entities = params.entities;
      return botMessage(chat, params, extra, source);
    },
    editMessageText: (params) => {
      if (params.inline_message_id !== undefined) return true;
      const { entry } = findMessage(params, "message to edit not found");
      const { message } = entry;
      if ((message.from as Json | undefined)?.id !== botInfo.id) {
        throw badRequest("message can't be edited");
      }
      if (typeof message.text !== "string")
        throw badRequest("there is no text in the message to edit");
      const source = params.text === undefined || params.text === null ? "" : String(params.text);
      if (source.trim() === "") throw badRequest("message text is empty");
      const text = render(source, params.parse_mode);
      if (text.length > 4096) throw badRequest("message is too long");
      checkReplyMarkup(params.reply_markup);
      const markup = (params.reply_markup as Json | undefined)?.inline_keyboard
        ? params.reply_markup
        : undefined;
      if (source === entry.source && sameMarkup(markup, message.reply_markup)) {
        throw badRequest(
          "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
        );
      }
      entry.source = source;
      message.text = text;
      message.edit_date = now();
      if (markup) message.reply_markup = markup;
      else delete message.reply_markup;
      return message;
    },
    editMessageReplyMarkup: (params) => {
      if (params.inline_message_id !== undefined) return true;
      const { entry } = findMessage(params, "message to edit not found");
      const { message } = entry;
      if ((message.from as Json | undefined)?.id !== botInfo.id) {
        throw badRequest("message can't be edited");
      }
      checkReplyMarkup(params.reply_markup);
      const markup = (params.reply_markup as Json | undefined)?.inline_keyboard
        ? params.reply_markup
        : undefined;
      if (sameMarkup(markup, message.reply_markup)) {
        throw badRequest(
          "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
        );
      }
      message.edit_date = now();
      if (markup) message.reply_markup = markup;
      else delete message.reply_markup;
      return message;
    },
    answerCallbackQuery: (params) => {
      const q = callbackQueries.get(String(params.callback_query_id ?? ""));
      if (!q || q.answered) {
        throw badRequest("query is too old and response timeout expired or query ID is invalid");
      }
      q.answered = true;
      return true;
    },
    sendChatAction: (params) => {
      requireChat(params);
      if (typeof params.action !== "string" || params.action === "") {
        throw badRequest("wrong parameter action in request");
      }
      return true;
    },
    sendVideo: (params, files) => sendMedia(params, files, "video"),
    sendDocument: (params, files) => sendMedia(params, files, "document"),
    sendPhoto: (params, files) => sendMedia(params, files, "photo"),
    sendAnimation: (params, files) => sendMedia(params, files, "animation"),
    deleteMessage: (params) => {
      const { chat, messageId } = findMessage(params, "message to delete not found");
      messages.delete(`${chat}:${messageId}`);
      return true;
    },
  };

  // ---- HTTP

  const send = (res: ServerResponse, status: number, body: unknown) => {
    if (res.writableEnded || res.destroyed) return;
    const text = JSON.stringify(body);
    const headers: OutgoingHttpHeaders = {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(text),
    };
    res.writeHead(status, headers);
    res.end(text);
  };

  /** Reads and discards the body, so the client gets to read the answer. */
  const drain = (req: IncomingMessage) =>
    new Promise<void>((resolve) => {
      req.once("end", resolve);
      req.once("close", resolve);
      req.once("error", () => resolve());
      req.resume();
    });

  const record = (call: Call) => {
    calls.push(call);
    uploads.push(...call.files);
    for (const listener of [...callListeners]) listener(call);
  };

  const answer = (
    res: ServerResponse,
    call: Omit<Call, "answeredAt" | "ok" | "status">,
    outcome: unknown,
  ) => {
    const done: Call = { ...call, answeredAt: Date.now(), ok: false, status: 200 };
    if (outcome instanceof ApiError) {
      done.status = outcome.code;
      done.errorCode = outcome.code;
      done.description = outcome.description;
      send(res, outcome.code, {
        ok: false,
        error_code: outcome.code,
        description: outcome.description,
        ...(outcome.parameters ? { parameters: outcome.parameters } : {}),
      });
    } else {
      done.ok = true;
      done.result = outcome;
      send(res, 200, { ok: true, result: outcome });
    }
    record(done);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const at = Date.now();
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const route = /^\/bot([^/]+)\/([^/]+)\/?$/.exec(url.pathname);
    if (!route) {
      await drain(req);
      send(res, 404, { ok: false, error_code: 404, description: "Not Found" });
      return;
    }
    if (decodeURIComponent(route[1] ?? "") !== token) {
      await drain(req);
      send(res, 401, { ok: false, error_code: 401, description: "Unauthorized" });
      return;
    }
    const asSent = decodeURIComponent(route[2] ?? "");
    const method = METHOD_BY_LOWER.get(asSent.toLowerCase());
    const requestId = ++requestCounter;

    let body: ParsedBody;
    let bodyError: ApiError | undefined;
    try {
      body = await parseBody(req, uploadDir, maxUploadBytes, requestId);
    } catch (err) {
      if (!(err instanceof ApiError)) {
        // the client went away mid-request, or the body was not multipart at all
        if (!res.destroyed)
          send(res, 400, {
            ok: false,
            error_code: 400,
            description: `Bad Request: ${(err as Error).message}`,
          });
        return;
      }
      bodyError = err;
      body = (err as ApiError & { body?: ParsedBody }).body ?? {
        kind: "other",
        fields: {},
        files: [],
      };
    }
    const params: Json = {};
    for (const [k, v] of url.searchParams) params[k] = coerceFormValue(k, v);
    Object.assign(params, body.fields);
    for (const [key, value] of Object.entries(params)) {
      if (typeof value === "string" && value.startsWith("attach://")) {
        const file = body.files.find((f) => f.field === value.slice("attach://".length));
        if (file) file.param = key;
      }
    }
    const call = {
      seq: 0,
      method: method ?? asSent,
      params,
      files: body.files,
      at,
      body: body.kind,
    };
    const finish = (outcome: unknown) => {
      call.seq = seq++;
      answer(res, call, outcome);
    };

    if (bodyError) return finish(bodyError);

    const failure = failures.get(call.method.toLowerCase());
    if (failure) {
      failure.remaining--;
      if (failure.remaining <= 0) failures.delete(call.method.toLowerCase());
      if (failure.disconnect) {
        call.seq = seq++;
        record({
          ...call,
          answeredAt: Date.now(),
          ok: false,
          status: 0,
          description: "disconnected",
        });
        req.socket.destroy();
        return;
      }
      const code = failure.errorCode ?? 500;
      const retryAfter = failure.retryAfter ?? (code === 429 ? 1 : undefined);
      return finish(
        new ApiError(
          code,
          failure.description ?? defaultDescription(code, retryAfter),
          retryAfter !== undefined ? { retry_after: retryAfter } : undefined,
        ),
      );
    }

    if (!method) return finish(new ApiError(404, "Not Found: method not found"));

    if (method === "getUpdates") {
      if (Array.isArray(params.allowed_updates))
        allowedUpdates = params.allowed_updates.map(String);
      const offset = typeof params.offset === "number" ? params.offset : undefined;
      const limit = typeof params.limit === "number" ? params.limit : 100;
      const timeoutSec = typeof params.timeout === "number" ? params.timeout : 0;
      // Telegram allows one getUpdates at a time: a new one ends the one waiting.
      for (const p of [...pollers]) {
        p.finish(
          new ApiError(
            409,
            "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
          ),
        );
      }
      const ready = available(offset, limit);
      if (ready.length > 0 || timeoutSec <= 0 || stopped) return finish(ready);
      await new Promise<void>((resolve) => {
        let timer: NodeJS.Timeout | undefined;
        const poller: Poller = {
          offset,
          limit,
          finish: (outcome) => {
            if (!pollers.delete(poller)) return;
            if (timer) clearTimeout(timer);
            res.off("close", onClose);
            finish(outcome);
            resolve();
          },
        };
        // The client gave up (grammY aborts the poll on bot.stop()): nothing to answer.
        const onClose = () => {
          if (!pollers.delete(poller)) return;
          if (timer) clearTimeout(timer);
          resolve();
        };
        timer = setTimeout(() => poller.finish([]), timeoutSec * 1000);
        pollers.add(poller);
        res.on("close", onClose);
      });
      return;
    }

    let outcome: unknown;
    try {
      outcome = handlers[method](params, body.files);
    } catch (err) {
      outcome =
        err instanceof ApiError
          ? err
          : new ApiError(500, `Internal Server Error: ${(err as Error).message}`);
    }
    finish(outcome);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent && !res.destroyed) {
        send(res, 500, {
          ok: false,
          error_code: 500,
          description: `Internal Server Error: ${String(err)}`,
        });
      }
    });
  });
  server.keepAliveTimeout = 30_000;
  server.requestTimeout = 0; // long polls and big uploads may take a while
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  // ---- test API

  const waitForCall: FakeTelegram["waitForCall"] = (method, predicate, timeoutMs = 5000, opts) => {
    const since = opts?.since ?? 0;
    const wanted = method.toLowerCase();
    const matches = (c: Call) =>
      c.seq >= since && c.method.toLowerCase() === wanted && (!predicate || predicate(c));
    const found = calls.find(matches);
    if (found) return Promise.resolve(found);
    return new Promise<Call>((resolve, reject) => {
      const listener = (c: Call) => {
        if (!matches(c)) return;
        clearTimeout(timer);
        callListeners.delete(listener);
        resolve(c);
      };
      const timer = setTimeout(() => {
        callListeners.delete(listener);
        const seen = calls
          .filter((c) => c.method.toLowerCase() === wanted)
          .map(
            (c) =>
              `  #${c.seq} ${c.ok ? "ok" : `error ${c.errorCode}`} ${JSON.stringify(c.params).slice(0, 300)}`,
          );
        reject(
          new Error(
            `fake Telegram: no matching ${method} call within ${timeoutMs} ms; ${method} calls seen:\n${seen.join("\n") || "  (none)"}`,
          ),
        );
      }, timeoutMs);
      // A wait nobody settles (e.g. for a failure that never came) must not hold the process.
      timer.unref();
      callListeners.add(listener);
    });
  };

  const sameChat = (a: unknown, b: number | string) => a !== undefined && String(a) === String(b);

  const messagesTo = (chatId: number | string) =>
    calls.filter((c) => c.ok && USER_VISIBLE.has(c.method) && sameChat(c.params.chat_id, chatId));

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    for (const p of [...pollers]) p.finish([]);
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
      // give the answers just written a moment to leave, then cut whatever is left
      setTimeout(() => {
        server.closeAllConnections();
        for (const s of sockets) s.destroy();
      }, 20);
    });
    if (!options.keepUploads) {
      if (ownDir) await rm(uploadDir, { recursive: true, force: true });
      else
        await Promise.all(uploads.map((u) => (u.path ? rm(u.path, { force: true }) : undefined)));
    }
  };

  return {
    apiRoot: `http://127.0.0.1:${port}`,
    token,
    botInfo,
    calls,
    uploads,
    uploadDir,
    port,
    sendText,
    pressButton,
    queueUpdate,
    pendingUpdates: () => [...queue],
    waitForCall,
    nextCall: (method, predicate, timeoutMs) =>
      waitForCall(method, predicate, timeoutMs, { since: seq }),
    messagesTo,
    textsTo: (chatId) =>
      messagesTo(chatId).map((c) => {
        const r = c.result as Json | undefined;
        return String(r?.text ?? r?.caption ?? c.params.text ?? c.params.caption ?? "");
      }),
    failNext: (method, spec = {}) => {
      failures.set(method.toLowerCase(), { ...spec, remaining: spec.times ?? 1 });
    },
    clearCalls: () => {
      calls.length = 0;
      uploads.length = 0;
    },
    stop,
  };
}
