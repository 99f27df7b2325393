/**
 * The loopback S3 server of the tests, run as its own process by `test/harness/s3.ts`: the npm
 * package s3rver (the S3 REST API over a folder: buckets, objects, ListObjectsV2, multipart
 * uploads, SigV4 headers, RequestTimeTooSkewed) plus the two multipart calls s3rver 3.7 answers
 * with NotImplemented / MethodNotAllowed: ListMultipartUploads and AbortMultipartUpload. Those
 * two are answered here from s3rver's own upload folders (`<bucket>/._S3rver_uploads/<id>/`),
 * in the XML shapes of the S3 API reference, so boto3 and the AWS SDK parse them as from S3.
 * It also fixes s3rver's `/`-delimited listing and its answers before a file is written (below).
 *
 * argv: port dir bucket[,bucket...] [keyFile certFile]   Prints "ready" when listening.
 */
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import https from "node:https";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";

interface S3rverApp {
  configureBuckets(): Promise<unknown>;
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
}
type S3rverClass = new (options: Record<string, unknown>) => S3rverApp;

interface ListResult {
  objects: Array<{ key: string }>;
  commonPrefixes: string[];
  isTruncated: boolean;
}
interface ListOptions {
  delimiter?: string;
  prefix?: string;
  maxKeys?: number;
  startAfter?: string;
}
type ListObjects = (this: unknown, bucket: string, o: ListOptions) => Promise<ListResult>;

const require = createRequire(import.meta.url);
const S3rver = require("s3rver") as S3rverClass;
interface StoredObject {
  bucket: string;
  key: string;
  content: Buffer | Readable;
  metadata: unknown;
}
interface Written {
  size: number;
  md5: string;
}
interface FilesystemStoreProto {
  listObjects: ListObjects;
  putObject(this: FilesystemStoreProto, object: StoredObject): Promise<Written>;
  putPart(
    this: FilesystemStoreProto,
    bucket: string,
    uploadId: string,
    part: number,
    content: Readable,
  ): Promise<Written>;
  getResourcePath(bucket: string, key: string | undefined, type: string): string;
  putMetadata(bucket: string, key: string, metadata: unknown, md5: string): Promise<void>;
}
const FilesystemStore = require("s3rver/lib/stores/filesystem.js") as {
  prototype: FilesystemStoreProto;
};

/*
 * s3rver 3.7 answers PutObject, UploadPart and CompleteMultipartUpload once its MD5 has seen the
 * last byte, before the file under it is fully written: a HeadObject or a Complete right after
 * can find it short (S3 itself is read-after-write consistent). Here they answer once the file
 * is closed.
 */
async function writeHashed(file: string, content: Buffer | Readable): Promise<Written> {
  await mkdir(dirname(file), { recursive: true });
  const md5 = createHash("md5");
  let size = 0;
  const count = new Transform({
    transform(chunk: Buffer, _enc, done) {
      md5.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  const body = Buffer.isBuffer(content) ? Readable.from([content]) : content;
  await pipeline(body, count, createWriteStream(file));
  return { size, md5: md5.digest("hex") };
}
FilesystemStore.prototype.putObject = async function (object) {
  const written = await writeHashed(
    this.getResourcePath(object.bucket, object.key, "object"),
    object.content,
  );
  await this.putMetadata(object.bucket, object.key, object.metadata, written.md5);
  return written;
};
FilesystemStore.prototype.putPart = async function (bucket, uploadId, part, content) {
  const file = join(this.getResourcePath(bucket, undefined, "uploads"), uploadId, String(part));
  const written = await writeHashed(file, content);
  await writeFile(`${file}.md5`, written.md5);
  return written;
};

/*
 * s3rver 3.7 prunes the folders below a common prefix before it has seen a key in them, so a
 * `/`-delimited listing misses every common prefix that holds only deeper keys (`cam/date/x`
 * listed at the top shows no `cam/`). Delimited listings here fold the full listing instead,
 * as S3 does.
 */
const listAll = FilesystemStore.prototype.listObjects;
FilesystemStore.prototype.listObjects = async function (bucket, o) {
  const delimiter = o.delimiter ?? "";
  if (delimiter === "") return listAll.call(this, bucket, o);
  const prefix = o.prefix ?? "";
  const all = await listAll.call(this, bucket, { ...o, delimiter: "", maxKeys: Infinity });
  const common = new Set<string>();
  const objects: ListResult["objects"] = [];
  for (const object of all.objects) {
    const at = object.key.indexOf(delimiter, prefix.length);
    if (at === -1) objects.push(object);
    else common.add(object.key.slice(0, at + delimiter.length));
  }
  const max = o.maxKeys ?? 1000;
  return {
    objects: objects.slice(0, max),
    commonPrefixes: [...common].sort(),
    isTruncated: objects.length > max,
  };
};

const [portArg, dirArg, bucketsArg, keyFile, certFile] = process.argv.slice(2);
if (!portArg || !dirArg || !bucketsArg) {
  throw new Error("usage: s3rverMain PORT DIR BUCKETS [KEY CERT]");
}
const dir: string = dirArg;
const buckets = bucketsArg.split(",").filter(Boolean);

const app = new S3rver({
  silent: true,
  directory: dir,
  configureBuckets: buckets.map((name) => ({ name })),
  vhostBuckets: false,
});
await app.configureBuckets();
const s3rver = app.callback();

const xmlEscape = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

function sendXml(res: ServerResponse, status: number, body: string): void {
  const xml = `<?xml version="1.0" encoding="UTF-8"?>\n${body}`;
  res.writeHead(status, {
    "content-type": "application/xml",
    "content-length": Buffer.byteLength(xml),
  });
  res.end(xml);
}

function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  sendXml(res, status, `<Error><Code>${code}</Code><Message>${message}</Message></Error>`);
}

const uploadsDir = (bucket: string) => join(dir, bucket, "._S3rver_uploads");

async function bucketExists(bucket: string): Promise<boolean> {
  return (await stat(join(dir, bucket)).catch(() => undefined))?.isDirectory() ?? false;
}

/** GET /bucket?uploads: every upload under `prefix`, oldest key first (no paging needed here). */
async function listMultipartUploads(bucket: string, url: URL, res: ServerResponse) {
  const prefix = url.searchParams.get("prefix") ?? "";
  const ids = await readdir(uploadsDir(bucket)).catch(() => [] as string[]);
  const uploads: Array<{ key: string; id: string; initiated: Date }> = [];
  for (const id of ids) {
    const keyFile = join(uploadsDir(bucket), id, "key");
    const key = await readFile(keyFile, "utf8").catch(() => undefined);
    if (key === undefined || !key.startsWith(prefix)) continue;
    uploads.push({ key, id, initiated: (await stat(keyFile)).mtime });
  }
  uploads.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.id < b.id ? -1 : 1));
  const items = uploads
    .map(
      (u) =>
        `<Upload><Key>${xmlEscape(u.key)}</Key><UploadId>${u.id}</UploadId>` +
        `<Initiated>${u.initiated.toISOString()}</Initiated><StorageClass>STANDARD</StorageClass></Upload>`,
    )
    .join("");
  sendXml(
    res,
    200,
    `<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
      `<Bucket>${xmlEscape(bucket)}</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>` +
      `<Prefix>${xmlEscape(prefix)}</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>` +
      `${items}</ListMultipartUploadsResult>`,
  );
}

/** DELETE /bucket/key?uploadId=ID: drops the upload's parts; 404 NoSuchUpload when unknown. */
async function abortMultipartUpload(bucket: string, key: string, id: string, res: ServerResponse) {
  const folder = join(uploadsDir(bucket), id);
  const storedKey = /^[0-9a-f]+$/.test(id)
    ? await readFile(join(folder, "key"), "utf8").catch(() => undefined)
    : undefined;
  if (storedKey !== key) {
    sendError(res, 404, "NoSuchUpload", "The specified upload does not exist.");
    return;
  }
  await rm(folder, { recursive: true, force: true });
  res.writeHead(204);
  res.end();
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? "/", "http://s3.local");
  const [bucket = "", ...rest] = url.pathname.slice(1).split("/");
  const key = rest.map(decodeURIComponent).join("/");
  const listing = req.method === "GET" && key === "" && url.searchParams.has("uploads");
  const aborting = req.method === "DELETE" && key !== "" && url.searchParams.has("uploadId");
  if (!listing && !aborting) {
    s3rver(req, res);
    return;
  }
  req.resume();
  if (!(await bucketExists(bucket))) {
    sendError(res, 404, "NoSuchBucket", "The specified bucket does not exist");
  } else if (listing) {
    await listMultipartUploads(bucket, url, res);
  } else {
    await abortMultipartUpload(bucket, key, url.searchParams.get("uploadId") ?? "", res);
  }
}

const listener = (req: IncomingMessage, res: ServerResponse) => {
  handle(req, res).catch((err: unknown) => {
    if (!res.headersSent) sendError(res, 500, "InternalError", String(err));
    else res.destroy();
  });
};
const server =
  keyFile && certFile
    ? https.createServer({ key: await readFile(keyFile), cert: await readFile(certFile) }, listener)
    : http.createServer(listener);
server.listen(Number(portArg), "127.0.0.1", () => process.stdout.write("ready\n"));
