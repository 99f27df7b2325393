import { mkdir } from "node:fs/promises";
import { SyncEngine } from "../backup/engine.js";
import type { LoadedConfig } from "../config/load.js";
import { type AgeIdentity, loadIdentity, writeNewIdentity } from "../crypto/age/age.js";
import { Manifest } from "../manifest/manifest.js";
import { createDestination, createSource } from "../storage/index.js";
import type { Store } from "../storage/types.js";
import { EventBus } from "../util/events.js";
import type { Logger } from "../util/log.js";
import { warnIfReadableByOthers } from "./keyFiles.js";

/**
 * The composition root: every part of the vault, built from the config in one place.
 * Commands and `serve` take what they need from here; nothing else constructs stores or engines.
 */
export interface Vault {
  loaded: LoadedConfig;
  logger: Logger;
  events: EventBus;
  manifest: Manifest;
  source: Store;
  destination: Store;
  sync: SyncEngine;
  /** The age identity; made on first use when the vault is still empty. */
  identity(): Promise<AgeIdentity>;
  close(): Promise<void>;
}

export async function openVault(loaded: LoadedConfig, logger: Logger): Promise<Vault> {
  const { config } = loaded;
  await mkdir(config.state.dir, { recursive: true, mode: 0o700 });
  if (config.destination.type === "sftp" && config.destination.privateKeyFile) {
    warnIfReadableByOthers(config.destination.privateKeyFile, "the SSH private key", logger);
  }
  if (config.encryption.fernetKeyFile) {
    warnIfReadableByOthers(config.encryption.fernetKeyFile, "the legacy Fernet key", logger);
  }
  const events = new EventBus();
  const manifest = await Manifest.open(config.state.dir);
  const source = createSource(config, logger);
  const destination = createDestination(config, logger);

  let identity: Promise<AgeIdentity> | undefined;
  const getIdentity = () => {
    identity ??= ensureIdentity(loaded, manifest, logger);
    return identity;
  };

  const sync = new SyncEngine({
    source,
    destination,
    manifest,
    events,
    logger,
    stateDir: config.state.dir,
    recipients: async () => [(await getIdentity()).recipient, ...config.encryption.recipients],
    extensions: config.source.extensions,
    stableSeconds: config.source.stableSeconds,
    concurrency: config.sync.concurrency,
    retries: config.sync.retries,
    idleTimeoutMs: config.sync.idleTimeoutSeconds * 1000,
    clipTimeoutMs: config.sync.clipTimeoutSeconds * 1000,
  });

  return {
    loaded,
    logger,
    events,
    manifest,
    source,
    destination,
    sync,
    identity: getIdentity,
    async close() {
      await Promise.allSettled([source.close(), destination.close()]);
    },
  };
}

async function ensureIdentity(
  loaded: LoadedConfig,
  manifest: Manifest,
  logger: Logger,
): Promise<AgeIdentity> {
  const path = loaded.config.encryption.identityFile ?? "";
  try {
    const id = await loadIdentity(path);
    if (id.looseMode) {
      logger.warn({ path }, "the age identity file is readable by other users: chmod 600 it");
    }
    return id;
  } catch (err) {
    if ((err as NodeJS.ErrnoException & { message: string }).message.includes("ENOENT") === false) {
      throw err;
    }
    // Legacy Fernet clips don't need the age identity; age clips do, so never silently replace it.
    const ageClips =
      manifest.status.totals.clips > 0
        ? (await manifest.all()).filter((c) => c.format === "age").length
        : 0;
    if (ageClips > 0) {
      throw new Error(
        `the age identity ${path} is missing but the vault already holds ${ageClips} clips encrypted to it; restore the identity file from your backup`,
      );
    }
    const made = await writeNewIdentity(path);
    process.stderr.write(
      [
        "",
        "************************************************************************",
        `  NEW ENCRYPTION KEY: ${path}`,
        `  public key: ${made.recipient}`,
        "  Every backup is encrypted to this key. Without it NOTHING can be",
        "  restored. Copy this file somewhere safe, away from this machine, NOW.",
        "************************************************************************",
        "",
      ].join("\n"),
    );
    logger.warn({ path, recipient: made.recipient }, "created a new age identity");
    return made;
  }
}
