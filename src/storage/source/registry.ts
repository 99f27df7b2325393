import { Registry } from "../registry.js";
import type { Source } from "../types.js";
import { ftpSource } from "./ftp/index.js";
import { localSource } from "./local.js";

/** Every kind of camera source; the config's `source.type` / `sources[].type` is one of these. */
export const sourceBackends = new Registry<Source>([
  ftpSource, //
  localSource,
]);
