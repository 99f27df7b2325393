import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config/load.js";
import type { Logger } from "../util/log.js";
import { createLocalStore } from "./local.js";
import { createFtpStore } from "./source/ftp.js";
import type { Store } from "./types.js";
import { createSftpStore } from "./vault/sftp/sftp.js";

/** The camera's media root. */
export function createSource(config: Config, logger: Logger): Store {
  const s = config.source;
  if (s.type === "local") return createLocalStore(s.path);
  return createFtpStore({
    host: s.host ?? "",
    port: s.port,
    user: s.user,
    password: s.password,
    secure: s.secure,
    secureOptions: s.caFile ? { ca: readFileSync(s.caFile) } : undefined,
    root: s.path,
    timeoutMs: s.timeoutSeconds * 1000,
    maxConnections: s.maxConnections,
    logger: logger.child({ store: "source" }),
  });
}

/** The vault. */
export function createDestination(config: Config, logger: Logger): Store {
  const d = config.destination;
  if (d.type === "local") return createLocalStore(d.path);
  return createSftpStore({
    host: d.host ?? "",
    port: d.port,
    username: d.username ?? "",
    privateKey: d.privateKeyFile ? readFileSync(d.privateKeyFile) : undefined,
    passphrase: d.passphrase,
    password: d.password,
    hostKey: d.hostKey,
    knownHostsFile: join(config.state.dir, "known_hosts"),
    root: d.path,
    timeoutMs: d.timeoutSeconds * 1000,
    logger: logger.child({ store: "destination" }),
  });
}
