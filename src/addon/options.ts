import { isAbsolute, join } from "node:path";

/**
 * The Home Assistant add-on's options (what the user sets in the add-on's Configuration tab,
 * `/data/options.json`) and the Supervisor's MQTT service, turned into the vault's config: a pure
 * function, so every mapping is tested without a Supervisor. The Supervisor has already checked
 * each option against the schema in config.yaml; what is checked here is what that schema cannot
 * say (which keys a destination type needs), each problem named by its option.
 */

/** `/data/options.json`: the keys of `schema` in integrations/homeassistant-addon/.../config.yaml. */
export interface AddonOptions {
  source_path: string;
  source_stable_seconds?: number;
  destination_type: "local" | "sftp" | "s3";
  destination_path: string;
  sftp_host?: string;
  sftp_port?: number;
  sftp_username?: string;
  sftp_password?: string;
  sftp_private_key_file?: string;
  sftp_host_key?: string;
  s3_bucket?: string;
  s3_region?: string;
  s3_endpoint?: string;
  s3_access_key_id?: string;
  s3_secret_access_key?: string;
  s3_force_path_style?: boolean;
  s3_storage_class?: string;
  source_incomplete_after_seconds?: number;
  stale_after_hours?: number;
  telegram_oversize?: "split" | "shrink" | "refuse";
  encryption_recipients: string[];
  telegram_token?: string;
  telegram_allowed_chat_ids: number[];
  schedule: string;
  http_token?: string;
  motioneye_url?: string;
  mqtt_url?: string;
  mqtt_username?: string;
  mqtt_password?: string;
  log_level: string;
}

/** `GET http://supervisor/services/mqtt`'s `data`: the broker the Supervisor hands add-ons. */
export interface MqttService {
  host: string;
  port: number;
  ssl?: boolean;
  username?: string;
  password?: string;
  protocol?: string;
}

export interface AddonPaths {
  /** The add-on's private, persistent folder (`/data`): state, identity, the written config. */
  dataDir: string;
  /** The add-on's config folder (`/config`, the user's `/addon_configs/<slug>`): key files. */
  userDir: string;
}

export interface AddonContext {
  paths: AddonPaths;
  /** Absent when the Supervisor has no MQTT service (and no `mqtt_url` is set). */
  mqtt?: MqttService;
  /** The add-on's full slug (`<repo>_motioneye_vault`), for the device's link to its page. */
  slug?: string;
  /** The token for the HTTP listener when the user set none (kept in /data across restarts). */
  generatedHttpToken: string;
}

/** The port the vault's HTTP listener (/healthz, /hook, /metrics) has inside the add-on. */
export const ADDON_HTTP_PORT = 8099;

export class AddonOptionsError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join("\n"));
    this.name = "AddonOptionsError";
  }
}

const text = (v: unknown): string | undefined =>
  typeof v === "string" && v.trim() !== "" ? v.trim() : undefined;

/** Builds the vault's config (a plain object, written as YAML) or throws naming each problem. */
export function addonConfig(options: AddonOptions, ctx: AddonContext): Record<string, unknown> {
  const problems: string[] = [];
  const need = (key: keyof AddonOptions, why: string): string | undefined => {
    const v = text(options[key]);
    if (v === undefined) problems.push(`${key}: is required ${why}`);
    return v;
  };

  const sourcePath = need("source_path", "(the motionEye media folder, e.g. /share/motioneye)");
  if (sourcePath && !isAbsolute(sourcePath)) {
    problems.push(
      `source_path: must be an absolute path like /share/motioneye, not "${sourcePath}"`,
    );
  }

  const destination = buildDestination(options, ctx.paths, need, problems);
  const mqtt = buildMqtt(options, ctx, problems);
  if (problems.length > 0) throw new AddonOptionsError(problems);

  const homeassistant: Record<string, unknown> = { enabled: true };
  if (text(options.motioneye_url)) homeassistant.motioneyeUrl = text(options.motioneye_url);
  if (ctx.slug) homeassistant.configurationUrl = `homeassistant://hassio/addon/${ctx.slug}/info`;

  const telegramToken = text(options.telegram_token);
  return {
    source: {
      type: "local",
      path: sourcePath,
      ...(options.source_stable_seconds !== undefined
        ? { stableSeconds: options.source_stable_seconds }
        : {}),
      ...(options.source_incomplete_after_seconds !== undefined
        ? { incompleteAfterSeconds: options.source_incomplete_after_seconds }
        : {}),
    },
    destination,
    encryption: {
      identityFile: join(ctx.paths.dataDir, "identity.txt"),
      recipients: options.encryption_recipients ?? [],
    },
    state: { dir: join(ctx.paths.dataDir, "state") },
    mqtt: { ...mqtt, homeassistant },
    schedule: { sync: options.schedule ?? "" },
    // 0.0.0.0: Home Assistant's watchdog and the cameras' web hooks come from other hosts; a
    // token is then required (the vault refuses a non-loopback listener without one).
    http: {
      host: "0.0.0.0",
      port: ADDON_HTTP_PORT,
      token: text(options.http_token) ?? ctx.generatedHttpToken,
    },
    ...(telegramToken
      ? {
          telegram: {
            token: telegramToken,
            allowedChatIds: options.telegram_allowed_chat_ids ?? [],
            ...(options.telegram_oversize ? { oversize: options.telegram_oversize } : {}),
          },
        }
      : {}),
    ...(options.stale_after_hours !== undefined
      ? { alerts: { staleAfterHours: options.stale_after_hours } }
      : {}),
    // The add-on's log tab is read by people: readable lines, without colour codes.
    log: { level: options.log_level ?? "info", format: "pretty" },
  };
}

function buildDestination(
  options: AddonOptions,
  paths: AddonPaths,
  need: (key: keyof AddonOptions, why: string) => string | undefined,
  problems: string[],
): Record<string, unknown> {
  const type = options.destination_type;
  const path = need("destination_path", "(the folder or key prefix the vault writes to)");
  switch (type) {
    case "local":
      if (path && !isAbsolute(path)) {
        problems.push(`destination_path: must be an absolute path for a local destination`);
      }
      return { type, path };
    case "sftp": {
      const why = "when destination_type is sftp";
      const keyFile = text(options.sftp_private_key_file);
      const password = text(options.sftp_password);
      if (!keyFile && !password) {
        problems.push(`sftp_private_key_file: or sftp_password is required ${why}`);
      }
      return {
        type,
        host: need("sftp_host", why),
        port: options.sftp_port ?? 22,
        username: need("sftp_username", why),
        path,
        // Key files live in the add-on's config folder, where the user can put them.
        ...(keyFile
          ? { privateKeyFile: isAbsolute(keyFile) ? keyFile : join(paths.userDir, keyFile) }
          : {}),
        ...(password ? { password } : {}),
        ...(text(options.sftp_host_key) ? { hostKey: text(options.sftp_host_key) } : {}),
      };
    }
    case "s3": {
      const why = "when destination_type is s3";
      const keyId = text(options.s3_access_key_id);
      const secret = text(options.s3_secret_access_key);
      if (Boolean(keyId) !== Boolean(secret)) {
        problems.push(
          `${keyId ? "s3_secret_access_key" : "s3_access_key_id"}: is required with ${keyId ? "s3_access_key_id" : "s3_secret_access_key"}`,
        );
      }
      return {
        type,
        bucket: need("s3_bucket", why),
        path,
        ...(text(options.s3_region) ? { region: text(options.s3_region) } : {}),
        ...(text(options.s3_endpoint) ? { endpoint: text(options.s3_endpoint) } : {}),
        ...(keyId ? { accessKeyId: keyId } : {}),
        ...(secret ? { secretAccessKey: secret } : {}),
        ...(options.s3_force_path_style !== undefined
          ? { forcePathStyle: options.s3_force_path_style }
          : {}),
        ...(text(options.s3_storage_class) ? { storageClass: text(options.s3_storage_class) } : {}),
      };
    }
    default:
      problems.push(`destination_type: must be local, sftp or s3, not "${String(type)}"`);
      return {};
  }
}

/** The broker: the user's own (`mqtt_url`), else the one the Supervisor hands out, else none. */
function buildMqtt(
  options: AddonOptions,
  ctx: AddonContext,
  problems: string[],
): Record<string, unknown> {
  // Never the embedded broker inside the add-on: Home Assistant's broker is the meeting point.
  const base = { embeddedBroker: { enabled: false } };
  const url = text(options.mqtt_url);
  if (url) {
    if (!/^(mqtts?|wss?|tcp|ssl):\/\/.+/.test(url)) {
      problems.push(`mqtt_url: must be a URL like mqtt://host:1883, not "${url}"`);
    }
    return {
      ...base,
      url,
      ...(text(options.mqtt_username) ? { username: text(options.mqtt_username) } : {}),
      ...(text(options.mqtt_password) ? { password: text(options.mqtt_password) } : {}),
    };
  }
  const service = ctx.mqtt;
  if (!service) return base;
  const host = service.host.includes(":") ? `[${service.host}]` : service.host;
  return {
    ...base,
    url: `${service.ssl ? "mqtts" : "mqtt"}://${host}:${service.port}`,
    ...(service.username ? { username: service.username } : {}),
    ...(service.password ? { password: service.password } : {}),
  };
}
