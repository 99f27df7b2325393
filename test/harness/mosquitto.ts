/**
 * A real MQTT broker for tests (Debian `mosquitto -c <own conf>` on 127.0.0.1, a free port,
 * no persistence) and the real command-line clients `mosquitto_pub` / `mosquitto_sub`, the
 * very tools integrations/motioneye/motioneye.sh uses.
 */

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { freePort } from "./ports.js";
import { removeOnExit, restartableServer, runCommand, spawnServer, track } from "./processes.js";

const MOSQUITTO = "/usr/sbin/mosquitto";
const STDBUF = ["/usr/bin/stdbuf", "/bin/stdbuf"].find((p) => existsSync(p));

export interface Broker {
  /** `mqtt://127.0.0.1:<port>` (no credentials in it; see `username` / `password`). */
  url: string;
  host: "127.0.0.1";
  port: number;
  /** Set when the broker was started with credentials (then anonymous clients are refused). */
  username?: string;
  password?: string;
  /** The broker's process id while it runs, else null. */
  readonly pid: number | null;
  /** Stops the broker (clients are disconnected; nothing is persisted). */
  stop(): Promise<void>;
  /** Starts it again on the same port (no-op when running). */
  start(): Promise<void>;
  /** Stops and deletes its temporary folder. */
  close(): Promise<void>;
  /** The tail of the broker's log. */
  output(): string;
}

/** Starts mosquitto on a free port of 127.0.0.1; anonymous unless credentials are given. */
export async function startMosquitto(
  opts: { username?: string; password?: string } = {},
): Promise<Broker> {
  if ((opts.username === undefined) !== (opts.password === undefined)) {
    throw new Error("startMosquitto: give both username and password, or neither");
  }
  const work = await mkdtemp(path.join(os.tmpdir(), "mevault-mqtt-"));
  const forgetWork = removeOnExit(work);
  const port = await freePort();
  const confFile = path.join(work, "mosquitto.conf");
  const lines = [
    "# motioneye-vault test harness: a private broker on loopback",
    `listener ${port} 127.0.0.1`,
    "persistence false",
    // as root, mosquitto would switch to the 'mosquitto' user and lose access to this folder
    "user root",
    "log_dest stderr",
    "log_type error",
    "log_type warning",
    "log_type notice",
    "log_type information",
    "connection_messages true",
  ];
  if (opts.username !== undefined && opts.password !== undefined) {
    const passwordFile = path.join(work, "passwords");
    await runCommand("mosquitto_passwd", ["-b", "-c", passwordFile, opts.username, opts.password]);
    lines.push("allow_anonymous false", `password_file ${passwordFile}`);
  } else {
    lines.push("allow_anonymous true");
  }
  await writeFile(confFile, `${lines.join("\n")}\n`, { mode: 0o600 });

  const server = restartableServer(
    () => spawnServer(MOSQUITTO, ["-c", confFile], { name: `mosquitto:${port}` }),
    port,
  );
  const { start, stop } = server;
  await start();

  return {
    url: `mqtt://127.0.0.1:${port}`,
    host: "127.0.0.1",
    port,
    ...(opts.username !== undefined ? { username: opts.username, password: opts.password } : {}),
    get pid() {
      return server.pid;
    },
    stop,
    start,
    close: async () => {
      await stop();
      await rm(work, { recursive: true, force: true });
      forgetWork();
    },
    output: server.output,
  };
}

interface Credentials {
  username?: string;
  password?: string;
}

/** -h/-p/-u/-P arguments from `mqtt://[user[:pass]@]host[:port]`; explicit options win. */
function connectionArgs(url: string, creds: Credentials): string[] {
  const u = new URL(url);
  if (u.protocol !== "mqtt:") throw new Error(`only mqtt:// URLs are supported here: ${url}`);
  const args = ["-h", u.hostname || "127.0.0.1", "-p", u.port || "1883"];
  const username = creds.username ?? (u.username ? decodeURIComponent(u.username) : undefined);
  const password = creds.password ?? (u.password ? decodeURIComponent(u.password) : undefined);
  if (username !== undefined) args.push("-u", username);
  if (password !== undefined) args.push("-P", password);
  return args;
}

/**
 * Publishes one message with the real `mosquitto_pub`. An empty payload is sent as a
 * zero-length message (`-n`; retained, that clears the topic's retained message). Rejects
 * when mosquitto_pub fails, or after `timeoutMs` (default 10 s; it has no connect timeout).
 */
export async function mosquittoPub(
  url: string,
  topic: string,
  payload: string | Uint8Array,
  opts: { retain?: boolean; qos?: 0 | 1 | 2; timeoutMs?: number } & Credentials = {},
): Promise<void> {
  const args = [...connectionArgs(url, opts), "-t", topic, "-q", String(opts.qos ?? 0)];
  if (opts.retain) args.push("-r");
  const bytes = typeof payload === "string" ? Buffer.from(payload) : Buffer.from(payload);
  if (bytes.length === 0) {
    args.push("-n");
    await runCommand("mosquitto_pub", args, { timeoutMs: opts.timeoutMs ?? 10_000 });
  } else {
    args.push("-s"); // the whole of stdin is the message: any bytes, spaces, newlines
    await runCommand("mosquitto_pub", args, {
      input: bytes,
      timeoutMs: opts.timeoutMs ?? 10_000,
    });
  }
}

export interface MqttMessage {
  topic: string;
  /** The payload as UTF-8 text (`payloadBytes` for the raw bytes). */
  payload: string;
  payloadBytes: Buffer;
  retained: boolean;
  qos: number;
}

/**
 * A running `mosquitto_sub`. Await it for the messages. It ends when `count` messages
 * arrived, after `timeoutMs` (then it resolves with what arrived, possibly nothing), or on
 * `stop()`. Await `ready` (the broker acknowledged the subscription) before publishing
 * anything it must see.
 */
export type MosquittoSubscription = Promise<MqttMessage[]> & {
  ready: Promise<void>;
  stop(): Promise<MqttMessage[]>;
};

// One line per message: a fixed marker (debug lines from -d never start with it), the
// retained flag, QoS, topic and the payload in hex, so payloads may hold anything.
const FORMAT = "MSG\\t%r\\t%q\\t%t\\t%x";

/**
 * Subscribes with the real `mosquitto_sub` (`-F` formatted output, parsed exactly; `-C count`,
 * `-W` as a backstop for `timeoutMs`, `--retained-only` when asked: then only retained
 * messages are kept and it stops at the first live one). `topic` may be several filters.
 */
export function mosquittoSub(
  url: string,
  topic: string | string[],
  opts: {
    count?: number;
    timeoutMs: number;
    retainedOnly?: boolean;
    qos?: 0 | 1 | 2;
  } & Credentials,
): MosquittoSubscription {
  const args = [...connectionArgs(url, opts), "-d", "-F", FORMAT, "-q", String(opts.qos ?? 0)];
  for (const t of Array.isArray(topic) ? topic : [topic]) args.push("-t", t);
  if (opts.count !== undefined) args.push("-C", String(opts.count));
  if (opts.retainedOnly) args.push("--retained-only");
  args.push("-W", String(Math.ceil(opts.timeoutMs / 1000) + 2));

  const messages: MqttMessage[] = [];
  let subscribed = false;
  let stderr = "";
  let pending = "";
  let resolveReady!: () => void;
  let rejectReady!: (err: Error) => void;
  const ready = new Promise<void>((res, rej) => {
    resolveReady = res;
    rejectReady = rej;
  });
  ready.catch(() => {}); // callers that never await `ready` must not see an unhandled rejection

  // mosquitto_sub block-buffers stdout into a pipe: the "received SUBACK" debug line that
  // makes `ready` would only show up at exit. stdbuf -oL (coreutils) makes it line-buffered.
  const child = STDBUF
    ? spawn(STDBUF, ["-oL", "mosquitto_sub", ...args], { stdio: ["ignore", "pipe", "pipe"] })
    : spawn("mosquitto_sub", args, { stdio: ["ignore", "pipe", "pipe"] });
  if (!STDBUF) setTimeout(() => resolveReady(), 500).unref(); // best effort without stdbuf
  track(child, { name: "mosquitto_sub" });

  const onLine = (line: string) => {
    if (line.startsWith("MSG\t")) {
      const [, retained, qos, ...rest] = line.split("\t");
      const hex = rest.pop() ?? "";
      const payloadBytes = Buffer.from(hex, "hex");
      messages.push({
        topic: rest.join("\t"),
        payload: payloadBytes.toString("utf8"),
        payloadBytes,
        retained: retained === "1",
        qos: Number(qos),
      });
    } else if (line.includes("received SUBACK")) {
      subscribed = true;
      resolveReady();
    }
  };
  child.stdout.on("data", (chunk: Buffer) => {
    pending += chunk.toString("utf8");
    let nl = pending.indexOf("\n");
    while (nl >= 0) {
      onLine(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
      nl = pending.indexOf("\n");
    }
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString("utf8");
  });

  let stoppedByUs = false;
  const stopChild = () => {
    if (child.exitCode === null && child.signalCode === null) {
      stoppedByUs = true;
      child.kill("SIGTERM");
    }
  };
  const timer = setTimeout(stopChild, opts.timeoutMs);

  const done = new Promise<MqttMessage[]>((resolve, reject) => {
    child.once("error", (err) => {
      clearTimeout(timer);
      rejectReady(err);
      reject(new Error(`mosquitto_sub: ${err.message}`));
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      if (pending) onLine(pending);
      // 0: count reached or --retained-only ended; 27: its own -W timeout
      const ok = stoppedByUs || code === 0 || code === 27;
      if (ok) {
        // never leave `ready` pending
        if (subscribed || !STDBUF) resolveReady();
        else rejectReady(new Error("mosquitto_sub ended before it was subscribed"));
        resolve(messages);
      } else {
        const err = new Error(`mosquitto_sub ${args.join(" ")}: exit ${code}\n${stderr.trim()}`);
        rejectReady(err);
        reject(err);
      }
    });
  });

  return Object.assign(done, {
    ready,
    stop: () => {
      stopChild();
      return done;
    },
  });
}
