import { errorMessage } from "../../../util/log.js";
import { PermanentError } from "../../../util/retry.js";

/** The IAM action behind each request the vault makes (README: the minimal IAM policy). */
export type S3Action =
  | "s3:ListBucket"
  | "s3:GetObject"
  | "s3:PutObject"
  | "s3:DeleteObject"
  | "s3:AbortMultipartUpload"
  | "s3:ListBucketMultipartUploads";

export interface FailureContext {
  /** The store's description (bucket, prefix, endpoint), first on every message. */
  description: string;
  bucket: string;
  region: string;
  /** For messages: the configured endpoint, or "AWS". */
  endpoint: string;
}

interface SdkError {
  name?: string;
  Code?: string;
  code?: string;
  message?: string;
  Region?: string;
  ServerTime?: string;
  RequestTime?: string;
  $metadata?: { httpStatusCode?: number };
  $response?: { headers?: Record<string, string | undefined> };
}

const NETWORK = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "TimeoutError",
]);

const TLS = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_GET_ISSUER_CERT",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/**
 * One line a user can act on, for what S3 (or the way to it) answered: which setting to fix,
 * and the right value when the server says it (the bucket's region). Problems no retry can fix
 * (credentials, bucket, permissions, region, clock, TLS trust) are PermanentErrors, so a run
 * stops at the first instead of failing every clip the same way. A missing object has code
 * ENOENT, as for the other stores.
 */
export function s3Failure(
  ctx: FailureContext,
  op: string,
  key: string,
  action: S3Action,
  err: unknown,
): Error {
  const e = (err ?? {}) as SdkError;
  const code = e.name && e.name !== "Error" ? e.name : (e.Code ?? e.code ?? "");
  const status = e.$metadata?.httpStatusCode;
  const permanent = (why: string) => new PermanentError(`${ctx.description}: ${op} ${key}: ${why}`);
  const plain = (why: string) => new Error(`${ctx.description}: ${op} ${key} failed: ${why}`);
  const netCode = e.code && (NETWORK.has(e.code) || TLS.has(e.code)) ? e.code : code;

  // A bare 404 (no S3 error code) to a listing is not S3: S3 says NoSuchBucket. (HEAD answers
  // carry no error document, so a missing object's HEAD is a bare 404 too.)
  const listing = action === "s3:ListBucket" || action === "s3:ListBucketMultipartUploads";
  if (code === "NotFound" && listing) return notS3(ctx, op, key, status);
  switch (code) {
    case "NoSuchKey":
    case "NoSuchUpload":
    case "NotFound": {
      const missing = plain("no such object");
      (missing as NodeJS.ErrnoException).code = "ENOENT";
      return missing;
    }
    case "InvalidAccessKeyId":
      return permanent(
        "the server does not know this access key (InvalidAccessKeyId): check destination.accessKeyId",
      );
    case "SignatureDoesNotMatch":
      return permanent(
        "the secret key does not match the access key (SignatureDoesNotMatch): check destination.secretAccessKey",
      );
    case "InvalidToken":
    case "ExpiredToken":
    case "TokenRefreshRequired":
      return permanent(`the session token was refused (${code}): get new credentials`);
    case "CredentialsProviderError":
      return permanent(
        "no S3 credentials: set destination.accessKeyId and secretAccessKey, or give the AWS default chain some (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, ~/.aws/credentials, an instance role)",
      );
    case "NoSuchBucket":
      return permanent(
        `bucket "${ctx.bucket}" does not exist at ${ctx.endpoint} (NoSuchBucket): create it or fix destination.bucket`,
      );
    case "AccessDenied":
    case "AllAccessDisabled":
      return permanent(
        `no permission for ${action} on bucket "${ctx.bucket}" (${code}${serverSays(e)}): allow it in the key's policy (README, "S3": the minimal IAM policy)`,
      );
    case "RequestTimeTooSkewed":
      return permanent(
        `this machine's clock is ${skew(e)}off from the server's (RequestTimeTooSkewed): set the time right (NTP)`,
      );
    case "InvalidStorageClass":
      return permanent(
        "the server does not offer destination.storageClass (InvalidStorageClass): pick one it has, or unset it",
      );
  }
  if (isRegionError(code, status)) {
    const right = e.$response?.headers?.["x-amz-bucket-region"] ?? e.Region;
    return permanent(
      right
        ? `bucket "${ctx.bucket}" is in region ${right}, not ${ctx.region} (${code || status}): set destination.region: ${right}`
        : `bucket "${ctx.bucket}" is not in region ${ctx.region} (${code || status}): set destination.region to the bucket's region`,
    );
  }
  if (TLS.has(netCode)) {
    return permanent(
      `the TLS certificate of ${ctx.endpoint} is not trusted (${netCode}): give the CA that signed it as destination.caFile`,
    );
  }
  if (netCode === "ECONNRESET" || netCode === "EPIPE" || netCode === "TimeoutError") {
    return plain(`the connection to ${ctx.endpoint} broke or went silent (${netCode})`);
  }
  if (NETWORK.has(netCode)) {
    return plain(
      `cannot reach ${ctx.endpoint} (${netCode}): check destination.endpoint and that the server is up`,
    );
  }
  if (status !== undefined && (code === "" || /^(Unknown|UnknownError|\d+)$/.test(code))) {
    return notS3(ctx, op, key, status);
  }
  return plain(code ? `${code}: ${errorMessage(err)}` : errorMessage(err));
}

/** An HTTP answer that is not an S3 error document: not an S3 server, or the wrong path. */
function notS3(ctx: FailureContext, op: string, key: string, status: number | undefined): Error {
  return new Error(
    `${ctx.description}: ${op} ${key} failed: ${ctx.endpoint} did not answer as an S3 server (HTTP ${status}): check destination.endpoint`,
  );
}

function isRegionError(code: string, status: number | undefined): boolean {
  return (
    code === "PermanentRedirect" ||
    code === "AuthorizationHeaderMalformed" ||
    code === "IllegalLocationConstraintException" ||
    code === "IncorrectEndpoint" ||
    status === 301
  );
}

/** The server's own words, when they say more than "Access Denied" (AWS names the policy). */
function serverSays(e: SdkError): string {
  const m = e.message?.trim();
  return m && !/^access denied\.?$/i.test(m) ? `: ${m}` : "";
}

/** S3's times: ISO 8601, or its basic form in RequestTime (`20240501T120000Z`). */
function parseTime(t: string | undefined): number {
  const basic = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(t ?? "");
  return Date.parse(
    basic ? `${basic.slice(1, 4).join("-")}T${basic.slice(4).join(":")}Z` : (t ?? ""),
  );
}

function skew(e: SdkError): string {
  const server = parseTime(e.ServerTime);
  const request = parseTime(e.RequestTime);
  if (Number.isNaN(server) || Number.isNaN(request)) return "";
  return `${Math.round(Math.abs(server - request) / 60_000)} min `;
}
