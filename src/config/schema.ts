import { z } from "zod";
import type { Registry } from "../storage/registry.js";
import { sourceBackends } from "../storage/source/registry.js";
import type { Source, VaultStore } from "../storage/types.js";
import { vaultBackends } from "../storage/vault/registry.js";
import { BandwidthLimitError, parseBandwidthLimit } from "../util/bandwidth.js";
import { isValidCron } from "../util/cron.js";
import { httpSchema } from "./http.js";

/**
 * The config's schema. The sections that pick a storage backend (`source`, `sources[]`,
 * `destination`) are built from the backend registries: one option per registered `type`.
 */

const DEFAULT_EXTENSIONS = [".mp4", ".avi", ".mkv", ".mov"];

/** A source's name: its clips' id prefix, a topic level and a label, so kept plain. */
export const SOURCE_NAME = /^[a-z0-9][a-z0-9_-]*$/;

/** Opt-in alarms; fractions of an hour are allowed (tests use a few seconds). */
const alertsSchema = z.object({
  /** Alarm when no new clip was backed up from a source for this long. */
  staleAfterHours: z.number().positive().optional(),
});

/** Keys every source has, whatever its type. */
const sourceKeys = {
  /** Overrides the top-level `alerts` for this source. */
  alerts: alertsSchema.optional(),
  /**
   * Clips that cannot be checked (AVI, Matroska) are backed up once two listings this far
   * apart saw them unchanged. motion writes movies in 256 KiB bursts: at 2 fps it leaves one
   * untouched for 6.5 to 11 s between bursts in our measurements (test/fixtures/motion), longer
   * for a quieter, smaller-bitrate scene; 60 s outlasts such a gap several times over.
   */
  stableSeconds: z.number().min(0).default(60),
  /**
   * A movie never closed (its recording was cut off: the camera lost power, motion was
   * killed) never proves itself complete; once two listings this far apart saw it unchanged it
   * is backed up as it is, marked incomplete. Far longer than motion's pauses between bursts.
   */
  incompleteAfterSeconds: z.number().min(0).default(300),
  extensions: z
    .array(z.string().regex(/^\.[A-Za-z0-9]+$/, "like .mp4"))
    .default(DEFAULT_EXTENSIONS),
};

/** Keys of an entry of `sources:`, besides those of a source. */
const sourceEntryKeys = {
  name: z
    .string({ error: (i) => (i.input === undefined ? "is required" : undefined) })
    .regex(SOURCE_NAME, "must be lowercase letters, digits, - and _ (like garage or cam-2)"),
  /** Prefix of its clip ids; "" keeps unprefixed ids (a vault made with a single `source:`). */
  prefix: z
    .string()
    .refine((p) => p === "" || SOURCE_NAME.test(p), {
      message: 'must be "" or like a source name (lowercase letters, digits, - and _)',
    })
    .optional(),
};

/**
 * One option per registered backend, told apart by `type` (a missing `type` is filled in as
 * `local` before parsing); an unknown type is an error naming the known ones.
 */
function backendSection<T>(
  registry: Registry<T>,
  common: z.ZodRawShape,
  section: string,
): z.ZodType<{ type: string } & Record<string, unknown>> {
  const options = registry.all.map((b) => {
    const object = z.object({ type: z.literal(b.type), ...common, ...b.schema.shape });
    return b.check ? object.superRefine((o, ctx) => b.check?.(o, ctx)) : object;
  });
  const known = registry.types.join(", ");
  return z.discriminatedUnion("type", options as unknown as [z.ZodObject, ...z.ZodObject[]], {
    error: (issue) => {
      if (issue.code !== "invalid_union") return undefined;
      const type = (issue.input as { type?: unknown } | undefined)?.type;
      return `unknown ${section} type ${JSON.stringify(type)} (known: ${known})`;
    },
  }) as unknown as z.ZodType<{ type: string } & Record<string, unknown>>;
}

const encryptionSchema = z.object({
  identityFile: z.string().min(1).optional(),
  recipients: z
    .array(z.string().regex(/^age1[0-9a-z]+$/, "must be an age recipient (age1...)"))
    .default([]),
  fernetKeyFile: z.string().min(1).optional(),
});

const stateSchema = z.object({ dir: z.string().min(1).default("./data") });

const mqttSchema = z.object({
  url: z
    .string()
    .regex(/^(mqtts?|wss?|tcp|ssl):\/\/.+/, "must be a URL like mqtt://host:1883")
    .optional(),
  username: z.string().optional(),
  password: z.string().optional(),
  caFile: z.string().optional(),
  triggerTopic: z.string().min(1).default("motioneye/+/event"),
  baseTopic: z.string().min(1).default("motioneye-vault"),
  embeddedBroker: z
    .object({
      enabled: z.boolean().default(true),
      host: z.string().default("127.0.0.1"),
      port: z.number().int().min(1).max(65535).default(1883),
    })
    .default({ enabled: true, host: "127.0.0.1", port: 1883 }),
  homeassistant: z
    .object({
      enabled: z.boolean().default(true),
      discoveryPrefix: z.string().min(1).default("homeassistant"),
      /** Where Home Assistant announces itself (`online`); discovery is sent again then. */
      statusTopic: z.string().min(1).default("homeassistant/status"),
      /** Discovery is re-sent after a random delay of up to this many seconds (spreads load). */
      rediscoverDelaySeconds: z.number().min(0).max(10).default(5),
      /** motionEye's web UI (http:// or https://), linked from the devices in Home Assistant. */
      motioneyeUrl: z
        .string()
        .regex(/^https?:\/\/\S+$/, "must be an http:// or https:// URL")
        .optional(),
      /**
       * Where the vault itself is managed, linked from its device instead of motionEye's UI: the
       * add-on sets its own page (homeassistant://hassio/addon/<slug>/info).
       */
      configurationUrl: z
        .string()
        .regex(
          /^(https?|homeassistant):\/\/\S+$/,
          "must be an http://, https:// or homeassistant:// URL",
        )
        .optional(),
    })
    .default({
      enabled: true,
      discoveryPrefix: "homeassistant",
      statusTopic: "homeassistant/status",
      rediscoverDelaySeconds: 5,
    }),
});

const cron = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .refine((s) => s.trim() === "" || isValidCron(s), {
      message: 'is not a valid cron expression (like "*/15 * * * *")',
    });

const scheduleSchema = z.object({
  /** Empty disables the catch-up runs. */
  sync: cron("*/15 * * * *"),
});

const retentionSchema = z.object({
  remoteDays: z.number().int().positive().optional(),
  schedule: cron("30 3 * * *"),
  dryRun: z.boolean().default(false),
});

const syncSchema = z.object({
  concurrency: z.number().int().min(1).max(16).default(2),
  retries: z.number().int().min(0).max(10).default(3),
  /** A clip whose transfer moves no byte for this long fails its attempt (a stalled server). */
  idleTimeoutSeconds: z.number().positive().default(120),
  /** A clip that takes longer than this in all fails its attempt (a server that trickles). */
  clipTimeoutSeconds: z
    .number()
    .positive()
    .default(4 * 3600),
  /** Upload cap: `2M`, `512k`, `off`, or a timetable `"08:00,512k 23:00,off"` (util/bandwidth.ts). */
  bandwidthLimit: z
    .union([z.string(), z.number()])
    .optional()
    .superRefine((v, ctx) => {
      if (v === undefined) return;
      try {
        parseBandwidthLimit(v);
      } catch (err) {
        if (!(err instanceof BandwidthLimitError)) throw err;
        ctx.addIssue({ code: "custom", message: err.message });
      }
    }),
});

const telegramSchema = z.object({
  token: z.string().min(1).optional(),
  allowedChatIds: z.array(z.number().int()).default([]),
  apiRoot: z.string().url("must be a URL").default("https://api.telegram.org"),
  maxUploadMB: z.number().positive().default(50),
  /** A clip over maxUploadMB: cut into parts (ffmpeg, no re-encoding), re-encoded smaller, or not sent. */
  oversize: z.enum(["split", "shrink", "refuse"]).default("split"),
  notify: z
    .object({
      failures: z.boolean().default(false),
      clips: z.boolean().default(false),
    })
    .default({ failures: false, clips: false }),
});

/** The storage backends a config can name. */
export interface Registries {
  sources: Registry<Source>;
  vaults: Registry<VaultStore>;
}

export const defaultRegistries: Registries = { sources: sourceBackends, vaults: vaultBackends };

/** The sections of the config that pick a backend, built from the registries. */
export function backendSchemas(registries: Registries) {
  const destination = backendSection(registries.vaults, {}, "destination");
  return {
    source: backendSection(registries.sources, sourceKeys, "source"),
    sourceEntry: backendSection(
      registries.sources,
      { ...sourceEntryKeys, ...sourceKeys },
      "source",
    ),
    destination,
  };
}

/** The file as written: `source:` or `sources:` (load.ts turns both into one list). */
export function buildConfigSchema(registries: Registries = defaultRegistries) {
  const backends = backendSchemas(registries);
  return z.object({
    source: backends.source.optional(),
    sources: z.array(backends.sourceEntry).min(1, "must list at least one source").optional(),
    destination: backends.destination.default(() => backends.destination.parse({ type: "local" })),
    encryption: encryptionSchema.default(() => encryptionSchema.parse({})),
    state: stateSchema.default(() => stateSchema.parse({})),
    mqtt: mqttSchema.default(() => mqttSchema.parse({})),
    schedule: scheduleSchema.default(() => scheduleSchema.parse({})),
    retention: retentionSchema.default(() => retentionSchema.parse({})),
    sync: syncSchema.default(() => syncSchema.parse({})),
    http: httpSchema.default(() => httpSchema.parse({})),
    telegram: telegramSchema.default(() => telegramSchema.parse({})),
    alerts: alertsSchema.default(() => alertsSchema.parse({})),
    /** Unset: `serve` logs at info, one-shot commands at warn (their output says what happened). */
    log: z
      .object({
        level: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).optional(),
        /** Unset: `pretty` when stderr is a terminal, `json` otherwise. */
        format: z.enum(["pretty", "json"]).optional(),
      })
      .default({}),
  });
}

export const configSchema = buildConfigSchema();

/** Keys that may hold secrets outside the backend sections (those name theirs in the registry). */
export const SECRET_KEYS: ReadonlyArray<readonly [string, string]> = [
  ["mqtt", "password"],
  ["http", "token"],
  ["telegram", "token"],
];

/** Relative paths in these keys are resolved against the config file's folder. */
export const PATH_KEYS: ReadonlyArray<readonly [string, string]> = [
  ["encryption", "identityFile"],
  ["encryption", "fernetKeyFile"],
  ["state", "dir"],
  ["mqtt", "caFile"],
];
