/**
 * A real S3-protocol server on loopback for tests: s3rver (npm) in its own process, over a
 * temporary folder, on a free port (see s3rverMain.ts for the two multipart calls added to it),
 * optionally over TLS with a throwaway CA. Cross-checks go through Python's boto3 (Debian
 * python3-boto3), so a test is not our S3 client agreeing with itself.
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./ports.js";
import { removeOnExit, restartableServer, runCommand, spawnServer } from "./processes.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "../..");
const TSX = path.join(REPO, "node_modules/tsx/dist/loader.mjs");

/** s3rver's built-in account: the only credentials it accepts. */
export const S3RVER_KEY = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };

export interface S3Server {
  host: "127.0.0.1";
  port: number;
  /** `http://127.0.0.1:PORT` (https with `tls`). */
  endpoint: string;
  /** A bucket that exists. */
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** The CA that signed the server's certificate (with `tls`). */
  caFile?: string;
  /** Where s3rver keeps the buckets. */
  dir: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
  output(): string;
}

async function makeCertificates(dir: string): Promise<{ ca: string; key: string; cert: string }> {
  const f = (n: string) => path.join(dir, n);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await runCommand("openssl", [
    "req",
    "-x509",
    ...ec,
    "-keyout",
    f("ca.key"),
    "-out",
    f("ca.pem"),
    "-days",
    "2",
    "-subj",
    "/CN=motioneye-vault test CA",
  ]);
  await runCommand("openssl", [
    "req",
    ...ec,
    "-keyout",
    f("server.key"),
    "-out",
    f("server.csr"),
    "-subj",
    "/CN=127.0.0.1",
  ]);
  await writeFile(f("san.ext"), "subjectAltName=IP:127.0.0.1\n");
  await runCommand("openssl", [
    "x509",
    "-req",
    "-in",
    f("server.csr"),
    "-CA",
    f("ca.pem"),
    "-CAkey",
    f("ca.key"),
    "-CAcreateserial",
    "-out",
    f("server.pem"),
    "-days",
    "2",
    "-extfile",
    f("san.ext"),
  ]);
  return { ca: f("ca.pem"), key: f("server.key"), cert: f("server.pem") };
}

/** Starts s3rver on a free port with `bucket` created; `tls` serves https with a test CA. */
export async function startS3Server(
  opts: { bucket?: string; tls?: boolean } = {},
): Promise<S3Server> {
  const base = await mkdtemp(path.join(os.tmpdir(), "mev-s3-"));
  const forget = removeOnExit(base);
  const dir = path.join(base, "data");
  const bucket = opts.bucket ?? "vault";
  const port = await freePort();
  const certs = opts.tls ? await makeCertificates(base) : undefined;
  const args = [String(port), dir, bucket, ...(certs ? [certs.key, certs.cert] : [])];
  const server = restartableServer(
    () =>
      spawnServer(process.execPath, ["--import", TSX, path.join(HERE, "s3rverMain.ts"), ...args], {
        name: "s3rver",
      }),
    port,
  );
  await server.start();
  return {
    host: "127.0.0.1",
    port,
    endpoint: `${certs ? "https" : "http"}://127.0.0.1:${port}`,
    bucket,
    ...S3RVER_KEY,
    caFile: certs?.ca,
    dir,
    stop: () => server.stop(),
    start: () => server.start(),
    output: () => server.output(),
    async close() {
      await server.stop();
      await rm(base, { recursive: true, force: true });
      forget();
    },
  };
}

/** The config's `destination` section for a harness S3 server. */
export function s3Destination(s3: S3Server, over: Record<string, unknown> = {}) {
  return {
    type: "s3",
    endpoint: s3.endpoint,
    region: "us-east-1",
    bucket: s3.bucket,
    path: "motioneye",
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
    forcePathStyle: true,
    ...(s3.caFile ? { caFile: s3.caFile } : {}),
    ...over,
  };
}

/** A python3 with boto3: Debian's (python3-boto3) first, else the one on PATH. */
export const BOTO3_PYTHON: string | undefined = ["/usr/bin/python3", "python3"].find(
  (py) => spawnSync(py, ["-c", "import boto3"], { encoding: "utf8" }).status === 0,
);

const BOTO3_TOOL = `
import json, sys, boto3
from botocore.config import Config
endpoint, bucket, verb = sys.argv[1], sys.argv[2], sys.argv[3]
args = sys.argv[4:]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
    aws_access_key_id="S3RVER", aws_secret_access_key="S3RVER",
    config=Config(s3={"addressing_style": "path"}))
if verb == "list":
    out, token = [], None
    while True:
        kw = {"Bucket": bucket, "Prefix": args[0]}
        if token: kw["ContinuationToken"] = token
        page = s3.list_objects_v2(**kw)
        for o in page.get("Contents", []):
            out.append({"key": o["Key"], "size": o["Size"], "etag": o["ETag"],
                        "lastModified": o["LastModified"].isoformat()})
        token = page.get("NextContinuationToken")
        if not token: break
    print(json.dumps(out))
elif verb == "get":
    s3.download_file(bucket, args[0], args[1])
    print("{}")
elif verb == "put":
    s3.upload_file(args[1], bucket, args[0])
    print("{}")
elif verb == "put-many":
    import os, time
    start = time.monotonic()
    for path in args[1:]:
        s3.upload_file(path, bucket, args[0] + os.path.basename(path))
    print(json.dumps({"seconds": time.monotonic() - start}))
elif verb == "uploads":
    page = s3.list_multipart_uploads(Bucket=bucket, Prefix=args[0])
    print(json.dumps([{"key": u["Key"], "uploadId": u["UploadId"]} for u in page.get("Uploads", [])]))
elif verb == "start-upload":
    r = s3.create_multipart_upload(Bucket=bucket, Key=args[0])
    s3.upload_part(Bucket=bucket, Key=args[0], UploadId=r["UploadId"], PartNumber=1, Body=b"x" * 1024)
    print(json.dumps({"uploadId": r["UploadId"]}))
`;

export interface Boto3Object {
  key: string;
  size: number;
  etag: string;
  lastModified: string;
}

/** Runs one boto3 call against the server; resolves with its JSON output. */
export async function boto3<T>(s3: S3Server, verb: string, ...args: string[]): Promise<T> {
  if (!BOTO3_PYTHON) throw new Error("boto3 is missing: apt-get install python3-boto3");
  const r = await runCommand(
    BOTO3_PYTHON,
    ["-c", BOTO3_TOOL, s3.endpoint, s3.bucket, verb, ...args],
    {
      timeoutMs: 120_000,
      // New boto3 sends CRC32 trailers in aws-chunked bodies by default; s3rver would store the
      // chunk framing as data. Old (Debian's) boto3 ignores this.
      env: { ...process.env, AWS_REQUEST_CHECKSUM_CALCULATION: "when_required" },
    },
  );
  return JSON.parse(r.stdout) as T;
}
