import { createHash } from "node:crypto";
import { appendFileSync, chmodSync, mkdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";

/**
 * SSH host keys: a pinned `SHA256:` fingerprint (destination.hostKey), or trust on first use
 * with a known hosts file of `[host]:port SHA256:...` lines in state.dir.
 */

/** The server presented a host key other than the pinned or previously recorded one. */
export class HostKeyMismatchError extends Error {
  override readonly name = "HostKeyMismatchError";

  constructor(
    /** `host:port` */
    readonly server: string,
    readonly expected: string,
    readonly presented: string,
    /** Where `expected` came from: destination.hostKey, or the known hosts file. */
    readonly source: "pinned" | "known-hosts",
    readonly knownHostsFile?: string,
  ) {
    const from =
      source === "pinned"
        ? "pinned in destination.hostKey"
        : `recorded on first use in ${knownHostsFile}`;
    const fix =
      source === "pinned"
        ? `If the server's key really changed (e.g. the instance was rebuilt), set destination.hostKey to ${presented}`
        : `If the server's key really changed (e.g. the instance was rebuilt), remove the line for ${knownHostLabel(server)} from ${knownHostsFile}, or pin the new key with destination.hostKey: ${presented}`;
    super(
      `host key mismatch for ${server}: expected ${expected} (${from}) but the server presented ${presented}. ` +
        `This may be a man-in-the-middle attack; nothing was sent. ${fix} (check it first, e.g. with ssh-keyscan | ssh-keygen -lf -).`,
    );
  }
}

/** `SHA256:` + unpadded base64 of sha256(raw public key blob): what `ssh-keygen -lf` prints. */
export function hostKeyFingerprint(key: Buffer): string {
  return `SHA256:${createHash("sha256").update(key).digest("base64").replace(/=+$/, "")}`;
}

/** Accepts "SHA256:abc", "SHA256:abc=" or a whole `ssh-keygen -lf` line; returns "SHA256:abc". */
export function normalizeFingerprint(text: string): string | undefined {
  const m = /SHA256:([A-Za-z0-9+/]+)=*/.exec(text);
  return m ? `SHA256:${m[1]}` : undefined;
}

export function knownHostLabel(server: string): string {
  const i = server.lastIndexOf(":");
  return `[${server.slice(0, i)}]:${server.slice(i + 1)}`;
}

/** Fingerprints recorded for `[host]:port` in an OpenSSH-like file of `[host]:port SHA256:...` lines. */
export function readKnownHosts(file: string, label: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const found: string[] = [];
  for (const line of text.split("\n")) {
    const [name, fp] = line.trim().split(/\s+/);
    if (!name || name.startsWith("#") || name !== label || !fp) continue;
    const normalized = normalizeFingerprint(fp);
    if (normalized) found.push(normalized);
  }
  return found;
}

export function recordKnownHost(file: string, label: string, fingerprint: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  appendFileSync(file, `${label} ${fingerprint}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
}
