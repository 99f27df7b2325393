/**
 * integrations/motioneye/motioneye.sh against a real mosquitto broker, asserted with a real
 * mosquitto_sub: both motionEye hook forms, awkward names, env overrides, and a broker that
 * is down or never answers.
 */
import { mkdtemp, rm, stat, symlink } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Broker, mosquittoSub, startMosquitto } from "../harness/mosquitto.js";
import { freePort } from "../harness/ports.js";
import { type CommandResult, runCommand } from "../harness/processes.js";

const SCRIPT = resolve(import.meta.dirname, "../../integrations/motioneye/motioneye.sh");

interface Run extends CommandResult {
  ms: number;
}

/** Runs the script as motion would (its own shebang), with only the given MQTT_* settings. */
async function runScript(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const clean: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith("MQTT_") && k !== "MOSQUITTO_PUB") clean[k] = v;
  }
  const t0 = Date.now();
  const result = await runCommand(SCRIPT, args, {
    env: { ...clean, ...env },
    allowFailure: true,
    timeoutMs: 20_000,
  });
  return { ...result, ms: Date.now() - t0 };
}

interface Payload {
  camera: string;
  file?: string;
  event: string;
  time: string;
}

describe("motioneye.sh", () => {
  let broker: Broker;
  let env: Record<string, string>;

  /** Runs the script and returns the one message it published under `filter`. */
  async function publishOne(args: string[], extraEnv: Record<string, string> = {}, filter = "#") {
    const sub = mosquittoSub(broker.url, filter, { count: 1, timeoutMs: 8000, qos: 1 });
    await sub.ready;
    const before = Date.now();
    const run = await runScript(args, { ...env, ...extraEnv });
    const messages = await sub;
    if (messages.length !== 1) {
      throw new Error(
        `expected 1 message, got ${messages.length}; script exit ${run.code} after ${run.ms} ms, stderr: ${run.stderr}\nbroker log:\n${broker.output().slice(-2000)}`,
      );
    }
    expect(run.code).toBe(0);
    expect(run.stderr).toBe("");
    const message = messages[0] as NonNullable<(typeof messages)[0]>;
    const payload = JSON.parse(message.payload) as Payload;
    expect(payload.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const t = Date.parse(payload.time);
    expect(t).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 - 1000);
    expect(t).toBeLessThanOrEqual(Date.now() + 1000);
    return { message, payload, run };
  }

  beforeAll(async () => {
    broker = await startMosquitto();
    env = { MQTT_HOST: broker.host, MQTT_PORT: String(broker.port) };
  });

  afterAll(async () => {
    await broker?.close();
  });

  it("is executable and POSIX sh", async () => {
    expect((await stat(SCRIPT)).mode & 0o111).toBe(0o111);
    await runCommand("sh", ["-n", SCRIPT]);
  });

  it("as the end command (%$): event_end on motioneye/<camera>/event, QoS 1, no file", async () => {
    const camera = 'Front "Door"';
    const { message, payload } = await publishOne([camera]);
    expect(message.topic).toBe('motioneye/Front "Door"/event');
    expect(message.qos).toBe(1);
    expect(message.retained).toBe(false);
    expect(Object.keys(payload)).toEqual(["camera", "event", "time"]);
    expect(payload).toMatchObject({ camera, event: "event_end" });
  });

  it("as the storage command (%$ %f): movie_end with the file, paths with spaces and quotes", async () => {
    const camera = 'Cam "1\\';
    const file = "/data/output/Cam \"1\\/2024-05-01/12 00 00 it's.mp4";
    const { message, payload } = await publishOne([camera, file]);
    expect(message.topic).toBe(`motioneye/${camera}/event`);
    expect(Object.keys(payload)).toEqual(["camera", "file", "event", "time"]);
    expect(payload).toMatchObject({ camera, file, event: "movie_end" });
  });

  it("no arguments: camera 'default'; an empty %f (end command quoted) counts as none", async () => {
    const a = await publishOne([]);
    expect(a.message.topic).toBe("motioneye/default/event");
    expect(a.payload).toMatchObject({ camera: "default", event: "event_end" });
    expect(a.payload.file).toBeUndefined();
    const b = await publishOne(["Camera1", ""]);
    expect(b.message.topic).toBe("motioneye/Camera1/event");
    expect(b.payload).toMatchObject({ camera: "Camera1", event: "event_end" });
    expect(b.payload.file).toBeUndefined();
  });

  it("puts back a camera name and path that motion split at spaces (unquoted %$ %f)", async () => {
    const { payload, message } = await publishOne([
      "Front",
      "Door",
      "/var/lib/motioneye/Front",
      "Door/2024-05-01/12-00-00.mp4",
    ]);
    expect(message.topic).toBe("motioneye/Front Door/event");
    expect(payload).toMatchObject({
      camera: "Front Door",
      file: "/var/lib/motioneye/Front Door/2024-05-01/12-00-00.mp4",
      event: "movie_end",
    });
  });

  it("only a file: the camera is the folder above the date folder", async () => {
    const { payload, message } = await publishOne(["/data/output/Camera2/2024-05-01/12-00-00.mp4"]);
    expect(message.topic).toBe("motioneye/Camera2/event");
    expect(payload).toMatchObject({ camera: "Camera2", event: "movie_end" });
  });

  it("escapes control characters, and keeps MQTT wildcards and '/' out of the topic", async () => {
    const camera = "a/b+c#d\tq\nz";
    const { payload, message } = await publishOne([camera]);
    expect(payload.camera).toBe(camera);
    expect(message.topic).toBe("motioneye/a_b_c_d_q_z/event");
    const unicode = await publishOne(["Garten – Tür ✓"]);
    expect(unicode.payload.camera).toBe("Garten – Tür ✓");
  });

  it("takes MQTT_TOPIC from the environment", async () => {
    const { message, payload } = await publishOne(
      ["Camera1", "/data/output/Camera1/2024-05-01/12-00-00.mp4"],
      { MQTT_TOPIC: "home/cameras/trigger" },
    );
    expect(message.topic).toBe("home/cameras/trigger");
    expect(payload.file).toBe("/data/output/Camera1/2024-05-01/12-00-00.mp4");
  });

  describe("with credentials", () => {
    let secure: Broker;
    const password = `pa ss "w'rd\\ $HOME`;

    beforeAll(async () => {
      secure = await startMosquitto({ username: "motioneye", password });
    });
    afterAll(async () => {
      await secure?.close();
    });

    it("MQTT_HOST/PORT/USER/PASSWORD from the environment reach a password-protected broker", async () => {
      const sub = mosquittoSub(secure.url, "motioneye/#", {
        count: 1,
        timeoutMs: 8000,
        username: "motioneye",
        password,
      });
      await sub.ready;
      const run = await runScript(["Camera9"], {
        MQTT_HOST: secure.host,
        MQTT_PORT: String(secure.port),
        MQTT_USER: "motioneye",
        MQTT_PASSWORD: password,
      });
      expect(run).toMatchObject({ code: 0, stderr: "" });
      const [message] = await sub;
      expect(message?.topic).toBe("motioneye/Camera9/event");
      expect(JSON.parse(message?.payload ?? "{}")).toMatchObject({ camera: "Camera9" });
    });

    it("a wrong password: exit 0 and a line on stderr, no password in it", async () => {
      const run = await runScript(["Camera9"], {
        MQTT_HOST: secure.host,
        MQTT_PORT: String(secure.port),
        MQTT_USER: "motioneye",
        MQTT_PASSWORD: "wrong-secret",
      });
      expect(run.code).toBe(0);
      expect(run.stderr).toMatch(/^motioneye\.sh: mosquitto_pub .*failed/);
      expect(run.stderr).not.toContain("wrong-secret");
    });
  });

  describe("when the broker is down", () => {
    it("connection refused: exits 0 at once, says so on stderr", async () => {
      const port = await freePort(); // nothing listens there
      const run = await runScript(["Camera1", "/data/output/Camera1/2024-05-01/12-00-00.mp4"], {
        MQTT_HOST: "127.0.0.1",
        MQTT_PORT: String(port),
        MQTT_TIMEOUT: "2",
      });
      expect(run.code).toBe(0);
      expect(run.ms).toBeLessThan(4000);
      expect(run.stderr).toContain(`127.0.0.1:${port}`);
      expect(run.stderr).toContain("failed");
      expect(run.stderr).toContain("12-00-00.mp4"); // what was lost is in the log
    });

    it("a broker that accepts but never answers: exits 0 within MQTT_TIMEOUT + 2 s", async () => {
      const held = new Set<net.Socket>();
      const blackHole = net.createServer((socket) => {
        held.add(socket);
        socket.on("error", () => {});
      });
      const port = await freePort();
      await new Promise<void>((r) => blackHole.listen(port, "127.0.0.1", r));
      try {
        const run = await runScript(["Camera1"], {
          MQTT_HOST: "127.0.0.1",
          MQTT_PORT: String(port),
          MQTT_TIMEOUT: "1",
        });
        expect(held.size).toBeGreaterThan(0); // it really did connect
        expect(run.code).toBe(0);
        expect(run.ms).toBeGreaterThanOrEqual(900);
        expect(run.ms).toBeLessThan(3000);
        expect(run.stderr).toContain("timed out after 1s");
      } finally {
        for (const s of held) s.destroy();
        await new Promise((r) => blackHole.close(r));
      }
    });

    it("mosquitto_pub not installed: exits 0 and says what to install", async () => {
      // a PATH with everything the script needs except mosquitto_pub
      const bin = await mkdtemp(join(tmpdir(), "motioneye-sh-path-"));
      try {
        for (const tool of [
          "awk",
          "date",
          "tr",
          "dirname",
          "basename",
          "timeout",
          "mktemp",
          "rm",
        ]) {
          const found = await runCommand("sh", ["-c", `command -v ${tool}`]);
          await symlink(found.stdout.trim(), join(bin, tool));
        }
        const run = await runScript(["Camera1"], { ...env, PATH: bin });
        expect(run.code).toBe(0);
        expect(run.stderr).toContain("mosquitto_pub not found (install mosquitto-clients)");
        expect(run.stderr).toContain('"camera":"Camera1"');
      } finally {
        await rm(bin, { recursive: true, force: true });
      }
    });
  });
});
