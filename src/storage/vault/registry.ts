import { Registry } from "../registry.js";
import type { VaultStore } from "../types.js";
import { localVault } from "./local.js";
import { s3Vault } from "./s3/index.js";
import { sftpVault } from "./sftp/index.js";

/** Every kind of vault; the config's `destination.type` is one of these. */
export const vaultBackends = new Registry<VaultStore>([
  sftpVault, //
  localVault,
  s3Vault,
]);
