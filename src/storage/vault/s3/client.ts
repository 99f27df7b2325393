import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { rootCertificates } from "node:tls";
import type { S3Client } from "@aws-sdk/client-s3";
import type { Logger } from "../../../util/log.js";

/** The AWS SDK's S3 module: heavy (~100 ms, ~30 MB), so loaded only when an s3 vault is used. */
export type S3Sdk = typeof import("@aws-sdk/client-s3");

export interface S3ClientOptions {
  /** Unset: AWS itself (the SDK picks the endpoint from the region). */
  endpoint?: string;
  region: string;
  /** Both unset: the AWS default chain (environment, ~/.aws, an instance or task role). */
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  forcePathStyle: boolean;
  /** PEM of a CA to trust besides the system's (a self-hosted server's own CA). */
  caFile?: string;
  /** Connect timeout, and how long a connection may sit silent. */
  timeoutMs: number;
  logger: Logger;
}

export interface S3Connection {
  sdk: S3Sdk;
  client: S3Client;
}

/** Makes the SDK client: loads the SDK on first use, builds the agent with the custom CA. */
export async function createS3Client(o: S3ClientOptions): Promise<S3Connection> {
  // The SDK warns on stderr about its own future Node versions; not something a user can act on.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  const sdk: S3Sdk = await import("@aws-sdk/client-s3");
  const agentOptions = { keepAlive: true, maxSockets: 32 };
  const ca = o.caFile ? [...rootCertificates, readFileSync(o.caFile, "utf8")] : undefined;
  const log = o.logger;
  const client = new sdk.S3Client({
    endpoint: o.endpoint,
    region: o.region,
    forcePathStyle: o.forcePathStyle,
    credentials:
      o.accessKeyId !== undefined && o.secretAccessKey !== undefined
        ? {
            accessKeyId: o.accessKeyId,
            secretAccessKey: o.secretAccessKey,
            sessionToken: o.sessionToken,
          }
        : undefined,
    // Integrity is the signed SHA-256 of each request's body (upload.ts); the SDK's default
    // CRC32 trailers (aws-chunked bodies) are refused or mis-stored by many compatible servers.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    requestHandler: {
      connectionTimeout: o.timeoutMs,
      socketTimeout: o.timeoutMs,
      httpAgent: new http.Agent(agentOptions),
      httpsAgent: new https.Agent({ ...agentOptions, ...(ca ? { ca } : {}) }),
      // The SDK's socket warnings would otherwise go to the console (stdout).
      logger: {
        debug: (m: unknown) => log.debug({ sdk: String(m) }, "s3 client"),
        info: (m: unknown) => log.debug({ sdk: String(m) }, "s3 client"),
        warn: (m: unknown) => log.warn({ sdk: String(m) }, "s3 client"),
        error: (m: unknown) => log.warn({ sdk: String(m) }, "s3 client"),
      },
    },
  });
  return { sdk, client };
}
