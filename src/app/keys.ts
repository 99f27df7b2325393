import type { Config } from "../config/load.js";
import { type AgeIdentity, loadIdentity, writeNewIdentity } from "../crypto/age/age.js";
import type { VaultKeys } from "../crypto/ageVault.js";
import { type FernetKey, loadFernetKeyFile } from "../crypto/fernet/fernet.js";
import type { Manifest } from "../manifest/manifest.js";
import { warnIfReadableByOthers } from "../util/keyFiles.js";
import type { Logger } from "../util/log.js";

export interface Keys extends VaultKeys {
  /** The age identity; made on first use when the vault holds no age clip yet. */
  identity(): Promise<AgeIdentity>;
}

/** The vault's keys from the config's `encryption` section, each read once, on first use. */
export function vaultKeys(
  encryption: Config["encryption"],
  manifest: Manifest,
  logger: Logger,
): Keys {
  const identityFile = encryption.identityFile ?? "identity.txt";
  let identity: Promise<AgeIdentity> | undefined;
  let fernet: Promise<FernetKey> | undefined;
  if (encryption.fernetKeyFile) {
    warnIfReadableByOthers(encryption.fernetKeyFile, "the legacy Fernet key", logger);
  }
  const getIdentity = () => {
    identity ??= ensureIdentity(identityFile, manifest, logger);
    return identity;
  };
  return {
    identityFile,
    identity: getIdentity,
    recipients: async () => [(await getIdentity()).recipient, ...encryption.recipients],
    identities: async () => [(await getIdentity()).secret],
    fernetKey() {
      if (!fernet) {
        const path = encryption.fernetKeyFile;
        fernet = path
          ? loadFernetKeyFile(path)
          : Promise.reject(
              new Error(
                "it is a legacy Fernet backup: set encryption.fernetKeyFile to the original tool's filekey.key",
              ),
            );
        fernet.catch(() => {}); // reported to each caller
      }
      return fernet;
    },
  };
}

async function ensureIdentity(
  path: string,
  manifest: Manifest,
  logger: Logger,
): Promise<AgeIdentity> {
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
