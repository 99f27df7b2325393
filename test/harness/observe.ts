/**
 * What a user of `serve` looks at, read the way they read it: the retained MQTT messages Home
 * Assistant gets (discovery configs, and a binary sensor's state through its value_template),
 * and the Prometheus text of `/metrics`.
 */
import { type MqttMessage, mosquittoPub, mosquittoSub } from "./mosquitto.js";

/**
 * The retained messages a client subscribing now gets. `--retained-only` ends at the first live
 * message: one published on a probe topic once subscribed (the broker sends the retained ones
 * first), so this takes milliseconds, not a timeout.
 */
export async function retainedMessages(
  url: string,
  filter: string | string[],
): Promise<MqttMessage[]> {
  const probe = `test-probe/retained/${process.pid}`;
  const sub = mosquittoSub(url, [...[filter].flat(), probe], {
    timeoutMs: 15_000, // a backstop only: the probe ends it
    retainedOnly: true,
  });
  await sub.ready;
  await mosquittoPub(url, probe, "end", { qos: 1 });
  return (await sub).filter((m) => m.topic !== probe);
}

/** One Home Assistant discovery config: its component (from the topic) and its payload. */
export interface DiscoveryConfig {
  topic: string;
  component: string;
  config: Record<string, unknown> & {
    device?: { name?: string; identifiers?: unknown; via_device?: string };
  };
}

/** The non-empty discovery configs among `messages` (`<prefix>/<component>/.../config`). */
export function discoveryConfigs(messages: MqttMessage[], prefix: string): DiscoveryConfig[] {
  return messages
    .filter((m) => m.topic.startsWith(`${prefix}/`) && m.topic.endsWith("/config") && m.payload)
    .map((m) => ({
      topic: m.topic,
      component: m.topic.split("/")[1] ?? "",
      config: JSON.parse(m.payload) as DiscoveryConfig["config"],
    }));
}

/** The device identifiers of a config, as strings. */
export function deviceIds(c: DiscoveryConfig): string[] {
  const ids = c.config.device?.identifiers;
  return (Array.isArray(ids) ? ids : [ids]).filter((x) => x !== undefined).map(String);
}

/**
 * Evaluates the value_template forms a discovery config uses for a plain lookup:
 * `{{ value_json.a.b }}`, `{{ value_json['a'].b }}`, `{{ value }}`; no template: the payload.
 * Anything else throws, so a test never guesses what Home Assistant would show.
 */
export function templateValue(template: unknown, payload: string): unknown {
  if (template === undefined) return payload;
  const m =
    /^\{\{\s*(value_json|value)((?:\.[A-Za-z_][\w]*|\[(?:'[^']*'|"[^"]*"|\d+)\])*)\s*\}\}$/.exec(
      String(template).trim(),
    );
  if (!m) throw new Error(`cannot evaluate value_template ${JSON.stringify(template)}`);
  if (m[1] === "value") return payload;
  let node: unknown = JSON.parse(payload);
  for (const step of (m[2] ?? "").matchAll(/\.([A-Za-z_]\w*)|\[(?:'([^']*)'|"([^"]*)"|(\d+))\]/g)) {
    const key = step[1] ?? step[2] ?? step[3] ?? Number(step[4]);
    node = node && typeof node === "object" ? (node as Record<string, unknown>)[key] : undefined;
  }
  return node;
}

/**
 * What Home Assistant shows for a binary sensor: "on", "off" or "unknown", from the retained
 * payload of its state topic (payload_on / payload_off default to ON / OFF).
 */
export function binarySensorState(c: DiscoveryConfig, statePayload: string | undefined): string {
  if (statePayload === undefined) return "unknown";
  const value = String(templateValue(c.config.value_template, statePayload));
  if (value === String(c.config.payload_on ?? "ON")) return "on";
  if (value === String(c.config.payload_off ?? "OFF")) return "off";
  return "unknown";
}

/** One sample of a Prometheus text exposition: name, labels, value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus text format (comments skipped; label values unescaped). */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1] ?? ""] = (l[2] ?? "").replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    }
    samples.push({ name: m[1] ?? "", labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of `name` for the sample whose labels include `labels`; undefined when absent. */
export function metricValue(
  samples: Sample[],
  name: string,
  labels: Record<string, string>,
): number | undefined {
  return samples.find(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )?.value;
}
