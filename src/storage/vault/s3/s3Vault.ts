/**
 * The vault as a `VaultStore` on S3 or an S3-compatible server (Backblaze B2, Cloudflare R2,
 * MinIO, Wasabi). Keys are `<prefix>/<path>`; "directories" are the common prefixes of a
 * `/`-delimited listing, as every S3 console shows them. Writes are in upload.ts.
 */
import { PassThrough, type Readable } from "node:stream";
import { errorMessage, type Logger, silentLogger } from "../../../util/log.js";
import type { Entry, VaultStore } from "../../types.js";
import { createS3Client, type S3ClientOptions, type S3Connection } from "./client.js";
import { type FailureContext, type S3Action, s3Failure } from "./errors.js";
import { PartPool } from "./partPool.js";
import { DEFAULT_PART_SIZE, type ObjectParams, uploadObject } from "./upload.js";

export interface S3VaultOptions extends Omit<S3ClientOptions, "logger"> {
  bucket: string;
  /** Key prefix (destination.path), without leading or trailing `/`; "" for the whole bucket. */
  prefix: string;
  storageClass?: string;
  serverSideEncryption?: string;
  kmsKeyId?: string;
  /** Smallest multipart part (tests use S3's minimum, 5 MiB). */
  partSize?: number;
  logger?: Logger;
}

/** Our objects: `<clip id>.age`. Uploads of anything else under the prefix are not ours. */
const OURS = /\.age$/;

export function createS3Vault(opts: S3VaultOptions): VaultStore {
  const logger = opts.logger ?? silentLogger;
  const { bucket, prefix } = opts;
  const pool = new PartPool(opts.partSize ?? DEFAULT_PART_SIZE);
  const endpoint = opts.endpoint ?? "AWS";
  const description = `s3://${bucket}/${prefix}${opts.endpoint ? ` at ${opts.endpoint}` : ""}`;
  const ctx: FailureContext = { description, bucket, region: opts.region, endpoint };
  const params: ObjectParams = {};
  if (opts.storageClass) params.StorageClass = opts.storageClass;
  if (opts.serverSideEncryption) params.ServerSideEncryption = opts.serverSideEncryption;
  if (opts.kmsKeyId) params.SSEKMSKeyId = opts.kmsKeyId;

  /** The key of a store path (`..` was refused before it got here; nothing is resolved). */
  const keyOf = (path: string): string => {
    const rel = path.replace(/^\/+/, "").replace(/\/+$/, "");
    if (rel === "" || rel === ".") return prefix;
    return prefix ? `${prefix}/${rel}` : rel;
  };
  /** The listing prefix of a directory: its key and a `/`, or "" for the bucket's root. */
  const dirPrefix = (dir: string): string => {
    const key = keyOf(dir);
    return key === "" ? "" : `${key}/`;
  };

  let connecting: Promise<S3Connection> | undefined;
  const conn = (): Promise<S3Connection> => {
    connecting ??= createS3Client({ ...opts, logger });
    connecting.catch(() => {
      connecting = undefined;
    });
    return connecting;
  };
  const fail = (op: string, key: string, action: S3Action, err: unknown) =>
    s3Failure(ctx, op, key, action, err);

  /** Every page of a `/`-delimited listing. */
  async function listPrefix(listing: string): Promise<Entry[]> {
    const { sdk, client } = await conn();
    const entries: Entry[] = [];
    let token: string | undefined;
    do {
      const page = await client.send(
        new sdk.ListObjectsV2Command({
          Bucket: bucket,
          Prefix: listing,
          Delimiter: "/",
          ContinuationToken: token,
        }),
      );
      for (const p of page.CommonPrefixes ?? []) {
        const name = p.Prefix?.slice(listing.length, -1);
        if (name) entries.push({ name, kind: "dir", size: 0, mtimeMs: 0 });
      }
      for (const o of page.Contents ?? []) {
        const name = o.Key?.slice(listing.length);
        // A key ending in "/" is a console's "folder" marker, not a file.
        if (!name || name.endsWith("/")) continue;
        entries.push({
          name,
          kind: "file",
          size: o.Size ?? 0,
          mtimeMs: o.LastModified?.getTime() ?? 0,
        });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return entries;
  }

  return {
    description,

    async list(dir) {
      const listing = dirPrefix(dir);
      try {
        return await listPrefix(listing);
      } catch (err) {
        throw fail("list", listing || "/", "s3:ListBucket", err);
      }
    },

    async stat(path) {
      const key = keyOf(path);
      const name = key.slice(key.lastIndexOf("/") + 1);
      const { sdk, client } = await conn().catch((err: unknown) => {
        throw fail("stat", key, "s3:GetObject", err);
      });
      try {
        const head = await client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: key }));
        return {
          name,
          kind: "file",
          size: head.ContentLength ?? 0,
          mtimeMs: head.LastModified?.getTime() ?? 0,
        };
      } catch (err) {
        const failure = fail("stat", key, "s3:GetObject", err);
        if ((failure as NodeJS.ErrnoException).code !== "ENOENT") throw failure;
      }
      // No such object: a "directory" when keys sit below it.
      try {
        const below = await client.send(
          new sdk.ListObjectsV2Command({ Bucket: bucket, Prefix: `${key}/`, MaxKeys: 1 }),
        );
        return below.KeyCount ? { name, kind: "dir", size: 0, mtimeMs: 0 } : undefined;
      } catch (err) {
        throw fail("stat", key, "s3:ListBucket", err);
      }
    },

    async read(path) {
      const key = keyOf(path);
      let body: Readable;
      try {
        const { sdk, client } = await conn();
        const got = await client.send(new sdk.GetObjectCommand({ Bucket: bucket, Key: key }));
        body = got.Body as Readable;
      } catch (err) {
        throw fail("read", key, "s3:GetObject", err);
      }
      // The response is the socket: a cut connection fails the stream with a message naming it.
      const out = new PassThrough({ highWaterMark: 256 * 1024 });
      body.on("error", (err) => out.destroy(fail("read", key, "s3:GetObject", err)));
      out.on("close", () => {
        if (!body.destroyed) body.destroy();
      });
      body.pipe(out);
      return out;
    },

    async put(path, data, putOpts = {}) {
      const key = keyOf(path);
      return uploadObject(
        {
          conn: await conn().catch((err: unknown) => {
            data.destroy();
            throw fail("write", key, "s3:PutObject", err);
          }),
          bucket,
          key,
          params,
          pool,
          fail: (op, action, err) => fail(op, key, action, err),
          logger,
        },
        data,
        putOpts,
      );
    },

    async remove(path) {
      const key = keyOf(path);
      try {
        const { sdk, client } = await conn();
        await client.send(new sdk.DeleteObjectCommand({ Bucket: bucket, Key: key }));
      } catch (err) {
        const failure = fail("remove", key, "s3:DeleteObject", err);
        if ((failure as NodeJS.ErrnoException).code !== "ENOENT") throw failure;
      }
    },

    /**
     * Aborts multipart uploads of ours (`.age` keys under the prefix) started over `olderThanMs`
     * ago: a run killed mid-upload leaves its parts on the server, billed but invisible. Younger
     * ones may belong to a run still going (here or on another machine), so they are left alone.
     */
    async sweepStale(olderThanMs) {
      const listing = dirPrefix("");
      const { sdk, client } = await conn().catch((err: unknown) => {
        throw fail("list uploads", listing || "/", "s3:ListBucketMultipartUploads", err);
      });
      const cutoff = Date.now() - olderThanMs;
      let aborted = 0;
      let keyMarker: string | undefined;
      let uploadIdMarker: string | undefined;
      do {
        const page = await client
          .send(
            new sdk.ListMultipartUploadsCommand({
              Bucket: bucket,
              Prefix: listing,
              KeyMarker: keyMarker,
              UploadIdMarker: uploadIdMarker,
            }),
          )
          .catch((err: unknown) => {
            throw fail("list uploads", listing || "/", "s3:ListBucketMultipartUploads", err);
          });
        for (const u of page.Uploads ?? []) {
          if (!u.Key || !u.UploadId || !OURS.test(u.Key)) continue;
          if ((u.Initiated?.getTime() ?? Number.POSITIVE_INFINITY) > cutoff) continue;
          try {
            await client.send(
              new sdk.AbortMultipartUploadCommand({
                Bucket: bucket,
                Key: u.Key,
                UploadId: u.UploadId,
              }),
            );
            aborted++;
            logger.info({ key: u.Key }, "aborted an unfinished multipart upload of an earlier run");
          } catch (err) {
            const failure = fail("abort upload", u.Key, "s3:AbortMultipartUpload", err);
            if ((failure as NodeJS.ErrnoException).code === "ENOENT") continue;
            logger.warn({ key: u.Key, err: errorMessage(failure) }, "could not abort an upload");
          }
        }
        keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
        uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
      } while (keyMarker);
      return aborted;
    },

    async close() {
      const pending = connecting;
      connecting = undefined;
      if (pending) (await pending.catch(() => undefined))?.client.destroy();
    },
  };
}
