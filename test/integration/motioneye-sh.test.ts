/**
 * integrations/motioneye/motioneye.sh against a real mosquitto broker (asserted with a real
 * mosquitto_sub) and the real `serve`'s HTTP hook (asserted through the vault and its log):
 * both motionEye hook forms, the event labels, awkward names, settings from the environment and
 * from motioneye.env, busybox sh / dash / bash, a busybox-only PATH as on motionEyeOS, no
 * mosquitto_pub, no `timeout` at all, and brokers or vaults that are down or never answer.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import {
  chmod,
  copyFile,
  mkdir,
  mkdtemp,
  readFile,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ageCliDecrypt } from "../harness/age.js";
import { tempDir, writeConfig } from "../harness/files.js";
import { type Broker, mosquittoSub, startMosquitto } from "../harness/mosquitto.js";
import { freePort } from "../harness/ports.js";
import { type CommandResult, runCommand } from "../harness/processes.js";
import { ServeProcess, waitFor } from "../harness/serve.js";

const SCRIPT = resolve(import.meta.dirname, "../../integrations/motioneye/motioneye.sh");
const SHELLS = [["busybox", "sh"], ["dash"], ["bash"]];
const SETTINGS = /^(MQTT_|VAULT_|MOSQUITTO_PUB$|CURL$|MOTIONEYE_ENV$)/;

interface Run extends CommandResult {
  ms: number;
}

interface RunOptions {
  /** The shell to run it with (default: its own shebang, as motion does). */
  shell?: string[];
  /** Another copy of the script (e.g. one with a motioneye.env beside it). */
  script?: string;
}

/** Runs the script as motion would, with only the given settings in the environment. */
async function runScript(
  args: string[],
  env: Record<string, string> = {},
  opts: RunOptions = {},
): Promise<Run> {
  const clean: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!SETTINGS.test(k)) clean[k] = v;
  const script = opts.script ?? SCRIPT;
  const [command, ...shellArgs] = opts.shell ?? [script];
  const t0 = Date.now();
  const result = await runCommand(
    // The shell from this machine's PATH, which the script's PATH may not have.
    opts.shell ? await programPath(command as string) : (command as string),
    opts.shell ? [...shellArgs, script, ...args] : args,
    { env: { ...clean, ...env }, allowFailure: true, timeoutMs: 20_000 },
  );
  return { ...result, ms: Date.now() - t0 };
}

const tempDirs: string[] = [];
afterAll(async () => {
  await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** A folder of symlinks (name -> program) to use as the whole PATH. */
async function binDir(tools: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "motioneye-sh-path-"));
  tempDirs.push(dir);
  for (const [name, target] of Object.entries(tools)) await symlink(target, join(dir, name));
  return dir;
}

/** Where this machine's program `name` is. */
async function programPath(name: string): Promise<string> {
  return (await runCommand("sh", ["-c", `command -v ${name}`])).stdout.trim();
}

/** This machine's programs of these names (GNU coreutils and friends). */
async function systemTools(names: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of names) out[name] = await programPath(name);
  return out;
}

/** Every busybox applet (as motionEyeOS has them), but those in `except`. */
async function busyboxApplets(except: string[] = []): Promise<Record<string, string>> {
  const busybox = await programPath("busybox");
  const list = (await runCommand(busybox, ["--list"])).stdout.split("\n").filter(Boolean);
  return Object.fromEntries(list.filter((a) => !except.includes(a)).map((a) => [a, busybox]));
}

/** What the script needs besides the shell's builtins, from GNU coreutils. */
const GNU_TOOLS = ["awk", "date", "tr", "sed", "cut", "cat", "dirname", "basename", "mktemp", "rm"];

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
  async function publishOne(
    args: string[],
    extraEnv: Record<string, string> = {},
    filter = "#",
    opts: RunOptions = {},
  ) {
    const sub = mosquittoSub(broker.url, filter, { count: 1, timeoutMs: 8000, qos: 1 });
    await sub.ready;
    const before = Date.now();
    const run = await runScript(args, { ...env, ...extraEnv }, opts);
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

  describe.each(SHELLS)("under %s", (...shell) => {
    it("labels the event: movie_end for a movie, picture_save for a picture, event_end without a file", async () => {
      const file = "/var/lib/motioneye/Camera1/2024-05-01/12-00-00.mp4";
      const movie = await publishOne(["Camera1", file], {}, "#", { shell });
      expect(movie.payload).toMatchObject({ camera: "Camera1", file, event: "movie_end" });
      const jpg = "/var/lib/motioneye/Camera1/2024-05-01/12-00-01.JPG";
      const picture = await publishOne(["Camera1", jpg], {}, "#", { shell });
      expect(picture.payload).toMatchObject({ file: jpg, event: "picture_save" });
      const end = await publishOne(["Camera 1"], {}, "#", { shell });
      expect(end.message.topic).toBe("motioneye/Camera 1/event");
      expect(end.payload).toMatchObject({ camera: "Camera 1", event: "event_end" });
    });

    it("reads its settings from motioneye.env beside it; the environment wins", async () => {
      const dir = await mkdtemp(join(tmpdir(), "motioneye-sh-env-"));
      tempDirs.push(dir);
      const script = join(dir, "motioneye.sh");
      await copyFile(SCRIPT, script);
      await chmod(script, 0o755);
      await writeFile(
        join(dir, "motioneye.env"),
        [
          "# motioneye.env",
          `MQTT_HOST=${broker.host}`,
          `export MQTT_PORT="${broker.port}"`,
          "  MQTT_TOPIC='cams/from file'\r",
          "VAULT_SOURCE=garage",
          "",
        ].join("\n"),
      );
      const fromFile = await publishOne(["Camera1"], { MQTT_HOST: "", MQTT_PORT: "" }, "#", {
        shell,
        script,
      });
      expect(fromFile.message.topic).toBe("cams/from file");
      expect(fromFile.payload).toMatchObject({ camera: "Camera1", source: "garage" });
      expect(Object.keys(fromFile.payload)).toEqual(["camera", "event", "source", "time"]);
      const fromEnv = await publishOne(["Camera1"], { MQTT_TOPIC: "cams/from-env" }, "#", {
        shell,
        script,
      });
      expect(fromEnv.message.topic).toBe("cams/from-env");
      // MOTIONEYE_ENV names another file; an unknown key there is reported, not fatal.
      const other = join(dir, "other.env");
      await writeFile(other, `MQTT_TOPIC=cams/other\nMQTT_HOTS=typo\n`);
      const sub = mosquittoSub(broker.url, "cams/other", { count: 1, timeoutMs: 8000, qos: 1 });
      await sub.ready;
      const run = await runScript(["Camera1"], { ...env, MOTIONEYE_ENV: other }, { shell, script });
      expect((await sub).length).toBe(1);
      expect(run).toMatchObject({ code: 0 });
      expect(run.stderr).toContain("unknown setting 'MQTT_HOTS' ignored");
    });
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

    /**
     * A broker that accepts connections and never answers: mosquitto_pub would wait forever.
     * The script must stop it after MQTT_TIMEOUT (1 s here), whatever `timeout` it has.
     */
    async function neverAnswers(stoppedBy: string, opts: RunOptions & { path?: string }) {
      const held = new Set<net.Socket>();
      const open = new Set<net.Socket>();
      const blackHole = net.createServer((socket) => {
        held.add(socket);
        open.add(socket);
        socket.on("close", () => open.delete(socket));
        socket.on("error", () => {});
        socket.resume(); // read (and drop) what it sends, so its close is seen
      });
      const port = await freePort();
      await new Promise<void>((r) => blackHole.listen(port, "127.0.0.1", r));
      try {
        const run = await runScript(
          ["Camera1"],
          {
            MQTT_HOST: "127.0.0.1",
            MQTT_PORT: String(port),
            MQTT_TIMEOUT: "1",
            ...(opts.path ? { PATH: opts.path } : {}),
          },
          opts,
        );
        expect(held.size).toBeGreaterThan(0); // it really did connect
        expect(run.code).toBe(0);
        expect(run.stderr).toContain(`timed out after 1s (stopped by ${stoppedBy})`);
        expect(run.stderr.trim().split("\n")).toHaveLength(1); // one line, no shell noise
        expect(run.ms).toBeGreaterThanOrEqual(900);
        expect(run.ms).toBeLessThan(4000);
        // mosquitto_pub was stopped, not left behind: its connection is gone.
        await waitFor(() => open.size === 0, "mosquitto_pub's connection to close");
      } finally {
        for (const s of held) s.destroy();
        await new Promise((r) => blackHole.close(r));
      }
    }

    it("a broker that never answers, GNU timeout: exits 0 after MQTT_TIMEOUT", async () => {
      await neverAnswers("timeout", {});
    });

    it("... busybox's timeout, on a busybox-only PATH as on motionEyeOS", async () => {
      const pub = await systemTools(["mosquitto_pub"]);
      const path = await binDir({ ...(await busyboxApplets()), ...pub });
      await neverAnswers("timeout", { shell: ["busybox", "sh"], path });
    });

    it("... an older busybox's `timeout -t SECS` syntax", async () => {
      // A stand-in for busybox < 1.30's applet, whose CLI was `timeout [-t SECS] PROG`: it
      // refuses `timeout SECS PROG` as that applet did, and runs busybox's own timeout.
      const dir = await mkdtemp(join(tmpdir(), "motioneye-sh-oldbusybox-"));
      tempDirs.push(dir);
      const shim = join(dir, "timeout");
      const busybox = await programPath("busybox");
      await writeFile(
        shim,
        [
          "#!/bin/sh",
          `[ "$1" = -t ] || { echo "timeout: can't execute '$1'" >&2; exit 127; }`,
          "shift; secs=$1; shift",
          `exec ${busybox} timeout "$secs" "$@"`,
          "",
        ].join("\n"),
      );
      await chmod(shim, 0o755);
      const pub = await systemTools(["mosquitto_pub"]);
      const path = await binDir({ ...(await busyboxApplets(["timeout"])), ...pub, timeout: shim });
      await neverAnswers("timeout -t", { shell: ["busybox", "sh"], path });
    });

    it.each(SHELLS)("... no `timeout` at all: its own watchdog (%s)", async (...shell) => {
      const pub = await systemTools(["mosquitto_pub"]);
      const path = await binDir({ ...(await busyboxApplets(["timeout"])), ...pub });
      await neverAnswers("this script's watchdog", { shell, path });
    });

    it("mosquitto_pub not installed and no VAULT_URL: exits 0 and says what to set", async () => {
      const bin = await binDir(await systemTools([...GNU_TOOLS, "timeout", "curl"]));
      const run = await runScript(["Camera1"], { ...env, PATH: bin });
      expect(run.code).toBe(0);
      expect(run.stderr).toContain("mosquitto_pub not found: set VAULT_URL");
      expect(run.stderr).toContain("install mosquitto-clients");
      expect(run.stderr).toContain('"camera":"Camera1"');
    });
  });
});

describe("motioneye.sh with a real serve: its HTTP hook (curl) and MQTT", () => {
  const TOKEN = "0a1b2c3d4e5f6789";
  const DAY = "2024-05-01";
  let work: string;
  let media: string;
  let vault: string;
  let identityFile: string;
  let serve: ServeProcess;
  let vaultUrl: string;
  let mqtt: Broker;
  /** busybox applets and curl, no mosquitto_pub: motionEyeOS. */
  let motioneyeOsPath: string;

  /** A movie motion just closed, in the camera's media root (the vault reads it locally). */
  async function newMovie(name: string, size: number): Promise<string> {
    const rel = `Camera1/${DAY}/${name}`;
    await mkdir(join(media, "Camera1", DAY), { recursive: true });
    await writeFile(join(media, rel), randomBytes(size));
    return rel;
  }

  async function expectBackedUp(rel: string): Promise<void> {
    const remote = join(vault, `${rel}.age`);
    await waitFor(() => existsSync(remote), remote, serve);
    const plain = await ageCliDecrypt(remote, identityFile);
    expect(plain.equals(await readFile(join(media, rel)))).toBe(true);
  }

  beforeAll(async () => {
    work = await tempDir();
    media = join(work, "media");
    vault = join(work, "vault");
    identityFile = join(work, "identity.txt");
    await mkdir(media, { recursive: true });
    mqtt = await startMosquitto();
    const port = await freePort();
    vaultUrl = `http://127.0.0.1:${port}`;
    const config = await writeConfig(work, {
      // A movie not named by a trigger waits 10 minutes: only the named one is backed up now.
      source: { type: "local", path: media, stableSeconds: 600 },
      destination: { type: "local", path: vault },
      encryption: { identityFile },
      state: { dir: join(work, "state") },
      mqtt: { url: mqtt.url, homeassistant: { enabled: false } },
      schedule: { sync: "" },
      http: { port, token: TOKEN },
      log: { level: "debug" },
    });
    serve = new ServeProcess(config);
    await waitFor(
      async () => (await fetch(`${vaultUrl}/healthz`).catch(() => undefined))?.status === 200,
      "serve's /healthz",
      serve,
    );
    motioneyeOsPath = await binDir({
      ...(await busyboxApplets()),
      ...(await systemTools(["curl"])),
    });
  });

  afterAll(async () => {
    if (serve?.alive) await serve.stop();
    await mqtt?.close();
    await rm(work, { recursive: true, force: true });
  });

  const syncRuns = async (): Promise<number> => {
    const res = await fetch(`${vaultUrl}/metrics`, {
      headers: { Authorization: `Bearer ${TOKEN}` },
    });
    const line = (await res.text())
      .split("\n")
      .find((l) => l.startsWith("motioneye_vault_sync_runs_total"));
    return Number(line?.split(" ")[1]);
  };

  it("motionEyeOS: busybox sh, no mosquitto_pub, settings in motioneye.env: the movie is backed up", async () => {
    const dir = await mkdtemp(join(tmpdir(), "motioneye-sh-os-"));
    tempDirs.push(dir);
    const script = join(dir, "motioneye.sh");
    await copyFile(SCRIPT, script);
    await writeFile(join(dir, "motioneye.env"), `VAULT_URL=${vaultUrl}/\nVAULT_TOKEN="${TOKEN}"\n`);
    const rel = await newMovie("10-00-00.mp4", 180_000);
    const mark = serve.output.length;
    const run = await runScript(
      ["Camera1", `/data/output/${rel}`],
      { PATH: motioneyeOsPath },
      { shell: ["busybox", "sh"], script },
    );
    expect(run).toMatchObject({ code: 0, stderr: "" });
    await expectBackedUp(rel);
    const hook = serve
      .logLines()
      .find((l) => l.msg === "HTTP trigger" && l.file === `/data/output/${rel}`);
    expect(hook).toMatchObject({ camera: "Camera1", event: "movie_end" });
    expect(serve.output.slice(mark)).not.toContain(TOKEN);
  });

  it("a picture is sent too, and the vault makes no run of it", async () => {
    const mark = serve.output.length;
    const jpg = `/data/output/Camera1/${DAY}/10-00-01.jpg`;
    const run = await runScript(
      ["Camera1", jpg],
      { PATH: motioneyeOsPath, VAULT_URL: vaultUrl, VAULT_TOKEN: TOKEN },
      { shell: ["busybox", "sh"] },
    );
    expect(run).toMatchObject({ code: 0, stderr: "" });
    await serve.waitForOutput(/HTTP trigger: not a clip, no run/, mark);
    const line = serve.logLines().find((l) => l.file === jpg);
    expect(line).toMatchObject({ event: "picture_save", level: 20 });
  });

  it("over MQTT as well: pictures and thumbnails make no run and no warning; a movie does", async () => {
    await serve.waitForOutput(/"msg":"serve running"/);
    const before = await syncRuns();
    const mark = serve.output.length;
    const mqttEnv = { MQTT_HOST: mqtt.host, MQTT_PORT: String(mqtt.port) };
    for (const name of ["10-03-01.jpg", "10-03-02.jpg", "10-03-00.mp4.thumb"]) {
      const run = await runScript(
        ["Camera1", `/var/lib/motioneye/Camera1/${DAY}/${name}`],
        mqttEnv,
      );
      expect(run).toMatchObject({ code: 0, stderr: "" });
    }
    await serve.waitForOutput(/MQTT trigger: not a clip, no run/, mark, 3);
    const rel = await newMovie("10-03-00.mp4", 100_000);
    const run = await runScript(["Camera1", `/var/lib/motioneye/${rel}`], mqttEnv);
    expect(run).toMatchObject({ code: 0, stderr: "" });
    await expectBackedUp(rel);
    expect(await syncRuns()).toBe(before + 1); // the movie's run, none for the pictures
    expect(serve.output.slice(mark)).not.toMatch(/"level":40/);
  });

  it("VAULT_URL set: the hook is used even where mosquitto_pub is installed (dash, GNU tools)", async () => {
    const rel = await newMovie("10-01-00.mp4", 120_000);
    const run = await runScript(
      ["Camera1", `/var/lib/motioneye/${rel}`],
      { VAULT_URL: vaultUrl, VAULT_TOKEN: TOKEN, MQTT_HOST: "127.0.0.1", MQTT_PORT: "1" },
      { shell: ["dash"] },
    );
    expect(run).toMatchObject({ code: 0, stderr: "" });
    await expectBackedUp(rel);
  });

  it("a wrong token: exit 0, HTTP 401 on stderr, without the token", async () => {
    const run = await runScript(
      ["Camera1"],
      { PATH: motioneyeOsPath, VAULT_URL: vaultUrl, VAULT_TOKEN: "not-the-token" },
      { shell: ["busybox", "sh"] },
    );
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/refused the token \(HTTP 401\)/);
    expect(run.stderr).not.toContain("not-the-token");
  });

  it("the vault is down: exit 0 at once, says so", async () => {
    const down = `http://127.0.0.1:${await freePort()}`;
    const run = await runScript(
      ["Camera1", `/data/output/Camera1/${DAY}/10-02-00.mp4`],
      { PATH: motioneyeOsPath, VAULT_URL: down, VAULT_TOKEN: TOKEN, VAULT_TIMEOUT: "2" },
      { shell: ["busybox", "sh"] },
    );
    expect(run.code).toBe(0);
    expect(run.ms).toBeLessThan(4000);
    expect(run.stderr).toContain(`curl to ${down}/hook failed (exit 7)`);
    expect(run.stderr).toContain("10-02-00.mp4"); // what was lost is in the log
    expect(run.stderr).not.toContain(TOKEN);
  });

  it("a vault that accepts and never answers: exit 0 after VAULT_TIMEOUT", async () => {
    const held = new Set<net.Socket>();
    const blackHole = net.createServer((socket) => {
      held.add(socket);
      socket.on("error", () => {});
    });
    const port = await freePort();
    await new Promise<void>((r) => blackHole.listen(port, "127.0.0.1", r));
    try {
      const run = await runScript(
        ["Camera1"],
        { PATH: motioneyeOsPath, VAULT_URL: `http://127.0.0.1:${port}`, VAULT_TIMEOUT: "1" },
        { shell: ["busybox", "sh"] },
      );
      expect(held.size).toBeGreaterThan(0);
      expect(run.code).toBe(0);
      expect(run.ms).toBeLessThan(4000);
      // curl's own --max-time or busybox's timeout, whichever comes first
      expect(run.stderr).toMatch(
        /did not answer within 1s \(stopped by timeout\)|failed \(exit 28\)/,
      );
    } finally {
      for (const s of held) s.destroy();
      await new Promise((r) => blackHole.close(r));
    }
  });
});
