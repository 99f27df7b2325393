import { readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { warnIfReadableByOthers } from "../../../util/keyFiles.js";
import { defineBackend, required } from "../../registry.js";
import type { VaultStore } from "../../types.js";
import { normalizeFingerprint } from "./hostKeys.js";

const fingerprint = z
  .string()
  .regex(
    /^SHA256:[A-Za-z0-9+/]{43}=?$/,
    "must be a SHA256 fingerprint as `ssh-keygen -lf` prints it",
  );

/** A vault on an SSH server (an EC2 instance, a NAS, a friend's Pi), over SFTP. */
export const sftpVault = defineBackend({
  type: "sftp",
  schema: z.object({
    host: z.string({ error: required("the SSH server's address") }).min(1),
    port: z.number().int().min(1).max(65535).default(22),
    username: z.string({ error: required("the SSH user") }).min(1),
    privateKeyFile: z.string().min(1).optional(),
    passphrase: z.string().optional(),
    password: z.string().optional(),
    /** Pinned host key; without it the first key seen is trusted and recorded. */
    hostKey: fingerprint.optional(),
    path: z.string().min(1).default("./data/vault"),
    /** Connect timeout; also how long a silent server is tolerated. */
    timeoutSeconds: z.number().positive().default(30),
    /** ssh2 (JavaScript, the default) or openssh: the system's `ssh`, far less CPU per MB. */
    transport: z.enum(["ssh2", "openssh"]).default("ssh2"),
  }),
  secrets: ["password", "passphrase"],
  paths: ["privateKeyFile"],
  check(o, ctx) {
    if (o.transport === "openssh") {
      // Nothing secret may reach ssh's command line or a file of ours: key files only.
      for (const key of ["password", "passphrase"] as const) {
        if (o[key] !== undefined)
          ctx.addIssue({
            code: "custom",
            path: [key],
            message:
              "transport openssh logs in with a privateKeyFile without passphrase only; use transport: ssh2 for a password or an encrypted key",
          });
      }
    }
    if (!o.privateKeyFile && o.password === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["privateKeyFile"],
        message: "privateKeyFile or password is required when type is sftp",
      });
    }
  },
  async create(o, ctx): Promise<VaultStore> {
    if (o.privateKeyFile)
      warnIfReadableByOthers(o.privateKeyFile, "the SSH private key", ctx.logger);
    if (o.transport === "openssh") {
      const { createOpensshVault } = await import("./openssh/opensshVault.js");
      const { checkKeyFileForOpenssh } = await import("./openssh/keyFile.js");
      const pinned = o.hostKey ? normalizeFingerprint(o.hostKey) : undefined;
      return createOpensshVault({
        host: o.host,
        port: o.port,
        username: o.username,
        privateKeyFile: checkKeyFileForOpenssh(o.privateKeyFile ?? "", ctx.configPath),
        pinned,
        knownHostsFile: join(ctx.stateDir, "known_hosts"),
        opensshKnownHostsFile: join(ctx.stateDir, "known_hosts.openssh"),
        root: o.path,
        timeoutMs: o.timeoutSeconds * 1000,
        logger: ctx.logger,
      });
    }
    const { createSftpVault } = await import("./sftpVault.js");
    return createSftpVault({
      host: o.host,
      port: o.port,
      username: o.username,
      privateKey: o.privateKeyFile ? readFileSync(o.privateKeyFile) : undefined,
      passphrase: o.passphrase,
      password: o.password,
      hostKey: o.hostKey,
      knownHostsFile: join(ctx.stateDir, "known_hosts"),
      root: o.path,
      timeoutMs: o.timeoutSeconds * 1000,
      logger: ctx.logger,
    });
  },
});
