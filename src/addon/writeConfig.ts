import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { stringify } from "yaml";
import { loadIdentity } from "../crypto/age/age.js";
import { type AddonOptions, AddonOptionsError, addonConfig, type MqttService } from "./options.js";

/**
 * The Home Assistant add-on's start: its run script calls this before `motioneye-vault serve`.
 * Reads the options the user set (`/data/options.json`), asks the Supervisor for its MQTT broker
 * and the add-on's slug, writes the vault's config (mode 0600) and says in the log where clips
 * come from and go to, and the age recipient they are encrypted to. Exit 2 on bad options.
 *
 * Every path and the Supervisor's URL can be moved by the environment, so the tests run the real
 * run script against a temporary folder and a stand-in Supervisor on loopback.
 */

const SUPERVISOR_TIMEOUT_MS = 10_000;

interface Settings {
  dataDir: string;
  userDir: string;
  optionsFile: string;
  configFile: string;
  supervisorUrl: string;
  supervisorToken?: string;
}

function settingsFrom(env: NodeJS.ProcessEnv): Settings {
  const dataDir = env.ADDON_DATA_DIR || "/data";
  return {
    dataDir,
    userDir: env.ADDON_USER_DIR || "/config",
    optionsFile: env.ADDON_OPTIONS_FILE || join(dataDir, "options.json"),
    configFile: env.ADDON_CONFIG_FILE || join(dataDir, "config.yml"),
    supervisorUrl: (env.SUPERVISOR_URL || "http://supervisor").replace(/\/+$/, ""),
    supervisorToken: env.SUPERVISOR_TOKEN || undefined,
  };
}

const say = (line: string) => process.stdout.write(`[motioneye-vault add-on] ${line}\n`);

/** `GET <supervisor><path>`'s `data`, or undefined (said in the log) when it cannot be had. */
async function supervisorGet(s: Settings, path: string): Promise<unknown> {
  if (!s.supervisorToken) {
    say(`no SUPERVISOR_TOKEN: not asking the Supervisor for ${path}`);
    return undefined;
  }
  try {
    const res = await fetch(`${s.supervisorUrl}${path}`, {
      headers: { Authorization: `Bearer ${s.supervisorToken}` },
      signal: AbortSignal.timeout(SUPERVISOR_TIMEOUT_MS),
    });
    const body = (await res.json().catch(() => undefined)) as
      | { result?: string; data?: unknown; message?: string }
      | undefined;
    if (!res.ok || body?.result !== "ok") {
      say(`the Supervisor answered ${res.status} for ${path}: ${body?.message ?? "no data"}`);
      return undefined;
    }
    return body.data;
  } catch (err) {
    say(`could not reach the Supervisor for ${path}: ${(err as Error).message}`);
    return undefined;
  }
}

function asMqttService(data: unknown): MqttService | undefined {
  const d = data as Partial<MqttService> | undefined;
  if (!d || typeof d.host !== "string" || typeof d.port !== "number") return undefined;
  return d as MqttService;
}

/** The HTTP listener's token when the user set none: random, made once, kept in /data. */
async function generatedToken(dataDir: string): Promise<string> {
  const file = join(dataDir, "http-token");
  const kept = await readFile(file, "utf8").catch(() => "");
  if (kept.trim() !== "") return kept.trim();
  const token = randomBytes(24).toString("base64url");
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  return token;
}

async function writeAtomically(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, path);
}

export async function main(env: NodeJS.ProcessEnv): Promise<number> {
  const s = settingsFrom(env);
  let options: AddonOptions;
  try {
    options = JSON.parse(await readFile(s.optionsFile, "utf8")) as AddonOptions;
  } catch (err) {
    say(`cannot read the add-on options ${s.optionsFile}: ${(err as Error).message}`);
    return 2;
  }

  const ownBroker = typeof options.mqtt_url === "string" && options.mqtt_url.trim() !== "";
  const [mqttData, selfInfo] = await Promise.all([
    ownBroker ? undefined : supervisorGet(s, "/services/mqtt"),
    supervisorGet(s, "/addons/self/info"),
  ]);
  const mqtt = asMqttService(mqttData);
  const slug = (selfInfo as { slug?: unknown } | undefined)?.slug;

  await mkdir(s.dataDir, { recursive: true });
  let config: Record<string, unknown>;
  try {
    config = addonConfig(options, {
      paths: { dataDir: s.dataDir, userDir: s.userDir },
      mqtt,
      slug: typeof slug === "string" ? slug : undefined,
      generatedHttpToken: await generatedToken(s.dataDir),
    });
  } catch (err) {
    if (!(err instanceof AddonOptionsError)) throw err;
    for (const p of err.problems) say(`option error: ${p}`);
    return 2;
  }
  await writeAtomically(
    s.configFile,
    `# Written by the add-on at each start from its options: edit those, not this file.\n${stringify(config)}`,
  );

  const source = config.source as { path: string };
  const destination = config.destination as { type: string; path?: string; host?: string };
  const where = destination.host ? `${destination.host}:${destination.path}` : destination.path;
  say(`clips from ${source.path} (local folder) to ${where} (${destination.type})`);
  if (ownBroker) say("MQTT: the broker set in mqtt_url");
  else if (mqtt)
    say(`MQTT: Home Assistant's broker ${mqtt.host}:${mqtt.port} (from the Supervisor)`);
  else
    say(
      "MQTT: no broker (install the Mosquitto broker add-on): schedule only, no Home Assistant device",
    );

  const identityFile = (config.encryption as { identityFile: string }).identityFile;
  if (existsSync(identityFile)) {
    try {
      const id = await loadIdentity(identityFile);
      say(`clips are encrypted to the age recipient ${id.recipient} (identity ${identityFile})`);
    } catch (err) {
      say(`the age identity ${identityFile} cannot be read: ${(err as Error).message}`);
    }
  } else {
    say(`no age identity yet: the first start makes ${identityFile} and prints its recipient`);
  }
  return 0;
}

process.exitCode = await main(process.env);
