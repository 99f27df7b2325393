import { createHash } from "node:crypto";
import { DEFAULT_CAMERA } from "../../clips/clipId.js";
import { clipTime } from "../../util/format.js";

/**
 * Home Assistant MQTT discovery for the vault, as pure functions: the retained config payloads
 * (one per entity, single-component discovery as zigbee2mqtt does) and the state documents the
 * entities read. No I/O here; src/homeassistant/index.ts publishes what these return.
 *
 * Topics, under `mqtt.baseTopic` (default `motioneye-vault`):
 *   <base>/availability            online / offline (retained; last will), owned by serve
 *   <base>/state                   the service's state document (retained), with the keys below
 *   <base>/camera/<slug>/state     one camera's state (retained)
 *   <base>/event                   {"event_type":"clip_backed_up"|"sync_failed",...} (not retained)
 *   <base>/sync/set                "Sync now" button command
 *   <base>/backups_enabled/set     "Backups enabled" switch command: ON / OFF
 */

export type Component = "sensor" | "binary_sensor" | "button" | "switch" | "event";

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
  syncNow: string;
  backupsEnabledSet: string;
  camera(camera: string): string;
}

export function haTopics(baseTopic: string): HaTopics {
  return {
    availability: `${baseTopic}/availability`,
    state: `${baseTopic}/state`,
    event: `${baseTopic}/event`,
    syncNow: `${baseTopic}/sync/set`,
    backupsEnabledSet: `${baseTopic}/backups_enabled/set`,
    camera: (camera) => `${baseTopic}/camera/${cameraSlug(camera)}/state`,
  };
}

export const EVENT_TYPES = ["clip_backed_up", "sync_failed"] as const;
export type VaultEventType = (typeof EVENT_TYPES)[number];

/** Home Assistant keeps at most 255 characters of an entity's state. */
export const MAX_STATE_LENGTH = 255;

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
  sourceType: "ftp" | "local";
  destinationType: "sftp" | "local";
  /** motionEye's web UI, when the user gave it: the devices link to it. */
  configurationUrl?: string;
  /** Camera folder names on the source; each becomes a child device. */
  cameras: readonly string[];
}

const KIND: Record<string, string> = { ftp: "FTP", sftp: "SFTP", local: "folder" };

/** Every discovery config the vault publishes for this input, in a stable order. */
export function buildDiscovery(input: DiscoveryInput): DiscoveryConfig[] {
  const topics = haTopics(input.baseTopic);
  const node = deviceId(input.baseTopic);
  const origin = { name: "motioneye-vault", sw_version: input.version };
  const availability = [{ topic: topics.availability }];
  const link = input.configurationUrl ? { configuration_url: input.configurationUrl } : {};
  const vaultDevice = {
    identifiers: [node],
    name: "motionEye Vault",
    manufacturer: "motioneye-vault",
    model: `Clip backup (${KIND[input.sourceType]} to ${KIND[input.destinationType]})`,
    sw_version: input.version,
    ...link,
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
  add("event", "activity", vaultDevice, {
    name: "Activity",
    icon: "mdi:cctv",
    state_topic: topics.event,
    event_types: [...EVENT_TYPES],
  });

  for (const camera of [...new Set(input.cameras)].sort()) {
    const slug = cameraSlug(camera);
    const cameraDevice = {
      identifiers: [`${node}_camera_${slug}`],
      name: camera === DEFAULT_CAMERA ? "motionEye camera" : camera,
      manufacturer: "motionEye",
      model: "Camera",
      via_device: node,
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
  }
  return configs;
}

/** ISO 8601 in UTC with `Z` (Home Assistant rejects timestamps without a zone), or null. */
export function isoTimestamp(value: string | number | Date | undefined | null): string | null {
  if (value === undefined || value === null || value === "") return null;
  const d = value instanceof Date ? value : new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** Text cut to what Home Assistant keeps as a state. */
export function stateText(s: string): string {
  return s.length > MAX_STATE_LENGTH ? `${s.slice(0, MAX_STATE_LENGTH - 3)}...` : s;
}

const onOff = (v: boolean | undefined): "ON" | "OFF" | null =>
  v === undefined ? null : v ? "ON" : "OFF";

export interface LastClip {
  id: string;
  camera: string;
  /** When it was backed up. */
  at: string;
}

/** Attributes of a "last clip" sensor: the camera, when it was backed up, when it was recorded. */
function clipAttributes(clip: LastClip | undefined): Record<string, unknown> {
  if (!clip) return {};
  const parts = clip.id.split("/");
  const name = parts[parts.length - 1] ?? clip.id;
  const date = parts[parts.length - 2];
  return {
    id: clip.id,
    camera: clip.camera,
    time: isoTimestamp(clip.at),
    // motionEye names clips after the camera's local time; it carries no zone, so it stays text.
    ...(date ? { recorded: `${date} ${clipTime(name)}` } : {}),
  };
}

export interface VaultStateInput {
  lastSuccessAt?: string;
  lastClip?: LastClip;
  clips: number;
  bytes: number;
  pending: number;
  lastError?: { message: string; at: string };
  nextSync?: Date;
  syncing: boolean;
  /** undefined until known. */
  cameraConnected?: boolean;
  destinationConnected?: boolean;
  backupsEnabled: boolean;
}

/**
 * Home Assistant's keys of the `<base>/state` document (snake_case; every vault entity reads one
 * of them), after `core`: the service state `serve` publishes there without Home Assistant, so the
 * document keeps those keys either way.
 */
export function vaultState(
  s: VaultStateInput,
  core: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    ...core,
    last_success: isoTimestamp(s.lastSuccessAt),
    last_clip: s.lastClip ? stateText(s.lastClip.id) : null,
    last_clip_attributes: clipAttributes(s.lastClip),
    clips: s.clips,
    bytes: s.bytes,
    pending: s.pending,
    last_error: s.lastError ? stateText(s.lastError.message) : null,
    last_error_attributes: s.lastError
      ? { message: s.lastError.message.slice(0, 2000), time: isoTimestamp(s.lastError.at) }
      : {},
    next_sync: isoTimestamp(s.nextSync),
    syncing: onOff(s.syncing),
    camera_connection: onOff(s.cameraConnected),
    destination_connection: onOff(s.destinationConnected),
    backups_enabled: onOff(s.backupsEnabled),
  };
}

/** The JSON document on `<base>/camera/<slug>/state`. */
export function cameraState(s: {
  lastClip?: LastClip;
  clipsToday: number;
}): Record<string, unknown> {
  return {
    last_clip: s.lastClip ? stateText(s.lastClip.id) : null,
    last_clip_attributes: clipAttributes(s.lastClip),
    clips_today: s.clipsToday,
  };
}

/** A message for the event entity. */
export function vaultEvent(
  type: VaultEventType,
  data: Record<string, unknown> & { at: string },
): Record<string, unknown> {
  return { event_type: type, ...data, at: isoTimestamp(data.at) };
}
