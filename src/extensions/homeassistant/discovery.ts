import { createHash } from "node:crypto";
import { DEFAULT_CAMERA } from "../../clips/clipId.js";
import { EVENT_TYPES } from "./states.js";

export {
  cameraState,
  EVENT_TYPES,
  isoTimestamp,
  type LastClip,
  MAX_STATE_LENGTH,
  sourceState,
  stateText,
  type VaultEventType,
  type VaultStateInput,
  vaultEvent,
  vaultState,
} from "./states.js";

/**
 * Home Assistant MQTT discovery for the vault, as pure functions: the retained config payloads
 * (one per entity, single-component discovery as zigbee2mqtt does) and the state documents the
 * entities read (states.ts). No I/O here; index.ts publishes what these return.
 *
 * Topics, under `mqtt.baseTopic` (default `motioneye-vault`):
 *   <base>/availability            online / offline (retained; last will), owned by serve
 *   <base>/state                   the service's state document (retained), with the keys below
 *   <base>/camera/<slug>/state     one camera's state (retained)
 *   <base>/source/<slug>/state     one camera device's state, with several sources (retained)
 *   <base>/event                   {"event_type":"clip_backed_up"|"clip_incomplete"|"sync_failed",...} (not retained)
 *   <base>/thumbnail               the last clip's thumbnail, JPEG bytes (retained)
 *   <base>/sync/set                "Sync now" button command
 *   <base>/backups_enabled/set     "Backups enabled" switch command: ON / OFF
 *   <base>/upload_cap/set          "Upload cap" number command: KiB/s, 0 for no cap
 */

export type Component =
  | "sensor"
  | "binary_sensor"
  | "button"
  | "switch"
  | "number"
  | "event"
  | "image";

export interface DiscoveryConfig {
  component: Component;
  /** `<discoveryPrefix>/<component>/<nodeId>/<objectId>/config` */
  topic: string;
  /** The JSON document to publish (retained). */
  payload: Record<string, unknown>;
}

export interface HaTopics {
  availability: string;
  state: string;
  event: string;
  thumbnail: string;
  syncNow: string;
  backupsEnabledSet: string;
  uploadCapSet: string;
  camera(camera: string): string;
  source(name: string): string;
}

export function haTopics(baseTopic: string): HaTopics {
  return {
    availability: `${baseTopic}/availability`,
    state: `${baseTopic}/state`,
    event: `${baseTopic}/event`,
    thumbnail: `${baseTopic}/thumbnail`,
    syncNow: `${baseTopic}/sync/set`,
    backupsEnabledSet: `${baseTopic}/backups_enabled/set`,
    uploadCapSet: `${baseTopic}/upload_cap/set`,
    camera: (camera) => `${baseTopic}/camera/${cameraSlug(camera)}/state`,
    source: (name) => `${baseTopic}/source/${cameraSlug(name)}/state`,
  };
}

const ID_UNSAFE = /[^A-Za-z0-9_-]/g;

/**
 * A camera folder name as a topic level and id part (`[A-Za-z0-9_-]`, what discovery topics
 * allow). A name that needs changing gets a short hash of the original appended, so `Front door`
 * and `Front_door` stay two different cameras and the id never changes between runs.
 */
export function cameraSlug(camera: string): string {
  const safe = camera.replace(ID_UNSAFE, "_").slice(0, 48);
  if (safe === camera && safe !== "") return safe;
  const hash = createHash("sha256").update(camera).digest("hex").slice(0, 8);
  return `${safe}_${hash}`;
}

/**
 * The id of this vault's device: stable per `mqtt.baseTopic`, so two vaults on one broker differ
 * (`motioneye_vault` for the default base topic, `motioneye_vault_<base>` otherwise).
 */
export function deviceId(baseTopic: string): string {
  const base = baseTopic.replace(/[^A-Za-z0-9]/g, "_");
  return base === "motioneye_vault" ? base : `motioneye_vault_${base}`;
}

export interface DiscoveryInput {
  discoveryPrefix: string;
  baseTopic: string;
  /** This program's version (device sw_version and origin). */
  version: string;
  sourceType: string;
  destinationType: string;
  /** The project's page: `origin.support_url` of every entity. */
  supportUrl?: string;
  /** motionEye's web UI, when the user gave it: the devices link to it. */
  configurationUrl?: string;
  /** Where the vault itself is managed (its add-on page): the vault device links there instead. */
  vaultConfigurationUrl?: string;
  /** Camera folder names on the source; each becomes a child device. */
  cameras: readonly string[];
  /**
   * Several camera devices: each becomes a device (via the vault's) with a "reachable" sensor,
   * and its cameras (shown as `<source>/<camera>`) child devices of it. `cameras` is then unused.
   */
  sources?: ReadonlyArray<{ name: string; type: string; cameras: readonly string[] }>;
  /** Sources with a staleness alarm (alerts.staleAfterHours): each gets a "No new clips" sensor. */
  staleAlarms?: readonly string[];
}

const KIND: Record<string, string> = { ftp: "FTP", sftp: "SFTP", local: "folder", s3: "S3" };
const kind = (type: string) => KIND[type] ?? type;

/** Every discovery config the vault publishes for this input, in a stable order. */
export function buildDiscovery(input: DiscoveryInput): DiscoveryConfig[] {
  const topics = haTopics(input.baseTopic);
  const node = deviceId(input.baseTopic);
  const origin = {
    name: "motioneye-vault",
    sw_version: input.version,
    ...(input.supportUrl ? { support_url: input.supportUrl } : {}),
  };
  const availability = [{ topic: topics.availability }];
  const linkTo = (url: string | undefined) => (url ? { configuration_url: url } : {});
  const link = linkTo(input.configurationUrl);
  const vaultDevice = {
    identifiers: [node],
    name: "motionEye Vault",
    manufacturer: "motioneye-vault",
    model: input.sources
      ? `Clip backup (${input.sources.length} camera devices to ${kind(input.destinationType)})`
      : `Clip backup (${kind(input.sourceType)} to ${kind(input.destinationType)})`,
    sw_version: input.version,
    ...linkTo(input.vaultConfigurationUrl ?? input.configurationUrl),
  };

  const configs: DiscoveryConfig[] = [];
  const add = (
    component: Component,
    objectId: string,
    device: Record<string, unknown>,
    entity: Record<string, unknown>,
  ) => {
    configs.push({
      component,
      topic: `${input.discoveryPrefix}/${component}/${node}/${objectId}/config`,
      payload: {
        ...entity,
        unique_id: `${node}_${objectId}`,
        device,
        origin,
        availability,
      },
    });
  };
  const fromState = (key: string) => ({
    state_topic: topics.state,
    value_template: `{{ value_json.${key} }}`,
  });
  const attributesFrom = (key: string) => ({
    json_attributes_topic: topics.state,
    json_attributes_template: `{{ value_json.${key} | tojson }}`,
  });

  add("sensor", "last_success", vaultDevice, {
    name: "Last successful sync",
    device_class: "timestamp",
    ...fromState("last_success"),
  });
  add("sensor", "last_clip", vaultDevice, {
    name: "Last clip",
    icon: "mdi:filmstrip",
    ...fromState("last_clip"),
    ...attributesFrom("last_clip_attributes"),
  });
  add("sensor", "clips", vaultDevice, {
    name: "Clips backed up",
    icon: "mdi:filmstrip-box-multiple",
    state_class: "total_increasing",
    unit_of_measurement: "clips",
    ...fromState("clips"),
  });
  add("sensor", "pending", vaultDevice, {
    name: "Pending clips",
    icon: "mdi:timer-sand",
    state_class: "measurement",
    unit_of_measurement: "clips",
    ...fromState("pending"),
  });
  add("sensor", "bytes", vaultDevice, {
    name: "Bytes backed up",
    device_class: "data_size",
    // `total`, not `total_increasing`: retention may remove clips, which is no meter reset.
    state_class: "total",
    unit_of_measurement: "B",
    ...fromState("bytes"),
  });
  add("sensor", "last_error", vaultDevice, {
    name: "Last error",
    icon: "mdi:alert-circle-outline",
    entity_category: "diagnostic",
    ...fromState("last_error"),
    ...attributesFrom("last_error_attributes"),
  });
  add("image", "last_clip_thumbnail", vaultDevice, {
    name: "Last clip thumbnail",
    image_topic: topics.thumbnail,
    content_type: "image/jpeg",
  });
  add("sensor", "age_recipient", vaultDevice, {
    // The public key every clip is encrypted to: what a second machine or a paper backup of the
    // identity must match. Not secret.
    name: "Encryption recipient",
    icon: "mdi:key-variant",
    entity_category: "diagnostic",
    ...fromState("age_recipient"),
  });
  add("sensor", "next_sync", vaultDevice, {
    name: "Next scheduled sync",
    device_class: "timestamp",
    entity_category: "diagnostic",
    ...fromState("next_sync"),
  });
  add("binary_sensor", "syncing", vaultDevice, {
    name: "Syncing",
    device_class: "running",
    payload_on: "ON",
    payload_off: "OFF",
    ...fromState("syncing"),
  });
  add("binary_sensor", "camera_connection", vaultDevice, {
    name: "Camera connection",
    device_class: "connectivity",
    entity_category: "diagnostic",
    payload_on: "ON",
    payload_off: "OFF",
    ...fromState("camera_connection"),
  });
  add("binary_sensor", "destination_connection", vaultDevice, {
    name: "Destination connection",
    device_class: "connectivity",
    entity_category: "diagnostic",
    payload_on: "ON",
    payload_off: "OFF",
    ...fromState("destination_connection"),
  });
  if (!input.sources && input.staleAlarms?.length) {
    add("binary_sensor", "backups_stale", vaultDevice, staleSensor(fromState("backups_stale")));
  }
  add("button", "sync_now", vaultDevice, {
    name: "Sync now",
    icon: "mdi:cloud-upload",
    command_topic: topics.syncNow,
    payload_press: "PRESS",
  });
  add("switch", "backups_enabled", vaultDevice, {
    name: "Backups enabled",
    icon: "mdi:backup-restore",
    command_topic: topics.backupsEnabledSet,
    payload_on: "ON",
    payload_off: "OFF",
    ...fromState("backups_enabled"),
  });
  add("sensor", "upload_cap", vaultDevice, {
    // sync.bandwidthLimit in force: "512 KiB/s" or "off"; where it comes from in the attributes.
    name: "Upload bandwidth cap",
    icon: "mdi:speedometer",
    ...fromState("upload_cap"),
    ...attributesFrom("upload_cap_attributes"),
  });
  add("number", "upload_cap_kib", vaultDevice, {
    // Sets the cap live (until the timetable's next change); 0 lifts it.
    name: "Upload cap",
    icon: "mdi:speedometer-slow",
    entity_category: "config",
    command_topic: topics.uploadCapSet,
    min: 0,
    max: 1048576,
    step: 1,
    mode: "box",
    device_class: "data_rate",
    unit_of_measurement: "KiB/s",
    ...fromState("upload_cap_kib"),
  });
  add("event", "activity", vaultDevice, {
    name: "Activity",
    icon: "mdi:cctv",
    state_topic: topics.event,
    event_types: [...EVENT_TYPES],
  });

  const addCamera = (camera: string, name: string, via: string) => {
    const slug = cameraSlug(camera);
    const cameraDevice = {
      identifiers: [`${node}_camera_${slug}`],
      name,
      manufacturer: "motionEye",
      model: "Camera",
      via_device: via,
      ...link,
    };
    const state = topics.camera(camera);
    add("sensor", `camera_${slug}_last_clip`, cameraDevice, {
      name: "Last clip",
      icon: "mdi:filmstrip",
      state_topic: state,
      value_template: "{{ value_json.last_clip }}",
      json_attributes_topic: state,
      json_attributes_template: "{{ value_json.last_clip_attributes | tojson }}",
    });
    add("sensor", `camera_${slug}_clips_today`, cameraDevice, {
      name: "Clips today",
      icon: "mdi:counter",
      // Falls to 0 at midnight: Home Assistant reads a drop of total_increasing as a reset.
      state_class: "total_increasing",
      unit_of_measurement: "clips",
      state_topic: state,
      value_template: "{{ value_json.clips_today }}",
    });
  };

  if (!input.sources) {
    for (const camera of [...new Set(input.cameras)].sort()) {
      addCamera(camera, camera === DEFAULT_CAMERA ? "motionEye camera" : camera, node);
    }
    return configs;
  }
  for (const source of [...input.sources].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const slug = cameraSlug(source.name);
    const id = `${node}_source_${slug}`;
    const sourceDevice = {
      identifiers: [id],
      name: `motionEye ${source.name}`,
      manufacturer: "motionEye",
      model: `Camera device (${kind(source.type)})`,
      via_device: node,
      ...link,
    };
    const state = topics.source(source.name);
    const fromSource = (key: string) => ({
      state_topic: state,
      value_template: `{{ value_json.${key} }}`,
    });
    add("binary_sensor", `source_${slug}_reachable`, sourceDevice, {
      name: "Reachable",
      device_class: "connectivity",
      entity_category: "diagnostic",
      payload_on: "ON",
      payload_off: "OFF",
      ...fromSource("reachable"),
    });
    add("binary_sensor", `source_${slug}_failing`, sourceDevice, {
      name: "Backups failing",
      device_class: "problem",
      payload_on: "ON",
      payload_off: "OFF",
      ...fromSource("failing"),
    });
    if (input.staleAlarms?.includes(source.name)) {
      add("binary_sensor", `source_${slug}_stale`, sourceDevice, staleSensor(fromSource("stale")));
    }
    add("sensor", `source_${slug}_pending`, sourceDevice, {
      name: "Pending clips",
      icon: "mdi:timer-sand",
      state_class: "measurement",
      unit_of_measurement: "clips",
      ...fromSource("pending"),
    });
    add("sensor", `source_${slug}_last_clip`, sourceDevice, {
      name: "Last clip",
      icon: "mdi:filmstrip",
      ...fromSource("last_clip"),
      json_attributes_topic: state,
      json_attributes_template: "{{ value_json.last_clip_attributes | tojson }}",
    });
    add("sensor", `source_${slug}_last_error`, sourceDevice, {
      name: "Last error",
      icon: "mdi:alert-circle-outline",
      entity_category: "diagnostic",
      ...fromSource("last_error"),
      json_attributes_topic: state,
      json_attributes_template: "{{ value_json.last_error_attributes | tojson }}",
    });
    for (const camera of [...new Set(source.cameras)].sort()) {
      const label = `${source.name}/${camera}`;
      addCamera(label, `${source.name} ${camera === DEFAULT_CAMERA ? "camera" : camera}`, id);
    }
  }
  return configs;
}

/** The staleness alarm: a problem while no new clip was backed up for alerts.staleAfterHours. */
function staleSensor(from: { state_topic: string; value_template: string }) {
  return {
    name: "No new clips",
    device_class: "problem",
    icon: "mdi:clock-alert-outline",
    payload_on: "ON",
    payload_off: "OFF",
    ...from,
  };
}
