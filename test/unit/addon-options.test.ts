import { describe, expect, it } from "vitest";
import {
  type AddonContext,
  type AddonOptions,
  AddonOptionsError,
  addonConfig,
} from "../../src/addon/options.js";
import { configSchema } from "../../src/config/schema.js";

/** The add-on's options as the Supervisor hands them over, turned into the vault's config. */

const base: AddonOptions = {
  source_path: "/share/motioneye",
  destination_type: "local",
  destination_path: "/share/motioneye-vault",
  encryption_recipients: [],
  telegram_allowed_chat_ids: [],
  schedule: "*/15 * * * *",
  log_level: "info",
};
const ctx: AddonContext = {
  paths: { dataDir: "/data", userDir: "/config" },
  mqtt: { host: "core-mosquitto", port: 1883, ssl: false, username: "addons", password: "pw" },
  slug: "a0d7b954_motioneye_vault",
  generatedHttpToken: "generated-token",
};

const problemsOf = (options: AddonOptions, c: AddonContext = ctx): string[] => {
  try {
    addonConfig(options, c);
    return [];
  } catch (err) {
    if (err instanceof AddonOptionsError) return err.problems;
    throw err;
  }
};

describe("the add-on's options", () => {
  it("by default: the motionEye add-on's media folder to a share, Home Assistant's broker", () => {
    const config = addonConfig(base, ctx);
    expect(config).toEqual({
      source: { type: "local", path: "/share/motioneye" },
      destination: { type: "local", path: "/share/motioneye-vault" },
      encryption: { identityFile: "/data/identity.txt", recipients: [] },
      state: { dir: "/data/state" },
      mqtt: {
        url: "mqtt://core-mosquitto:1883",
        username: "addons",
        password: "pw",
        embeddedBroker: { enabled: false },
        homeassistant: {
          enabled: true,
          configurationUrl: "homeassistant://hassio/addon/a0d7b954_motioneye_vault/info",
        },
      },
      schedule: { sync: "*/15 * * * *" },
      http: { host: "0.0.0.0", port: 8099, token: "generated-token" },
      log: { level: "info", format: "pretty" },
    });
    // and the vault's own schema accepts it
    expect(configSchema.safeParse(config).success).toBe(true);
  });

  it("the tuning options: an unclosed movie's wait, the staleness alarm, Telegram's oversize", () => {
    const config = addonConfig(
      {
        ...base,
        source_incomplete_after_seconds: 600,
        stale_after_hours: 12,
        telegram_token: "123:abc",
        telegram_allowed_chat_ids: [42],
        telegram_oversize: "shrink",
      },
      ctx,
    );
    expect(config.source).toEqual({
      type: "local",
      path: "/share/motioneye",
      incompleteAfterSeconds: 600,
    });
    expect(config.alerts).toEqual({ staleAfterHours: 12 });
    expect(config.telegram).toEqual({ token: "123:abc", allowedChatIds: [42], oversize: "shrink" });
    const parsed = configSchema.safeParse(config);
    expect(parsed.error).toBeUndefined();
    expect(parsed.data?.source?.incompleteAfterSeconds).toBe(600);
    expect(parsed.data?.telegram?.oversize).toBe("shrink");
    expect(parsed.data?.alerts.staleAfterHours).toBe(12);
  });

  it("sftp: key file from the add-on's folder, pinned host key", () => {
    const config = addonConfig(
      {
        ...base,
        destination_type: "sftp",
        destination_path: "/home/ubuntu/motioneye",
        sftp_host: "ec2.example.org",
        sftp_username: "ubuntu",
        sftp_private_key_file: "id_ed25519",
        sftp_host_key: "SHA256:9bB1xJ8e0Yw0hK3e6cN8c7W1h2Yy9X2m2Q9y0U3m5aA",
      },
      ctx,
    );
    expect(config.destination).toEqual({
      type: "sftp",
      host: "ec2.example.org",
      port: 22,
      username: "ubuntu",
      path: "/home/ubuntu/motioneye",
      privateKeyFile: "/config/id_ed25519",
      hostKey: "SHA256:9bB1xJ8e0Yw0hK3e6cN8c7W1h2Yy9X2m2Q9y0U3m5aA",
    });
    expect(configSchema.safeParse(config).success).toBe(true);
  });

  it("s3: the contract's keys", () => {
    const config = addonConfig(
      {
        ...base,
        destination_type: "s3",
        destination_path: "motioneye",
        s3_bucket: "my-cameras",
        s3_region: "eu-central-003",
        s3_endpoint: "https://s3.eu-central-003.backblazeb2.com",
        s3_access_key_id: "key",
        s3_secret_access_key: "secret",
        s3_force_path_style: false,
        s3_storage_class: "STANDARD_IA",
      },
      ctx,
    );
    expect(config.destination).toEqual({
      type: "s3",
      bucket: "my-cameras",
      path: "motioneye",
      region: "eu-central-003",
      endpoint: "https://s3.eu-central-003.backblazeb2.com",
      accessKeyId: "key",
      secretAccessKey: "secret",
      forcePathStyle: false,
      storageClass: "STANDARD_IA",
    });
  });

  it("names every option a destination type is missing, at once", () => {
    expect(problemsOf({ ...base, destination_type: "sftp" })).toEqual([
      "sftp_private_key_file: or sftp_password is required when destination_type is sftp",
      "sftp_host: is required when destination_type is sftp",
      "sftp_username: is required when destination_type is sftp",
    ]);
    expect(problemsOf({ ...base, destination_type: "s3", s3_access_key_id: "k" })).toEqual([
      "s3_secret_access_key: is required with s3_access_key_id",
      "s3_bucket: is required when destination_type is s3",
    ]);
    expect(problemsOf({ ...base, source_path: "motioneye" })).toEqual([
      'source_path: must be an absolute path like /share/motioneye, not "motioneye"',
    ]);
    expect(problemsOf({ ...base, mqtt_url: "localhost:1883" })).toEqual([
      'mqtt_url: must be a URL like mqtt://host:1883, not "localhost:1883"',
    ]);
  });

  it("MQTT: TLS and IPv6 brokers, the user's own broker, or none", () => {
    const mqttOf = (o: AddonOptions, c: AddonContext) =>
      addonConfig(o, c).mqtt as Record<string, unknown>;
    expect(mqttOf(base, { ...ctx, mqtt: { host: "fd00::5", port: 8883, ssl: true } }).url).toBe(
      "mqtts://[fd00::5]:8883",
    );
    const own = mqttOf(
      { ...base, mqtt_url: "mqtt://192.168.1.5:1883", mqtt_username: "me", mqtt_password: "x" },
      ctx,
    );
    expect(own).toMatchObject({ url: "mqtt://192.168.1.5:1883", username: "me", password: "x" });
    const none = mqttOf(base, { ...ctx, mqtt: undefined });
    expect(none.url).toBeUndefined();
    expect(none.embeddedBroker).toEqual({ enabled: false });
  });

  it("Telegram only with a token; the user's hook token wins over the generated one", () => {
    const config = addonConfig(
      { ...base, telegram_token: "123:abc", telegram_allowed_chat_ids: [42], http_token: "mine" },
      ctx,
    );
    expect(config.telegram).toEqual({ token: "123:abc", allowedChatIds: [42] });
    expect((config.http as { token: string }).token).toBe("mine");
    expect(addonConfig({ ...base, telegram_token: " " }, ctx)).not.toHaveProperty("telegram");
  });
});
