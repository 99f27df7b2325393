import type { z } from "zod";
import type { Logger } from "../util/log.js";

/**
 * A storage backend registers itself once, as rclone's `fs.RegInfo`: its `type` (the config's
 * `type:` value), the schema of its own config keys, and how to make it. The config schema is
 * built from the registries (`source/registry.ts`, `vault/registry.ts`), so adding a backend is
 * one file plus one registry line.
 */

export interface BackendContext {
  /** state.dir: for files a backend keeps (e.g. SFTP's trusted host keys). */
  stateDir: string;
  logger: Logger;
  /** Where this backend sits in the config (`destination`, `sources[1]`), for messages. */
  configPath: string;
}

export interface Backend<T> {
  readonly type: string;
  /** The backend's own keys (besides `type`); unknown keys are config errors. */
  readonly schema: z.ZodObject;
  /** Keys holding secrets: each may be given as `<key>File` instead (Docker secrets). */
  readonly secrets?: readonly string[];
  /** Keys holding local paths, resolved against the config file's folder. */
  readonly paths?: readonly string[];
  /** Rules across keys (e.g. "privateKeyFile or password"); add issues to `ctx`. */
  readonly check?: (options: Record<string, unknown>, ctx: z.RefinementCtx) => void;
  /** Makes it from its parsed options. Connections open lazily, on first use. */
  create(options: Record<string, unknown>, ctx: BackendContext): Promise<T>;
}

/** Typed definition of a backend: `create` and `check` see the parsed options of its schema. */
export function defineBackend<S extends z.ZodObject, T>(def: {
  type: string;
  schema: S;
  secrets?: readonly string[];
  paths?: readonly string[];
  check?: (options: z.output<S>, ctx: z.RefinementCtx) => void;
  create(options: z.output<S>, ctx: BackendContext): Promise<T>;
}): Backend<T> {
  return def as unknown as Backend<T>;
}

/** The backends of one side, by type. */
export class Registry<T> {
  private readonly byType = new Map<string, Backend<T>>();

  constructor(backends: ReadonlyArray<Backend<T>>) {
    for (const b of backends) {
      if (this.byType.has(b.type)) throw new Error(`backend type "${b.type}" registered twice`);
      this.byType.set(b.type, b);
    }
  }

  get(type: string): Backend<T> | undefined {
    return this.byType.get(type);
  }

  get types(): string[] {
    return [...this.byType.keys()];
  }

  get all(): Array<Backend<T>> {
    return [...this.byType.values()];
  }
}

/** zod's message for a missing key: says what belongs there. */
export function required(what: string) {
  return (issue: { input: unknown }) =>
    issue.input === undefined ? `is required (${what})` : undefined;
}
