import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";

/**
 * Reading what a caller of the HTTP listener sent: a capped body, the hook's fields in the
 * four ways motionEye's "Call A Web Hook" sends them (GET and POST keep the query in the URL,
 * POSTf sends it as a form body, POSTj as a JSON object of strings), and the token.
 */

/** motionEye sends a few hundred bytes; a body larger than this is not a hook call. */
export const MAX_BODY_BYTES = 8192;

export class BadRequestError extends Error {
  override name = "BadRequestError";
}

/** The whole body, or a BadRequestError once it passes `max` bytes (reading stops there). */
export function readBody(req: IncomingMessage, max = MAX_BODY_BYTES): Promise<Buffer> {
  const tooLarge = () => new BadRequestError(`the body is larger than ${max} bytes`);
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > max) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.off("data", onData);
        req.pause();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    req.on("data", onData);
    req.once("end", () => resolve(Buffer.concat(chunks)));
    req.once("error", reject);
  });
}

export type Fields = Record<string, unknown>;

/**
 * The hook's fields: the query string's, then the body's (which win). A JSON body must be an
 * object; a form body is `application/x-www-form-urlencoded`; an empty body (motionEye's plain
 * POST sends one as text/plain) adds nothing. Anything else is a BadRequestError.
 */
export function hookFields(url: URL, contentType: string | undefined, body: Buffer): Fields {
  const fields: Fields = {};
  for (const [key, value] of url.searchParams) if (!Object.hasOwn(fields, key)) fields[key] = value;

  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(body).replace(/^\uFEFF/, "");
  } catch {
    throw new BadRequestError("the body is not UTF-8 text");
  }
  const trimmed = text.trim();
  if (trimmed === "") return fields;

  const type = (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  // curl -d sends JSON as a form unless told otherwise: a body that opens like JSON is JSON.
  if (type === "application/json" || type.endsWith("+json") || trimmed.startsWith("{")) {
    let doc: unknown;
    try {
      doc = JSON.parse(trimmed);
    } catch {
      throw new BadRequestError("the body is not valid JSON");
    }
    if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
      throw new BadRequestError("the JSON body must be an object of fields");
    }
    return { ...fields, ...(doc as Fields) };
  }
  if (type === "application/x-www-form-urlencoded") {
    const form: Fields = {};
    for (const [key, value] of new URLSearchParams(trimmed)) {
      if (!Object.hasOwn(form, key)) form[key] = value;
    }
    return { ...fields, ...form };
  }
  throw new BadRequestError(
    `a body of type "${type || "none"}" is not understood: send JSON (application/json) or a form (application/x-www-form-urlencoded)`,
  );
}

/** The token of `Authorization: Bearer <token>`, if the request has one. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  return m?.[1];
}

/** Compares in constant time (over digests, so the length of the token does not show either). */
export function tokenMatches(expected: string, given: unknown): boolean {
  if (typeof given !== "string") return false;
  const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();
  return timingSafeEqual(digest(expected), digest(given));
}
