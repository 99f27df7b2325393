/**
 * Issue 11, must-show 2: the same real camera the motionEyeOS way. No MQTT anywhere (motionEyeOS
 * has no mosquitto_pub; serve runs without a broker) and no schedule: only serve's HTTP `/hook`
 * can start a backup. Two cameras on one ProFTPD (as motionEyeOS serves them):
 *  - Camera1 runs integrations/motioneye/motioneye.sh under busybox `sh` with motionEyeOS's
 *    PATH (busybox applets and curl), its settings in a motioneye.env beside it: it must fall
 *    back to curl -> /hook;
 *  - Camera2 uses motionEye's own "Call A Web Hook" (POST json, `meyectl webhook POSTj URL`,
 *    the token in the URL's query, which motionEye moves into the JSON body).
 * Every movie must be backed up whole; `/hook` refuses a missing or wrong token (401) and junk
 * (400), `/metrics` counts the clips, `/healthz` says 200, serve stays up and exits 0 on SIGTERM.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ageCliDecrypt } from "../harness/age.js";
import { sftpDestination } from "../harness/config.js";
import { type DestinationWatch, watchDestination } from "../harness/destinationWatch.js";
import { ffprobe } from "../harness/ffprobe.js";
import { tempDir, walk, writeConfig } from "../harness/files.js";
import { type MotionCamera, type RecordedMovie, startMotion } from "../harness/motion.js";
import { installMotioneyeSh, motioneyeOsPath } from "../harness/motioneyeos.js";
import { freePort } from "../harness/ports.js";
import { type ProftpdServer, startProftpd } from "../harness/proftpd.js";
import { ServeProcess } from "../harness/serve.js";
import { type SftpServer, startSftpServer } from "../harness/sshd.js";

const EVENTS_PER_CAMERA = 2;
const EVENT_SECONDS = 2;

describe("a motionEyeOS camera: motioneye.sh's curl fallback and motionEye's POST json web hook", () => {
  let ftp: ProftpdServer;
  let sftp: SftpServer;
  let work: string;
  let serve: ServeProcess;
  let shellCamera: MotionCamera;
  let webHookCamera: MotionCamera;
  let watch: DestinationWatch;
  let identityFile: string;
  let vaultUrl: string;
  const token = randomBytes(16).toString("hex");
  const movies: RecordedMovie[] = [];
  const vault = () => join(sftp.root, "vault");

  async function backedUpWhole(movie: RecordedMovie): Promise<boolean> {
    try {
      const plain = await ageCliDecrypt(join(vault(), `${movie.relPath}.age`), identityFile);
      return plain.equals(await readFile(movie.path));
    } catch {
      return false;
    }
  }

  async function recordAndBackUp(camera: MotionCamera): Promise<RecordedMovie[]> {
    const recorded: RecordedMovie[] = [];
    for (let i = 0; i < EVENTS_PER_CAMERA; i++)
      recorded.push(await camera.recordEvent(EVENT_SECONDS));
    for (const movie of recorded) {
      expect((await ffprobe(movie.path)).ok, movie.path).toBe(true);
      await serve.until(() => backedUpWhole(movie), `${movie.relPath} backed up whole`, 30_000);
    }
    movies.push(...recorded);
    return recorded;
  }

  beforeAll(async () => {
    let port: number;
    [ftp, sftp, work, port] = await Promise.all([
      startProftpd(),
      startSftpServer(),
      tempDir("mev-real-camera-os-"),
      freePort(),
    ]);
    vaultUrl = `http://127.0.0.1:${port}`;
    identityFile = join(work, "identity.txt");
    await mkdir(vault());
    watch = watchDestination(vault());
    const config = await writeConfig(work, {
      source: {
        type: "ftp",
        host: ftp.host,
        port: ftp.port,
        user: ftp.user,
        password: ftp.password,
        path: ftp.path,
        stableSeconds: 2,
      },
      destination: sftpDestination(sftp, vault()),
      encryption: { identityFile },
      state: { dir: join(work, "state") },
      // no broker, no schedule: the HTTP hook is the only way in
      mqtt: { embeddedBroker: { enabled: false }, homeassistant: { enabled: false } },
      schedule: { sync: "" },
      http: { host: "127.0.0.1", port, token },
    });
    const path = await motioneyeOsPath(join(work, "motioneyeos"));
    const script = await installMotioneyeSh(join(work, "motioneyeos", "scripts"), {
      VAULT_URL: vaultUrl,
      VAULT_TOKEN: token,
    });
    const motionEyeOsEnv = { PATH: path, HOME: work, LANG: "C" };
    serve = new ServeProcess(config);
    // the cameras learn their scene while serve starts
    [shellCamera, webHookCamera] = await Promise.all([
      startMotion({
        root: ftp.localRoot,
        camera: "Camera1",
        storageCommand: `busybox sh ${script} %$ %f`,
        endCommand: `busybox sh ${script} %$`,
        env: motionEyeOsEnv,
      }),
      startMotion({
        root: ftp.localRoot,
        camera: "Camera2",
        storageWebHook: {
          method: "POSTj",
          url: `${vaultUrl}/hook?token=${token}&camera=%$&file=%f`,
        },
        env: motionEyeOsEnv,
      }),
      serve.until(
        async () => (await fetch(`${vaultUrl}/healthz`).catch(() => null))?.ok === true,
        "serve's /healthz",
      ),
    ]);
  }, 90_000);

  afterAll(async () => {
    await watch?.stop();
    await Promise.allSettled([shellCamera?.close(), webHookCamera?.close()]);
    if (serve?.alive) await serve.stop();
    await Promise.allSettled([ftp?.close(), sftp?.close()]);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("motioneye.sh under busybox sh, without mosquitto_pub, reaches /hook with curl", async () => {
    await recordAndBackUp(shellCamera);
    expect(shellCamera.output()).not.toMatch(/motioneye\.sh:.*(not found|failed|refused)/i);
  }, 90_000);

  it("motionEye's web hook (POST json) reaches /hook: every call accepted", async () => {
    const recorded = await recordAndBackUp(webHookCamera);
    const calls = webHookCamera.hooks().filter((c) => c.hook === "webhook");
    // one per movie and one per picture (File Storage's hook runs for both)
    expect(calls).toHaveLength(2 * recorded.length);
    for (const call of calls) {
      expect(call.method).toBe("POSTj");
      expect(call.url).toBe(`${vaultUrl}/hook`); // the query went into the body
      expect(JSON.parse(call.body ?? "{}")).toMatchObject({ token, camera: "Camera2" });
      expect(call.error, JSON.stringify(call)).toBeUndefined();
      expect(call.status).toBeGreaterThanOrEqual(200);
      expect(call.status).toBeLessThan(300);
    }
    const movieCalls = calls.filter((c) => JSON.parse(c.body ?? "{}").file?.endsWith(".mp4"));
    expect(movieCalls.map((c) => c.status)).toEqual(recorded.map(() => 202));
  }, 90_000);

  it("the destination holds every movie, each name only ever complete; no picture, no .thumb", async () => {
    await Promise.all(movies.map((m) => m.thumbnailReady));
    await watch.stop();
    expect(await walk(vault())).toEqual(movies.map((m) => `${m.relPath}.age`).sort());
    expect(Object.fromEntries(watch.rewritten())).toEqual({});
  });

  it("/hook: 401 without the token or with a wrong one, 400 for junk; serve stays up", async () => {
    const file = movies[0]?.path ?? "/x/Camera1/2024-05-01/12-00-00.mp4";
    const post = (body: string, headers: Record<string, string> = {}) =>
      fetch(`${vaultUrl}/hook`, {
        method: "POST",
        headers: { "Content-Type": "application/json", ...headers },
        body,
      });
    expect((await post(JSON.stringify({ camera: "Camera1", file }))).status).toBe(401);
    expect((await post(JSON.stringify({ camera: "Camera1", file, token: "nope" }))).status).toBe(
      401,
    );
    expect(
      (await post(JSON.stringify({ camera: "Camera1", file }), { Authorization: "Bearer nope" }))
        .status,
    ).toBe(401);
    expect((await post("{not json", { Authorization: `Bearer ${token}` })).status).toBe(400);
    expect(serve.alive).toBe(true);
  });

  it("/healthz is 200; /metrics (token required) counts the clips backed up", async () => {
    const health = await fetch(`${vaultUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(health.headers.get("content-type")).toMatch(/json/);
    expect((await fetch(`${vaultUrl}/metrics`)).status).toBe(401);
    const metrics = await fetch(`${vaultUrl}/metrics`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    expect(metrics.status).toBe(200);
    const text = await metrics.text();
    const counted = text
      .split("\n")
      .filter((l) => l.startsWith("motioneye_vault_clips_backed_up_total"))
      .reduce((sum, l) => sum + Number(l.trim().split(/\s+/).at(-1)), 0);
    expect(counted, text).toBe(movies.length);
    expect(text).not.toContain(token);
  });

  it("no warning for the pictures; SIGTERM exits 0", async () => {
    const pictureWarnings = serve
      .warnings()
      .filter((l) => JSON.stringify(l).match(/\.jpg|\.thumb|picture/i));
    expect(pictureWarnings).toEqual([]);
    expect(serve.output).not.toContain(token);
    expect(await serve.stop()).toBe(0);
  });
});
