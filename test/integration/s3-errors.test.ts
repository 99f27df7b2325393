import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createS3Vault } from "../../src/storage/vault/s3/s3Vault.js";

/**
 * What the user reads for the S3 errors a loopback test server cannot produce (s3rver checks no
 * region, permission or clock): an HTTP server that answers every request with one error as AWS
 * documents it (status, headers, XML error document), read through the real SDK. And an HTTP
 * server that is not S3 at all: an endpoint pointing at some web page.
 */

interface Answer {
  status: number;
  headers?: Record<string, string>;
  body: string;
}

const xmlError = (code: string, message: string, extra = "") =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message>${extra}<RequestId>4442587FB7D0A2F9</RequestId></Error>`;

describe("S3 errors a user can act on", () => {
  let server: http.Server;
  let answer: Answer;
  let endpoint: string;
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      req.resume();
      res.writeHead(answer.status, { "content-type": "application/xml", ...answer.headers });
      res.end(answer.body);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  const failureOf = async (a: Answer) => {
    answer = a;
    const store = createS3Vault({
      endpoint,
      region: "us-east-1",
      bucket: "my-cameras",
      prefix: "motioneye",
      accessKeyId: "AKIAEXAMPLE",
      secretAccessKey: "never-shown-secret",
      forcePathStyle: true,
      timeoutMs: 5_000,
    });
    try {
      return (await store.list("").catch((e: unknown) => e)) as Error;
    } finally {
      await store.close();
    }
  };

  it("a bucket in another region: names the region S3 gave", async () => {
    const redirect = await failureOf({
      status: 301,
      headers: { "x-amz-bucket-region": "eu-central-1" },
      body: xmlError(
        "PermanentRedirect",
        "The bucket you are attempting to access must be addressed using the specified endpoint.",
        "<Bucket>my-cameras</Bucket><Endpoint>my-cameras.s3.eu-central-1.amazonaws.com</Endpoint>",
      ),
    });
    expect(redirect.name).toBe("PermanentError");
    expect(redirect.message).toMatch(
      /: list motioneye\/: bucket "my-cameras" is in region eu-central-1, not us-east-1 \(PermanentRedirect\): set destination\.region: eu-central-1$/,
    );
    const malformed = await failureOf({
      status: 400,
      body: xmlError(
        "AuthorizationHeaderMalformed",
        "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'ap-southeast-2'",
        "<Region>ap-southeast-2</Region>",
      ),
    });
    expect(malformed.message).toMatch(/set destination\.region: ap-southeast-2$/);
  });

  it("no permission: names the IAM action and keeps S3's own words", async () => {
    const denied = await failureOf({
      status: 403,
      body: xmlError(
        "AccessDenied",
        "User: arn:aws:iam::123456789012:user/vault is not authorized to perform: s3:ListBucket on resource: arn:aws:s3:::my-cameras",
      ),
    });
    expect(denied.name).toBe("PermanentError");
    expect(denied.message).toContain('no permission for s3:ListBucket on bucket "my-cameras"');
    expect(denied.message).toContain("is not authorized to perform: s3:ListBucket");
    expect(denied.message).not.toContain("never-shown-secret");
  });

  it("a clock S3 will not accept: says by how much, and to fix the time", async () => {
    const skewed = await failureOf({
      status: 403,
      body: xmlError(
        "RequestTimeTooSkewed",
        "The difference between the request time and the current time is too large.",
        "<RequestTime>20240501T120000Z</RequestTime><ServerTime>2024-05-01T12:47:00Z</ServerTime><MaxAllowedSkewMilliseconds>900000</MaxAllowedSkewMilliseconds>",
      ),
    });
    expect(skewed.message).toMatch(
      /this machine's clock is 47 min off from the server's \(RequestTimeTooSkewed\): set the time right \(NTP\)$/,
    );
  });

  it("an endpoint that is a web server, not S3", async () => {
    const notS3 = await failureOf({
      status: 404,
      headers: { "content-type": "text/html" },
      body: "<html><body><h1>motionEye</h1></body></html>",
    });
    expect(notS3.message).toMatch(
      /http:\/\/127\.0\.0\.1:\d+ did not answer as an S3 server \(HTTP 404\): check destination\.endpoint$/,
    );
  });
});
