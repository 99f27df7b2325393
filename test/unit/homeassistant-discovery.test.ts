import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import {
  buildDiscovery,
  type Component,
  cameraSlug,
  cameraState,
  type DiscoveryConfig,
  type DiscoveryInput,
  deviceId,
  haTopics,
  MAX_STATE_LENGTH,
  vaultEvent,
  vaultState,
} from "../../src/extensions/homeassistant/discovery.js";

/*
 * The keys Home Assistant's MQTT platforms accept, written down from its documentation
 * (home-assistant.io source/_integrations/<platform>.mqtt.markdown, the `{% configuration %}`
 * blocks, and mqtt.markdown "Discovery payload" for `origin` and `~`). Home Assistant ignores
 * unknown keys in discovery payloads, so a typo would fail silently there: it fails here.
 * We send full key names; the abbreviations (`stat_t`, `dev`, ...) are not used.
 */
const AVAILABILITY = [
  "availability",
  "availability_mode",
  "availability_template",
  "availability_topic",
  "payload_available",
  "payload_not_available",
];
const ENTITY = [
  ...AVAILABILITY,
  "device",
  "enabled_by_default",
  "encoding",
  "entity_category",
  "entity_picture",
  "icon",
  "json_attributes_template",
  "json_attributes_topic",
  "name",
  "object_id",
  "platform",
  "qos",
  "unique_id",
];
const DISCOVERY_ONLY = ["origin", "~"];

const ACCEPTED: Record<Component, { keys: string[]; required: string[] }> = {
  sensor: {
    keys: [
      ...ENTITY,
      "device_class",
      "expire_after",
      "force_update",
      "last_reset_value_template",
      "options",
      "suggested_display_precision",
      "state_class",
      "state_topic",
      "unit_of_measurement",
      "value_template",
    ],
    required: ["state_topic"],
  },
  binary_sensor: {
    keys: [
      ...ENTITY,
      "device_class",
      "expire_after",
      "force_update",
      "off_delay",
      "payload_off",
      "payload_on",
      "state_topic",
      "value_template",
    ],
    required: ["state_topic"],
  },
  button: {
    keys: [
      ...ENTITY,
      "command_template",
      "command_topic",
      "device_class",
      "payload_press",
      "retain",
    ],
    required: ["command_topic"],
  },
  switch: {
    keys: [
      ...ENTITY,
      "command_template",
      "command_topic",
      "device_class",
      "optimistic",
      "payload_off",
      "payload_on",
      "retain",
      "state_off",
      "state_on",
      "state_topic",
      "value_template",
    ],
    required: ["command_topic"],
  },
  number: {
    keys: [
      ...ENTITY,
      "command_template",
      "command_topic",
      "device_class",
      "max",
      "min",
      "mode",
      "optimistic",
      "payload_reset",
      "retain",
      "state_topic",
      "step",
      "unit_of_measurement",
      "value_template",
    ],
    required: ["command_topic"],
  },
  event: {
    keys: [...ENTITY, "device_class", "event_types", "state_topic", "value_template"],
    required: ["state_topic", "event_types"],
  },
  // image.mqtt.markdown: `image_topic` or `url_topic` (exclusive, one is required)
  image: {
    keys: [...ENTITY, "content_type", "image_encoding", "image_topic", "url_template", "url_topic"],
    required: ["image_topic"],
  },
};

/** `device` keys (device registry), `origin` keys, one `availability` entry's keys. */
const DEVICE_KEYS = [
  "configuration_url",
  "connections",
  "hw_version",
  "identifiers",
  "manufacturer",
  "model",
  "model_id",
  "name",
  "serial_number",
  "suggested_area",
  "sw_version",
  "via_device",
];
const ORIGIN_KEYS = ["name", "sw_version", "support_url"];
const AVAILABILITY_ENTRY_KEYS = [
  "payload_available",
  "payload_not_available",
  "topic",
  "value_template",
];

/** Values the docs list for the options we use (sensor/binary_sensor device classes, etc.). */
const SENSOR_DEVICE_CLASSES = ["timestamp", "data_size", "duration", "enum"];
const BINARY_SENSOR_DEVICE_CLASSES = ["running", "connectivity", "problem"];
const STATE_CLASSES = ["measurement", "total", "total_increasing"];
const DATA_SIZE_UNITS = ["bit", "kbit", "Mbit", "Gbit", "B", "kB", "MB", "GB", "TB", "KiB", "MiB"];

const TOPIC_ID = /^[a-zA-Z0-9_-]+$/;

const input: DiscoveryInput = {
  discoveryPrefix: "homeassistant",
  baseTopic: "motioneye-vault",
  version: "0.1.0",
  supportUrl: "https://example.org/motioneye-vault",
  sourceType: "ftp",
  destinationType: "sftp",
  configurationUrl: "http://192.168.1.20/",
  cameras: ["Camera1", "Front door", "default"],
};
const configs = buildDiscovery(input);
const topics = haTopics(input.baseTopic);

/** Per-camera entities: `camera_<slug>_<key>` object ids (the vault has `camera_connection`). */
const isCamera = (c: DiscoveryConfig) =>
  /^camera_.+_(last_clip|clips_today)$/.test(c.topic.split("/")[3] ?? "");

const byId = (objectIdSuffix: string): DiscoveryConfig => {
  const c = configs.find((x) => x.topic.endsWith(`/${objectIdSuffix}/config`));
  if (!c) throw new Error(`no config ${objectIdSuffix}`);
  return c;
};

/** The state document a config reads, built from representative (and from empty) input. */
function stateDocsFor(topic: string): Record<string, unknown>[] {
  if (topic === topics.state) {
    return [
      vaultState({ clips: 0, bytes: 0, pending: 0, syncing: false, backupsEnabled: true }),
      vaultState({
        lastSuccessAt: "2024-05-01T12:00:00.000Z",
        lastClip: {
          id: "Camera1/2024-05-01/12-00-00.mp4",
          camera: "Camera1",
          at: "2024-05-01T12:00:05.000Z",
        },
        clips: 3,
        bytes: 1234,
        pending: 1,
        lastError: { message: "boom", at: "2024-05-01T12:00:00.000Z" },
        nextSync: new Date("2024-05-01T12:15:00Z"),
        syncing: true,
        cameraConnected: true,
        destinationConnected: false,
        backupsEnabled: false,
      }),
    ];
  }
  if (topic.startsWith(`${input.baseTopic}/camera/`)) {
    return [
      cameraState({ clipsToday: 0 }),
      cameraState({
        clipsToday: 2,
        lastClip: {
          id: "Camera1/2024-05-01/12-00-00.mp4",
          camera: "Camera1",
          at: "2024-05-01T12:00:05Z",
        },
      }),
    ];
  }
  throw new Error(`unexpected state topic ${topic}`);
}

const templateKey = (template: unknown, pattern: RegExp): string => {
  const m = pattern.exec(String(template));
  if (!m?.[1]) throw new Error(`template not understood: ${String(template)}`);
  return m[1];
};

describe("Home Assistant discovery payloads", () => {
  it("builds the vault's entities and two per camera", () => {
    const vaultIds = configs
      .filter((c) => !isCamera(c))
      .map((c) => `${c.component}:${c.topic.split("/")[3]}`);
    expect(vaultIds.sort()).toEqual(
      [
        "sensor:last_success",
        "sensor:last_clip",
        "sensor:clips",
        "sensor:pending",
        "sensor:bytes",
        "sensor:last_error",
        "sensor:next_sync",
        "sensor:age_recipient",
        "image:last_clip_thumbnail",
        "binary_sensor:syncing",
        "binary_sensor:camera_connection",
        "binary_sensor:destination_connection",
        "button:sync_now",
        "switch:backups_enabled",
        "sensor:upload_cap",
        "number:upload_cap_kib",
        "event:activity",
      ].sort(),
    );
    expect(configs.filter(isCamera)).toHaveLength(3 * 2);
  });

  it("uses only keys that Home Assistant's MQTT platforms accept, and every required one", () => {
    for (const c of configs) {
      const accepted = new Set([...ACCEPTED[c.component].keys, ...DISCOVERY_ONLY]);
      const unknown = Object.keys(c.payload).filter((k) => !accepted.has(k));
      expect(unknown, `${c.topic}`).toEqual([]);
      for (const key of ACCEPTED[c.component].required) {
        expect(c.payload[key], `${c.topic} ${key}`).toBeTruthy();
      }
      const device = c.payload.device as Record<string, unknown>;
      expect(
        Object.keys(device).filter((k) => !DEVICE_KEYS.includes(k)),
        c.topic,
      ).toEqual([]);
      const origin = c.payload.origin as Record<string, unknown>;
      expect(Object.keys(origin).filter((k) => !ORIGIN_KEYS.includes(k))).toEqual([]);
      expect(origin).toEqual({
        name: "motioneye-vault",
        sw_version: "0.1.0",
        support_url: "https://example.org/motioneye-vault",
      });
      for (const a of c.payload.availability as Record<string, unknown>[]) {
        expect(Object.keys(a).filter((k) => !AVAILABILITY_ENTRY_KEYS.includes(k))).toEqual([]);
      }
    }
  });

  it("puts every config on a valid discovery topic with a unique id", () => {
    const uniqueIds = configs.map((c) => c.payload.unique_id);
    expect(new Set(uniqueIds).size).toBe(configs.length);
    expect(new Set(configs.map((c) => c.topic)).size).toBe(configs.length);
    for (const c of configs) {
      const parts = c.topic.split("/");
      // <discovery_prefix>/<component>/<node_id>/<object_id>/config
      expect(parts).toHaveLength(5);
      expect(parts[0]).toBe("homeassistant");
      expect(parts[1]).toBe(c.component);
      expect(parts[2]).toMatch(TOPIC_ID);
      expect(parts[3]).toMatch(TOPIC_ID);
      expect(parts[4]).toBe("config");
      expect(String(c.payload.unique_id)).toMatch(TOPIC_ID);
    }
  });

  it("ties entities to the motionEye Vault device, cameras as child devices via it", () => {
    const vault = byId("last_success").payload.device as Record<string, unknown>;
    expect(vault).toEqual({
      identifiers: ["motioneye_vault"],
      name: "motionEye Vault",
      manufacturer: "motioneye-vault",
      model: "Clip backup (FTP to SFTP)",
      sw_version: "0.1.0",
      configuration_url: "http://192.168.1.20/",
    });
    const cameras = configs
      .filter(isCamera)
      .map((c) => c.payload.device as Record<string, unknown>);
    for (const d of cameras) expect(d.via_device).toBe("motioneye_vault");
    expect(new Set(cameras.map((d) => d.name))).toEqual(
      new Set(["Camera1", "Front door", "motionEye camera"]),
    );
    expect(new Set(cameras.map((d) => (d.identifiers as string[])[0])).size).toBe(3);
    for (const c of configs) {
      expect(c.payload.availability).toEqual([{ topic: "motioneye-vault/availability" }]);
    }
  });

  it("leaves configuration_url out when it is not known", () => {
    const c = buildDiscovery({ ...input, configurationUrl: undefined });
    for (const x of c) expect(x.payload.device).not.toHaveProperty("configuration_url");
  });

  it("links the vault device to its own page when it has one (the add-on), cameras to motionEye", () => {
    const addonPage = "homeassistant://hassio/addon/local_motioneye_vault/info";
    const c = buildDiscovery({ ...input, vaultConfigurationUrl: addonPage });
    for (const x of c) {
      const device = x.payload.device as Record<string, unknown>;
      expect(device.configuration_url).toBe(device.via_device ? "http://192.168.1.20/" : addonPage);
    }
  });

  it("shows the last clip's thumbnail as a JPEG image entity and the recipient as a diagnostic", () => {
    expect(byId("last_clip_thumbnail")).toMatchObject({
      component: "image",
      topic: "homeassistant/image/motioneye_vault/last_clip_thumbnail/config",
      payload: { image_topic: "motioneye-vault/thumbnail", content_type: "image/jpeg" },
    });
    // raw bytes on image_topic: no base64 decoding asked for
    expect(byId("last_clip_thumbnail").payload).not.toHaveProperty("image_encoding");
    expect(byId("age_recipient").payload).toMatchObject({
      entity_category: "diagnostic",
      state_topic: "motioneye-vault/state",
      value_template: "{{ value_json.age_recipient }}",
    });
    const recipient = "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq";
    expect(
      vaultState({
        clips: 0,
        bytes: 0,
        pending: 0,
        syncing: false,
        backupsEnabled: true,
        ageRecipient: recipient,
      }).age_recipient,
    ).toBe(recipient);
  });

  it("uses device classes, state classes and units Home Assistant knows, as the issue asks", () => {
    for (const c of configs) {
      const p = c.payload;
      if (c.component === "sensor") {
        if (p.device_class !== undefined) expect(SENSOR_DEVICE_CLASSES).toContain(p.device_class);
        if (p.state_class !== undefined) expect(STATE_CLASSES).toContain(p.state_class);
        // the sensor docs: "When set, the entity category must be `diagnostic` for sensors"
        if (p.entity_category !== undefined) expect(p.entity_category).toBe("diagnostic");
        if (p.device_class === "timestamp") {
          expect(p).not.toHaveProperty("state_class");
          expect(p).not.toHaveProperty("unit_of_measurement");
        }
        if (p.device_class === "data_size")
          expect(DATA_SIZE_UNITS).toContain(p.unit_of_measurement);
      }
      if (c.component === "binary_sensor") {
        expect(BINARY_SENSOR_DEVICE_CLASSES).toContain(p.device_class);
      }
      if (p.entity_category !== undefined)
        expect(["config", "diagnostic"]).toContain(p.entity_category);
    }
    expect(byId("last_success").payload.device_class).toBe("timestamp");
    expect(byId("clips").payload.state_class).toBe("total_increasing");
    expect(byId("bytes").payload).toMatchObject({
      device_class: "data_size",
      unit_of_measurement: "B",
    });
    expect(byId("last_error").payload.entity_category).toBe("diagnostic");
    expect(byId("syncing").payload.device_class).toBe("running");
    expect(byId("camera_connection").payload.device_class).toBe("connectivity");
    expect(byId("destination_connection").payload.device_class).toBe("connectivity");
    expect(byId("sync_now").payload.command_topic).toBe("motioneye-vault/sync/set");
    expect(byId("backups_enabled").payload).toMatchObject({
      command_topic: "motioneye-vault/backups_enabled/set",
      state_topic: "motioneye-vault/state",
    });
    expect(byId("upload_cap_kib").payload).toMatchObject({
      command_topic: "motioneye-vault/upload_cap/set",
      state_topic: "motioneye-vault/state",
      value_template: "{{ value_json.upload_cap_kib }}",
      min: 0,
      unit_of_measurement: "KiB/s",
      device_class: "data_rate",
    });
    expect(byId("upload_cap").payload.value_template).toBe("{{ value_json.upload_cap }}");
    expect(byId("activity").payload).toMatchObject({
      state_topic: "motioneye-vault/event",
      event_types: ["clip_backed_up", "clip_incomplete", "sync_failed"],
    });
  });

  it("reads only keys the state documents have; attributes are always JSON objects", () => {
    for (const c of configs) {
      const p = c.payload;
      if (p.value_template !== undefined) {
        const key = templateKey(p.value_template, /^\{\{ value_json\.([a-z_]+) \}\}$/);
        for (const doc of stateDocsFor(String(p.state_topic))) expect(doc).toHaveProperty(key);
      }
      if (p.json_attributes_template !== undefined) {
        const key = templateKey(
          p.json_attributes_template,
          /^\{\{ value_json\.([a-z_]+) \| tojson \}\}$/,
        );
        for (const doc of stateDocsFor(String(p.json_attributes_topic))) {
          expect(doc[key]).toBeTypeOf("object");
          expect(doc[key]).not.toBeNull();
          expect(Array.isArray(doc[key])).toBe(false);
        }
      }
      for (const payloadKey of ["payload_on", "payload_off"]) {
        if (p[payloadKey] !== undefined) expect(["ON", "OFF"]).toContain(p[payloadKey]);
      }
    }
  });
});

describe("Home Assistant state documents", () => {
  const TZ = /(Z|[+-]\d{2}:\d{2})$/;

  it("writes every timestamp as ISO 8601 with a zone, and unknown as null", () => {
    const s = vaultState({
      lastSuccessAt: "2024-05-01T14:00:00+02:00",
      lastClip: {
        id: "Camera1/2024-05-01/13-59-00.mp4",
        camera: "Camera1",
        at: "2024-05-01T12:00:05.000Z",
      },
      clips: 1,
      bytes: 10,
      pending: 0,
      lastError: { message: "x", at: "2024-05-01T12:00:00Z" },
      nextSync: new Date("2024-05-01T12:15:00Z"),
      syncing: false,
      backupsEnabled: true,
    });
    expect(s.last_success).toBe("2024-05-01T12:00:00.000Z");
    expect(s.next_sync).toMatch(TZ);
    expect((s.last_clip_attributes as Record<string, unknown>).time).toMatch(TZ);
    expect((s.last_error_attributes as Record<string, unknown>).time).toMatch(TZ);
    expect(s.last_clip_attributes).toMatchObject({
      camera: "Camera1",
      recorded: "2024-05-01 13:59:00",
    });
    const empty = vaultState({
      clips: 0,
      bytes: 0,
      pending: 0,
      syncing: false,
      backupsEnabled: true,
    });
    expect(empty).toMatchObject({ last_success: null, next_sync: null, last_clip: null });
    expect(empty.camera_connection).toBeNull(); // unknown until checked
    expect(
      vaultState({
        clips: 0,
        bytes: 0,
        pending: 0,
        syncing: false,
        backupsEnabled: true,
        lastSuccessAt: "garbage",
      }).last_success,
    ).toBeNull();
    const ev = vaultEvent("sync_failed", { error: "x", at: "2024-05-01T14:00:00+02:00" });
    expect(ev).toEqual({ event_type: "sync_failed", error: "x", at: "2024-05-01T12:00:00.000Z" });
  });

  it("adds its keys to serve's state document without changing serve's", () => {
    const core = {
      running: true,
      paused: false,
      totals: { clips: 1, bytes: 2 },
      lastSuccessAt: null,
    };
    const s = vaultState(
      { clips: 1, bytes: 2, pending: 0, syncing: true, backupsEnabled: true },
      core,
    );
    expect(s).toMatchObject(core);
    expect(s).toMatchObject({ syncing: "ON", clips: 1 });
  });

  it("keeps states within Home Assistant's 255 characters", () => {
    const long = "e".repeat(1000);
    const s = vaultState({
      clips: 0,
      bytes: 0,
      pending: 0,
      syncing: false,
      backupsEnabled: true,
      lastError: { message: long, at: "2024-05-01T12:00:00Z" },
    });
    expect(String(s.last_error).length).toBe(MAX_STATE_LENGTH);
    expect((s.last_error_attributes as { message: string }).message.length).toBeGreaterThan(255);
  });

  it("shows the upload cap as text, its origin as attributes, and in KiB/s for the number", () => {
    const base = { clips: 0, bytes: 0, pending: 0, syncing: false, backupsEnabled: true };
    const capped = vaultState({
      ...base,
      uploadCap: {
        bytesPerSecond: 512 * 1024,
        text: "512 KiB/s",
        from: "config",
        configured: "08:00,512k 23:00,off",
        nextChange: "2024-05-01T21:00:00.000Z",
      },
    });
    expect(capped).toMatchObject({
      upload_cap: "512 KiB/s",
      upload_cap_kib: 512,
      upload_cap_attributes: {
        bytes_per_second: 524288,
        set_by: "config",
        configured: "08:00,512k 23:00,off",
        next_change: "2024-05-01T21:00:00.000Z",
      },
    });
    const off = vaultState({
      ...base,
      uploadCap: {
        bytesPerSecond: null,
        text: "off",
        from: "config",
        configured: "off",
        nextChange: null,
      },
    });
    expect(off).toMatchObject({ upload_cap: "off", upload_cap_kib: 0 });
  });

  it("maps switch and binary sensors to ON / OFF", () => {
    const s = vaultState({
      clips: 0,
      bytes: 0,
      pending: 0,
      syncing: true,
      backupsEnabled: false,
      cameraConnected: true,
      destinationConnected: false,
    });
    expect(s).toMatchObject({
      syncing: "ON",
      backups_enabled: "OFF",
      camera_connection: "ON",
      destination_connection: "OFF",
    });
  });
});

describe("camera ids", () => {
  it("keeps safe names, and makes unsafe ones safe, distinct and stable", () => {
    expect(cameraSlug("Camera1")).toBe("Camera1");
    expect(cameraSlug("Front door")).toMatch(/^Front_door_[0-9a-f]{8}$/);
    expect(cameraSlug("Front door")).toBe(cameraSlug("Front door"));
    expect(cameraSlug("Front door")).not.toBe(cameraSlug("Front_door"));
    expect(cameraSlug("Front+door/#")).toMatch(TOPIC_ID);
    expect(cameraSlug("Caméra")).toMatch(TOPIC_ID);
    expect(haTopics("mv").camera("a+b")).not.toMatch(/[+#]/);
  });
});

describe("device ids", () => {
  it("are one per base topic", () => {
    expect(deviceId("motioneye-vault")).toBe("motioneye_vault");
    expect(deviceId("home/vault")).toBe("motioneye_vault_home_vault");
    const other = buildDiscovery({ ...input, baseTopic: "home/vault" });
    const ids = new Set(configs.map((c) => c.payload.unique_id));
    for (const c of other) expect(ids.has(c.payload.unique_id)).toBe(false);
  });
});

describe("integrations/homeassistant examples", () => {
  /** The entity id Home Assistant makes for a device's named entity (its slugify, simplified). */
  const entityId = (c: DiscoveryConfig) =>
    `${c.component}.${`motionEye Vault ${String(c.payload.name)}`
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "_")
      .replace(/^_|_$/g, "")}`;
  const known = new Set(configs.filter((c) => !isCamera(c)).map(entityId));

  for (const file of ["automations.yaml", "dashboard-card.yaml"]) {
    it(`${file} is YAML and names only entities the vault announces`, () => {
      const text = readFileSync(
        new URL(`../../integrations/homeassistant/${file}`, import.meta.url),
        "utf8",
      );
      expect(parseYaml(text)).toBeTruthy();
      const used =
        text.match(/\b(sensor|binary_sensor|button|switch|event)\.motioneye_vault_[a-z0-9_]+/g) ??
        [];
      expect(used.length).toBeGreaterThan(0);
      for (const id of used) expect(known, id).toContain(id);
    });
  }

  it("the automation listens for sync_failed, an event type the entity declares", () => {
    const text = readFileSync(
      new URL("../../integrations/homeassistant/automations.yaml", import.meta.url),
      "utf8",
    );
    expect(text).toContain("'sync_failed'");
    expect(byId("activity").payload.event_types).toContain("sync_failed");
  });
});

describe("the staleness alarm's sensor", () => {
  const objectIds = (c: DiscoveryConfig[]) => c.map((x) => x.topic.split("/")[3]);

  it("is there only with alerts.staleAfterHours: on the vault device for one source", () => {
    expect(objectIds(configs)).not.toContain("backups_stale");
    const c = buildDiscovery({ ...input, staleAlarms: ["default"] });
    const stale = c.find((x) => x.topic.endsWith("/backups_stale/config"));
    expect(stale?.payload).toMatchObject({
      name: "No new clips",
      device_class: "problem",
      state_topic: topics.state,
      value_template: "{{ value_json.backups_stale }}",
    });
  });

  it("with several sources, on the device of each source that has one", () => {
    const sources = [
      { name: "garage", type: "ftp", cameras: ["Camera1"] },
      { name: "porch", type: "local", cameras: ["Camera1"] },
    ];
    const c = buildDiscovery({ ...input, sources, staleAlarms: ["porch"] });
    const ids = objectIds(c);
    expect(ids).toContain("source_porch_stale");
    expect(ids).not.toContain("source_garage_stale");
    expect(ids).not.toContain("backups_stale");
    expect(c.find((x) => x.topic.endsWith("/source_porch_stale/config"))?.payload).toMatchObject({
      device_class: "problem",
      state_topic: topics.source("porch"),
      value_template: "{{ value_json.stale }}",
    });
  });
});
