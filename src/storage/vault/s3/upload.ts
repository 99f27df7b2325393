/**
 * Writing one object, never partially and with memory flat in the object's size. S3 shows an
 * object only once its PutObject or CompleteMultipartUpload succeeded, so no temporary key:
 *
 * - The stream is cut into parts of a fixed size (5 MiB, more for clips over ~44 GiB, as S3
 *   allows 10,000 parts). When it ends within the first part, the whole object is in that one
 *   buffer: it is size-checked, `beforeCommit` runs, then one PutObject sends it. (Multipart for
 *   small objects too would cost three requests instead of one for most clips.)
 * - Otherwise a multipart upload with PARTS_PER_UPLOAD buffers (2 x 5 MiB per clip, from a pool
 *   the store's uploads share): a part leaves as soon as it is cut, and the next one is cut once
 *   a buffer is free, so two parts are in flight while the source keeps up, and memory stays at
 *   two parts when it does not. When the expected size already says so, the upload is created
 *   while the first part fills. Once every part is in, the size is checked and `beforeCommit` runs,
 *   and only then CompleteMultipartUpload makes the object visible; its size is read back.
 * - Integrity: each request's body is a Buffer, so the SDK signs its SHA-256
 *   (x-amz-content-sha256, part of the SigV4 signature) and S3 refuses a body that does not
 *   match it (XAmzContentSHA256Mismatch). A Content-MD5 on top would hash every byte again.
 * - On any failure the multipart upload is aborted (its parts would be billed forever);
 *   an abort that cannot reach the server is left to the sweep of stale uploads.
 */
import type { Readable } from "node:stream";
import type { CompletedPart } from "@aws-sdk/client-s3";
import { errorMessage, type Logger } from "../../../util/log.js";
import type { PutOptions, PutResult } from "../../types.js";
import type { S3Connection } from "./client.js";
import type { S3Action } from "./errors.js";
import type { PartPool } from "./partPool.js";

export const MiB = 1024 * 1024;
/**
 * Part size: S3's minimum, as rclone's default. The AWS CLI and boto3 use 8 MiB; with parts
 * this size a 1 GiB clip syncs in 10 MB less memory (README, Performance), at the same speed.
 */
export const DEFAULT_PART_SIZE = 5 * MiB;
/**
 * Part buffers per object, cut or in flight: two requests at once keep the link busy across
 * round trips.
 */
const PARTS_PER_UPLOAD = 2;
const MAX_PARTS = 10_000;

/** What the object is written with besides its bytes: storage class, server-side encryption. */
export type ObjectParams = Record<string, string>;

export interface UploadTarget {
  conn: S3Connection;
  bucket: string;
  key: string;
  params: ObjectParams;
  /** Part buffers, shared by the store's uploads; its size is the smallest part size. */
  pool: PartPool;
  /** Turns an SDK error into the store's error, naming the operation and the IAM action. */
  fail(op: string, action: S3Action, err: unknown): Error;
  logger: Logger;
}

/** The part size for an object of `size` bytes (when known): whole MiB, within 10,000 parts. */
export function partSizeFor(minimum: number, size: number | undefined): number {
  if (size === undefined) return minimum;
  return Math.max(minimum, Math.ceil(size / (MAX_PARTS - 1000) / MiB) * MiB);
}

/** Buffers of exactly `size` bytes cut from the stream (the last one shorter), one copy each. */
async function* cutParts(data: Readable, pool: PartPool, size: number): AsyncGenerator<Buffer> {
  let part = pool.take(size);
  let filled = 0;
  // Stopping early must not destroy the source with an AbortError of its own: the caller
  // reports why it stopped, and destroys the source itself.
  for await (const chunk of data.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    for (let at = 0; at < chunk.length; ) {
      const n = Math.min(size - filled, chunk.length - at);
      chunk.copy(part, filled, at, at + n);
      filled += n;
      at += n;
      if (filled === size) {
        yield part;
        part = pool.take(size);
        filled = 0;
      }
    }
  }
  if (filled > 0) yield part.subarray(0, filled);
  else pool.give(part);
}

function checkSize(t: UploadTarget, got: number, opts: PutOptions): void {
  if (opts.expectedSize !== undefined && got !== opts.expectedSize) {
    const mismatch = new Error(`size mismatch: expected ${opts.expectedSize} bytes, got ${got}`);
    throw t.fail("write", "s3:PutObject", mismatch);
  }
}

export async function uploadObject(
  t: UploadTarget,
  data: Readable,
  opts: PutOptions,
): Promise<PutResult> {
  // A source that fails (or is stopped by the stall watchdog) while parts are uploading stops
  // them at once, and is the error reported.
  const stop = new AbortController();
  let sourceError: unknown;
  const onError = (err: unknown) => {
    sourceError ??= err;
    stop.abort();
  };
  const onClose = () => {
    if (!data.readableEnded) stop.abort();
  };
  data.on("error", onError);
  data.on("close", onClose);
  const pool = t.pool;
  const partSize = partSizeFor(pool.size, opts.expectedSize);
  const parts = cutParts(data, pool, partSize);
  try {
    // Known to take several parts: the upload is created while the first part fills, and each
    // part leaves as soon as it is cut.
    if (opts.expectedSize !== undefined && opts.expectedSize > partSize) {
      return await putMultipart(t, parts, opts, stop);
    }
    const first = await parts.next();
    const second = first.done ? first : await parts.next();
    if (second.done) {
      const body = first.done ? Buffer.alloc(0) : first.value;
      checkSize(t, body.length, opts);
      await opts.beforeCommit?.();
      await putSingle(t, body, stop.signal);
      pool.give(body);
      return { size: body.length };
    }
    return await putMultipart(t, prepend([first.value as Buffer, second.value], parts), opts, stop);
  } catch (err) {
    throw sourceError ?? err;
  } finally {
    data.off("error", onError);
    data.off("close", onClose);
    await parts.return(undefined);
    if (!data.readableEnded) data.destroy();
  }
}

async function putSingle(t: UploadTarget, body: Buffer, signal: AbortSignal): Promise<void> {
  const { sdk, client } = t.conn;
  try {
    await client.send(
      new sdk.PutObjectCommand({
        Bucket: t.bucket,
        Key: t.key,
        Body: body,
        ContentLength: body.length,
        ...t.params,
      }),
      { abortSignal: signal },
    );
  } catch (err) {
    throw t.fail("write", "s3:PutObject", err);
  }
}

/** `head`, then the rest of `rest`. */
async function* prepend(head: Buffer[], rest: AsyncGenerator<Buffer>): AsyncGenerator<Buffer> {
  yield* head;
  yield* rest;
}

async function createUpload(t: UploadTarget): Promise<string> {
  const { sdk, client } = t.conn;
  try {
    const created = await client.send(
      new sdk.CreateMultipartUploadCommand({ Bucket: t.bucket, Key: t.key, ...t.params }),
    );
    if (!created.UploadId) throw new Error("the server gave no UploadId");
    return created.UploadId;
  } catch (err) {
    throw t.fail("write", "s3:PutObject", err);
  }
}

async function putMultipart(
  t: UploadTarget,
  parts: AsyncIterable<Buffer>,
  opts: PutOptions,
  stop: AbortController,
): Promise<PutResult> {
  const { sdk, client } = t.conn;
  const { bucket: Bucket, key: Key } = t;
  const created = createUpload(t);
  // Settled here too, so that a source failing before the answer is no unhandled rejection.
  const uploadIdOrNone = created.catch(() => undefined);

  const done: CompletedPart[] = [];
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  let size = 0;
  const start = (UploadId: string, PartNumber: number, Body: Buffer) => {
    size += Body.length;
    const p: Promise<void> = client
      .send(
        new sdk.UploadPartCommand({
          Bucket,
          Key,
          UploadId,
          PartNumber,
          Body,
          ContentLength: Body.length,
        }),
        { abortSignal: stop.signal },
      )
      .then((r) => {
        if (!r.ETag) throw new Error(`the server gave no ETag for part ${PartNumber}`);
        done.push({ PartNumber, ETag: r.ETag });
        t.pool.give(Body);
      })
      // A missing ETag lands here too: an in-flight promise must never reject, or a rejection
      // while no drain is waiting on it would be unhandled.
      .catch((err: unknown) => {
        failure ??= t.fail("write", "s3:PutObject", err);
        stop.abort();
      })
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  };
  const drainTo = async (limit: number) => {
    while (inFlight.size > limit && failure === undefined) await Promise.race(inFlight);
    if (failure !== undefined) throw failure;
  };

  let uploadId: string | undefined;
  const next = parts[Symbol.asyncIterator]();
  try {
    for (let n = 1; ; n++) {
      // A buffer for the next part is free only once fewer than PARTS_PER_UPLOAD are in flight.
      await drainTo(PARTS_PER_UPLOAD - 1);
      const part = await next.next();
      if (part.done) break;
      uploadId ??= await created;
      start(uploadId, n, part.value);
    }
    uploadId ??= await created;
    await drainTo(0);
    checkSize(t, size, opts);
    await opts.beforeCommit?.();
    done.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
    try {
      await client.send(
        new sdk.CompleteMultipartUploadCommand({
          Bucket,
          Key,
          UploadId: uploadId,
          MultipartUpload: { Parts: done },
        }),
      );
    } catch (err) {
      throw t.fail("write", "s3:PutObject", err);
    }
  } catch (err) {
    stop.abort();
    await Promise.allSettled(inFlight);
    const started = uploadId ?? (await uploadIdOrNone);
    if (started) await abortUpload(t, started);
    throw err;
  }
  await checkStored(t, size);
  return { size };
}

/** Reads the completed object's size back; a server that assembled it wrong loses it again. */
async function checkStored(t: UploadTarget, size: number): Promise<void> {
  const { sdk, client } = t.conn;
  let stored: number | undefined;
  try {
    const head = await client.send(new sdk.HeadObjectCommand({ Bucket: t.bucket, Key: t.key }));
    stored = head.ContentLength;
  } catch (err) {
    throw t.fail("check", "s3:GetObject", err);
  }
  if (stored === size) return;
  await client.send(new sdk.DeleteObjectCommand({ Bucket: t.bucket, Key: t.key })).catch(() => {});
  throw t.fail("write", "s3:PutObject", new Error(`the server stored ${stored} bytes of ${size}`));
}

async function abortUpload(t: UploadTarget, UploadId: string): Promise<void> {
  const { sdk, client } = t.conn;
  try {
    await client.send(
      new sdk.AbortMultipartUploadCommand({ Bucket: t.bucket, Key: t.key, UploadId }),
    );
  } catch (err) {
    t.logger.warn(
      { key: t.key, err: errorMessage(err) },
      "could not abort an unfinished multipart upload; the next sync's sweep aborts it after a day",
    );
  }
}
