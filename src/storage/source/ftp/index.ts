import { readFileSync } from "node:fs";
import { z } from "zod";
import { defineBackend, required } from "../../registry.js";
import type { Source } from "../../types.js";

/** A camera's media root over FTP/FTPS: motionEyeOS serves it as `/sdcard` to `admin`. */
export const ftpSource = defineBackend({
  type: "ftp",
  schema: z.object({
    host: z.string({ error: required("the camera's address") }).min(1),
    port: z.number().int().min(1).max(65535).default(21),
    user: z.string().default("anonymous"),
    password: z.string().default(""),
    /** Explicit FTPS (AUTH TLS). */
    secure: z.boolean().default(false),
    /** FTPS: a CA (or the camera's own self-signed certificate, PEM) to trust for it. */
    caFile: z.string().min(1).optional(),
    /** The motionEye media root as the FTP server shows it (motionEyeOS: /sdcard). */
    path: z.string().min(1).default("/"),
    /** FTP sessions to the camera (a Pi camera is happiest with 1-2). */
    maxConnections: z.number().int().min(1).max(8).default(2),
    timeoutSeconds: z.number().positive().default(30),
  }),
  secrets: ["password"],
  paths: ["caFile"],
  async create(o, ctx): Promise<Source> {
    const { createFtpSource } = await import("./ftpSource.js");
    return createFtpSource({
      host: o.host,
      port: o.port,
      user: o.user,
      password: o.password,
      secure: o.secure,
      secureOptions: o.caFile ? { ca: readFileSync(o.caFile) } : undefined,
      root: o.path,
      timeoutMs: o.timeoutSeconds * 1000,
      maxConnections: o.maxConnections,
      logger: ctx.logger,
    });
  },
});
