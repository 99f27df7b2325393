import { z } from "zod";
import { defineBackend, required } from "../../registry.js";
import type { VaultStore } from "../../types.js";

/** Bucket names: 3-63 characters (AWS's rules; old buckets and B2's may also hold A-Z and _). */
const BUCKET = /^[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]$/;

/** destination.path as a key prefix: no leading or trailing `/`, no empty, `.` or `..` parts. */
const keyPrefix = z
  .string()
  .transform((p) => p.replace(/^\/+|\/+$/g, ""))
  .refine((p) => p === "" || p.split("/").every((s) => s !== "" && s !== "." && s !== ".."), {
    message: 'must be a key prefix like "motioneye" or "cameras/home" (no //, . or .. parts)',
  });

/**
 * A vault in an S3 bucket: AWS S3 or an S3-compatible service (Backblaze B2, Cloudflare R2,
 * MinIO, Wasabi). Objects at `<path>/<clip id>.age`. The AWS SDK is loaded only when used.
 */
export const s3Vault = defineBackend({
  type: "s3",
  schema: z.object({
    /** Unset: AWS. B2, R2, MinIO...: their S3 endpoint URL. */
    endpoint: z
      .string()
      .regex(/^https?:\/\/[^\s/]+\/?$/, "must be an http:// or https:// URL without a path")
      .optional(),
    /** Unset: $AWS_REGION, else us-east-1. R2 takes "auto". */
    region: z
      .string()
      .regex(/^[a-z0-9-]+$/, "must be a region name like eu-central-1")
      .optional(),
    bucket: z
      .string({ error: required("the bucket's name") })
      .regex(BUCKET, "must be a bucket name: 3-63 letters, digits, ., - and _"),
    path: keyPrefix.default(""),
    /** Both unset: the AWS default chain (environment, ~/.aws, instance role). */
    accessKeyId: z.string().min(1).optional(),
    secretAccessKey: z.string().min(1).optional(),
    /** Temporary (STS) credentials come with a session token. */
    sessionToken: z.string().min(1).optional(),
    /** Bucket in the path (`host/bucket/key`), not the host name: MinIO and most self-hosted. */
    forcePathStyle: z.boolean().default(false),
    /** E.g. STANDARD_IA, GLACIER_IR; a cold class (GLACIER, DEEP_ARCHIVE) cannot be restored at once. */
    storageClass: z
      .string()
      .regex(/^[A-Z][A-Z_]*$/, "must be a storage class like STANDARD or STANDARD_IA")
      .optional(),
    serverSideEncryption: z.enum(["AES256", "aws:kms", "aws:kms:dsse"]).optional(),
    kmsKeyId: z.string().min(1).optional(),
    /** A CA certificate (PEM) to trust for a self-hosted server's TLS. */
    caFile: z.string().min(1).optional(),
    /** Connect timeout; also how long a silent connection is tolerated. */
    timeoutSeconds: z.number().positive().default(30),
  }),
  secrets: ["accessKeyId", "secretAccessKey", "sessionToken"],
  paths: ["caFile"],
  check(o, ctx) {
    if ((o.accessKeyId === undefined) !== (o.secretAccessKey === undefined)) {
      ctx.addIssue({
        code: "custom",
        path: [o.accessKeyId === undefined ? "accessKeyId" : "secretAccessKey"],
        message:
          "accessKeyId and secretAccessKey go together (leave both out for the AWS default chain)",
      });
    }
    if (o.kmsKeyId !== undefined && !o.serverSideEncryption?.startsWith("aws:kms")) {
      ctx.addIssue({
        code: "custom",
        path: ["kmsKeyId"],
        message: "needs serverSideEncryption: aws:kms (or aws:kms:dsse)",
      });
    }
  },
  async create(o, ctx): Promise<VaultStore> {
    const { createS3Vault } = await import("./s3Vault.js");
    return createS3Vault({
      endpoint: o.endpoint?.replace(/\/$/, ""),
      region: o.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? "us-east-1",
      bucket: o.bucket,
      prefix: o.path,
      accessKeyId: o.accessKeyId,
      secretAccessKey: o.secretAccessKey,
      sessionToken: o.sessionToken,
      forcePathStyle: o.forcePathStyle,
      storageClass: o.storageClass,
      serverSideEncryption: o.serverSideEncryption,
      kmsKeyId: o.kmsKeyId,
      caFile: o.caFile,
      timeoutMs: o.timeoutSeconds * 1000,
      logger: ctx.logger,
    });
  },
});
