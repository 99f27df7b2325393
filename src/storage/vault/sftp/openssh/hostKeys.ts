/**
 * Host key trust for the openssh transport, with the same rules and the same record as ssh2's
 * (../hostKeys.ts): a pinned `SHA256:` fingerprint, or trust on first use recorded as a
 * fingerprint in `state.dir/known_hosts`, so switching transports keeps what was trusted.
 *
 * OpenSSH checks keys, not fingerprints: the trusted key itself goes into an OpenSSH known hosts
 * file of ours (`state.dir/known_hosts.openssh`, under a HostKeyAlias), and `ssh` runs with
 * StrictHostKeyChecking=yes against it alone, so ssh itself refuses any other key on the real
 * connection. The key is learned once with `ssh-keyscan` and kept only if its fingerprint is
 * trusted; a scan answered by an impostor can therefore never make its key trusted.
 */
import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import {
  HostKeyMismatchError,
  hostKeyFingerprint,
  knownHostLabel,
  readKnownHosts,
  recordKnownHost,
} from "../hostKeys.js";

export interface HostKeyParams {
  host: string;
  port: number;
  /** Normalized pinned fingerprint (destination.hostKey), if any. */
  pinned: string | undefined;
  /** The fingerprint record shared with ssh2 (`[host]:port SHA256:...` lines). */
  knownHostsFile: string;
  /** OpenSSH-format file of trusted keys, written here. */
  opensshKnownHostsFile: string;
  timeoutMs: number;
  /** Warns about a key trusted on first use. */
  warn(fields: Record<string, unknown>, message: string): void;
}

/** What `ssh` needs to check the server's key against the trusted one(s). */
export interface TrustedKeys {
  /** The name the keys are filed under (`-o HostKeyAlias=`). */
  alias: string;
  /** `-o HostKeyAlgorithms=`: only the trusted keys' algorithms. */
  algorithms: string;
}

interface KeyLine {
  type: string;
  blob: string;
  fingerprint: string;
}

/** Preferred first, as OpenSSH and ssh2 prefer them. */
const KEY_TYPES = [
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "ssh-rsa",
];

/** The signature algorithms of a key type (RSA keys sign with SHA-2; SHA-1 stays off). */
function algorithmsOf(type: string): string[] {
  return type === "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256"] : [type];
}

function keyLine(type: string, blob: string): KeyLine | undefined {
  if (!KEY_TYPES.includes(type) || !/^[A-Za-z0-9+/]+=*$/.test(blob)) return undefined;
  return { type, blob, fingerprint: hostKeyFingerprint(Buffer.from(blob, "base64")) };
}

/** `host_port`: a plain token, one per destination, so one file serves several. */
export function hostKeyAlias(host: string, port: number): string {
  return `motioneye-vault_${host.replace(/[^A-Za-z0-9.:-]/g, "_")}_${port}`;
}

function readOpensshFile(file: string): string[] {
  try {
    return readFileSync(file, "utf8").split("\n").filter(Boolean);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}

/** The keys filed under `alias` in our OpenSSH file. */
function keysFiled(file: string, alias: string): KeyLine[] {
  const keys: KeyLine[] = [];
  for (const line of readOpensshFile(file)) {
    const [name, type, blob] = line.trim().split(/\s+/);
    if (name !== alias || !type || !blob) continue;
    const key = keyLine(type, blob);
    if (key) keys.push(key);
  }
  return keys;
}

function fileKey(file: string, alias: string, key: KeyLine): void {
  const others = readOpensshFile(file).filter((l) => l.split(/\s+/)[0] !== alias);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, [...others, `${alias} ${key.type} ${key.blob}`, ""].join("\n"), {
    mode: 0o600,
  });
}

/** The server's host keys as `ssh-keyscan` reads them (no login is attempted). */
export function scanHostKeys(host: string, port: number, timeoutMs: number): Promise<KeyLine[]> {
  const seconds = Math.max(1, Math.ceil(timeoutMs / 1000));
  return new Promise((resolve, reject) => {
    execFile(
      "ssh-keyscan",
      ["-T", String(seconds), "-p", String(port), host],
      { timeout: timeoutMs + 5000, encoding: "utf8" },
      (err, stdout, stderr) => {
        const keys: KeyLine[] = [];
        for (const line of stdout.split("\n")) {
          const [, type, blob] = line.trim().split(/\s+/);
          const key = type && blob ? keyLine(type, blob) : undefined;
          if (key) keys.push(key);
        }
        keys.sort((a, b) => KEY_TYPES.indexOf(a.type) - KEY_TYPES.indexOf(b.type));
        if (keys.length > 0) return resolve(keys);
        if (err && (err as NodeJS.ErrnoException).code === "ENOENT") {
          return reject(new Error("ssh-keyscan is not installed (it comes with OpenSSH's client)"));
        }
        const why = stderr
          .split("\n")
          .filter((l) => l.trim() !== "" && !l.startsWith("#"))
          .join("; ");
        reject(
          new Error(
            `no host key from ${host}:${port}: ${why || `ssh-keyscan got no answer (timed out after ${seconds} s)`}`,
          ),
        );
      },
    );
  });
}

/**
 * Makes sure our OpenSSH file holds a trusted key for the server, scanning for it when it does
 * not: throws HostKeyMismatchError when the server's keys are not the trusted ones.
 */
export async function prepareHostKey(p: HostKeyParams): Promise<TrustedKeys> {
  const server = `${p.host}:${p.port}`;
  const label = knownHostLabel(server);
  const alias = hostKeyAlias(p.host, p.port);
  const trusted = p.pinned ? [p.pinned] : readKnownHosts(p.knownHostsFile, label);
  const ready = (keys: KeyLine[]): TrustedKeys => ({
    alias,
    algorithms: [...new Set(keys.flatMap((k) => algorithmsOf(k.type)))].join(","),
  });

  const filed = keysFiled(p.opensshKnownHostsFile, alias).filter((k) =>
    trusted.includes(k.fingerprint),
  );
  if (filed.length > 0) return ready(filed);

  const scanned = await scanHostKeys(p.host, p.port, p.timeoutMs);
  const match = scanned.find((k) => trusted.includes(k.fingerprint));
  if (match) {
    fileKey(p.opensshKnownHostsFile, alias, match);
    return ready([match]);
  }
  const presented = (scanned[0] as KeyLine).fingerprint;
  if (p.pinned) throw new HostKeyMismatchError(server, p.pinned, presented, "pinned");
  if (trusted.length > 0) {
    throw new HostKeyMismatchError(
      server,
      trusted.join(" or "),
      presented,
      "known-hosts",
      p.knownHostsFile,
    );
  }
  const first = scanned[0] as KeyLine;
  recordKnownHost(p.knownHostsFile, label, first.fingerprint);
  fileKey(p.opensshKnownHostsFile, alias, first);
  p.warn(
    { server, fingerprint: first.fingerprint, knownHostsFile: p.knownHostsFile },
    `trusting new host key ${first.fingerprint} for ${server} (first use); pin it with destination.hostKey`,
  );
  return ready([first]);
}
