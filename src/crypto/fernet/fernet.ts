/** Fernet (legacy backups of the original Python tool): keys, whole tokens, streams. */
export {
  FERNET_MAX_CLOCK_SKEW_SECONDS,
  FernetError,
  type FernetErrorReason,
  FernetKey,
  loadFernetKeyFile,
  parseFernetKey,
} from "./key.js";
export { decryptFernetStream } from "./stream.js";
export {
  type FernetTimeOptions,
  fernetDecrypt,
  fernetEncrypt,
  looksLikeFernet,
} from "./token.js";
