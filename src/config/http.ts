import { BlockList, isIP } from "node:net";
import { z } from "zod";

/**
 * The `http:` section: serve's listener for motionEye's web hook, /healthz and /metrics.
 * Anyone who can reach it can ask for runs and read metrics, so a token is required as soon as
 * it listens beyond this machine.
 */

export const DEFAULT_HTTP_PORT = 8099;

export const httpSchema = z
  .object({
    host: z.string().min(1).default("127.0.0.1"),
    /** 0 disables the listener. */
    port: z.number().int().min(0).max(65535).default(DEFAULT_HTTP_PORT),
    token: z.string().min(1).optional(),
  })
  .superRefine((h, ctx) => {
    if (h.port !== 0 && !h.token && !isLoopbackHost(h.host)) {
      ctx.addIssue({
        code: "custom",
        path: ["token"],
        message: `is required when http.host (${h.host}) is not a loopback address: set http.token or http.tokenFile, or keep host 127.0.0.1`,
      });
    }
    if (h.token !== undefined && /[\s%&#+]/.test(h.token)) {
      // The token travels in motionEye's web hook URL, where motion and the URL parser would
      // mangle these characters.
      ctx.addIssue({
        code: "custom",
        path: ["token"],
        message:
          "must not contain spaces or any of % & # + (it goes into a URL); make one with `openssl rand -hex 24`",
      });
    }
  });

export type HttpConfig = z.infer<typeof httpSchema>;

/** Loopback addresses: 127.0.0.0/8 and ::1 (BlockList also matches ::ffff:127.x and long forms). */
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");

/** True for names and addresses that only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, "$1");
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  const family = isIP(h);
  return family !== 0 && LOOPBACK.check(h, family === 4 ? "ipv4" : "ipv6");
}
