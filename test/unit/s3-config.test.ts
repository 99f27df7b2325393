import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config/load.js";

/** `destination.type: s3` comes from the vault registry: its keys, secrets and checks. */

function load(yaml: string) {
  const dir = mkdtempSync(join(tmpdir(), "mev-s3-config-"));
  writeFileSync(join(dir, "secret"), "from-a-file\n");
  writeFileSync(join(dir, "ca.pem"), "-----BEGIN CERTIFICATE-----\n");
  writeFileSync(join(dir, "config.yml"), yaml);
  return { dir, load: () => loadConfig({ file: join(dir, "config.yml"), env: {} }) };
}

function problems(yaml: string): string[] {
  try {
    load(yaml).load();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("destination.type: s3", () => {
  it("takes its keys, a secret from a file, a key prefix and a CA file", () => {
    const { dir, load: read } = load(`destination:
  type: s3
  endpoint: https://s3.eu-central-003.backblazeb2.com
  region: eu-central-003
  bucket: my-cameras
  path: /motioneye/
  accessKeyId: K003abc
  secretAccessKeyFile: secret
  forcePathStyle: true
  storageClass: STANDARD_IA
  serverSideEncryption: aws:kms
  kmsKeyId: alias/cameras
  caFile: ca.pem
`);
    expect(read().config.destination).toEqual({
      type: "s3",
      endpoint: "https://s3.eu-central-003.backblazeb2.com",
      region: "eu-central-003",
      bucket: "my-cameras",
      path: "motioneye",
      accessKeyId: "K003abc",
      secretAccessKey: "from-a-file",
      forcePathStyle: true,
      storageClass: "STANDARD_IA",
      serverSideEncryption: "aws:kms",
      kmsKeyId: "alias/cameras",
      caFile: join(dir, "ca.pem"),
      timeoutSeconds: 30,
    });
  });

  it("needs only a bucket (credentials from the AWS default chain)", () => {
    expect(load("destination:\n  type: s3\n  bucket: clips\n").load().config.destination).toEqual({
      type: "s3",
      bucket: "clips",
      path: "",
      forcePathStyle: false,
      timeoutSeconds: 30,
    });
  });

  it("names a misspelt key, a missing bucket, half a key pair and bad values", () => {
    expect(problems("destination:\n  type: s3\n  bucket: clips\n  bukcet: x\n")).toEqual([
      "destination.bukcet: unknown key (did you mean bucket?)",
    ]);
    expect(problems("destination:\n  type: s3\n  region: us-east-1\n")).toEqual([
      "destination.bucket: is required (the bucket's name)",
    ]);
    expect(problems("destination:\n  type: s3\n  bucket: clips\n  accessKeyId: AKIA\n")).toEqual([
      "destination.secretAccessKey: accessKeyId and secretAccessKey go together (leave both out for the AWS default chain)",
    ]);
    expect(
      problems(`destination:
  type: s3
  bucket: a/b
  endpoint: s3.example.com
  path: a/../b
  storageClass: cold
  kmsKeyId: k
`).sort(),
    ).toEqual([
      "destination.bucket: must be a bucket name: 3-63 letters, digits, ., - and _",
      "destination.endpoint: must be an http:// or https:// URL without a path",
      "destination.kmsKeyId: needs serverSideEncryption: aws:kms (or aws:kms:dsse)",
      'destination.path: must be a key prefix like "motioneye" or "cameras/home" (no //, . or .. parts)',
      "destination.storageClass: must be a storage class like STANDARD or STANDARD_IA",
    ]);
  });
});
