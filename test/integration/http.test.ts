import { existsSync } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ageCliDecrypt } from "../harness/age.js";
import { runCli } from "../harness/cli.js";
import { ftpSource } from "../harness/config.js";
import { tempDir, writeConfig } from "../harness/files.js";
import { type FtpServer, startFtpServer } from "../harness/ftp.js";
import { freePort } from "../harness/ports.js";
import { ServeProcess, waitFor } from "../harness/serve.js";
import { motioneyeWebhook, type WebhookMethod } from "../harness/webhook.js";

/**
 * serve's HTTP listener as motionEye and Prometheus use it: the real `serve` with a vsftpd
 * camera and a local vault, called the way motionEye's "Call A Web Hook" calls (Python's
 * urllib, as meyectl does) in each of its four methods, by curl-like clients with junk, by a
 * Prometheus-like scraper, and checked through the vault's files, Debian's age and the log.
 */

const TOKEN = "f00dfeed1234cafe";
const DAY = "2024-05-01";

describe("serve's HTTP listener", () => {
  let ftp: FtpServer;
  let work: string;
  let vault: string;
  let identityFile: string;
  let port: number;
  let serve: ServeProcess;
  let base: string;

  const hookUrl = (file: string, token = TOKEN) =>
    `${base}/hook?token=${token}&camera=Camera1&file=/sdcard/${file}`;
  const bearer = { Authorization: `Bearer ${TOKEN}` };
  const metric = async (name: string): Promise<number> => {
    const res = await fetch(`${base}/metrics`, { headers: bearer });
    const text = await res.text();
    const line = text.split("\n").find((l) => l.startsWith(`${name}{source="default"} `));
    if (!line) throw new Error(`no ${name} in /metrics:\n${text}`);
    return Number(line.split(" ")[1]);
  };
  const healthz = async () => {
    const res = await fetch(`${base}/healthz`);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  /** The clip's encrypted copy appears, and Debian's age gives back the camera's bytes. */
  async function expectBackedUp(relPath: string): Promise<void> {
    const remote = join(vault, `${relPath}.age`);
    await waitFor(() => existsSync(remote), remote, serve);
    const plain = await ageCliDecrypt(remote, identityFile);
    expect(plain.equals(await readFile(join(ftp.localRoot, relPath)))).toBe(true);
  }

  beforeAll(async () => {
    [ftp, work, port] = await Promise.all([startFtpServer(), tempDir(), freePort()]);
    vault = join(work, "vault");
    identityFile = join(work, "identity.txt");
    base = `http://127.0.0.1:${port}`;
    await ftp.writeClip(`Camera1/${DAY}/08-00-00.mp4`, 120_000);
    const config = await writeConfig(work, {
      // Clips not named by a trigger wait 10 minutes: only the hook's clip is backed up at once.
      source: ftpSource(ftp, { stableSeconds: 600 }),
      destination: { type: "local", path: vault },
      encryption: { identityFile },
      state: { dir: join(work, "state") },
      mqtt: { embeddedBroker: { enabled: false } },
      schedule: { sync: "" },
      sync: { retries: 0 },
      http: { port, token: TOKEN },
      log: { level: "debug" },
    });
    serve = new ServeProcess(config);
    await waitFor(
      async () => (await healthz().catch(() => ({ status: 0 }))).status === 200,
      "/healthz",
      serve,
    );
    await waitFor(
      () => existsSync(join(vault, `Camera1/${DAY}/08-00-00.mp4.age`)),
      "the startup run",
      serve,
    );
  });

  afterAll(async () => {
    if (serve?.alive) await serve.stop();
    await Promise.allSettled([ftp?.close(), rm(work, { recursive: true, force: true })]);
  });

  const methods: WebhookMethod[] = ["GET", "POST", "POSTf", "POSTj"];
  for (const [i, method] of methods.entries()) {
    it(`motionEye's web hook, method ${method}: 202 at once, and the named clip is backed up`, async () => {
      // motion runs the storage hook right after closing the movie: its mtime is fresh.
      const clip = await ftp.writeClip(`Camera1/${DAY}/10-0${i}-00.mp4`, 200_000 + i, new Date());
      const answer = await motioneyeWebhook(method, hookUrl(clip.relPath));
      expect(answer.status).toBe(202);
      expect(JSON.parse(answer.body)).toMatchObject({
        queued: true,
        clips: [clip.relPath, clip.relPath.slice("Camera1/".length)],
      });
      await expectBackedUp(clip.relPath);
    });
  }

  it("motioneye.sh's fallback: JSON with the token, or a form with a Bearer header", async () => {
    const a = await ftp.writeClip(`Camera1/${DAY}/11-00-00.mp4`, 150_000, new Date());
    const json = await fetch(`${base}/hook`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        camera: "Camera1",
        file: `/var/lib/motioneye/${a.relPath}`,
        event: "movie_end",
        time: new Date().toISOString(),
        token: TOKEN,
      }),
    });
    expect(json.status).toBe(202);
    await expectBackedUp(a.relPath);
    const b = await ftp.writeClip(`Camera1/${DAY}/11-01-00.mp4`, 150_001, new Date());
    const form = await fetch(`${base}/hook`, {
      method: "POST",
      headers: bearer,
      body: new URLSearchParams({ camera: "Camera1", file: `/sdcard/${b.relPath}` }),
    });
    expect(form.status).toBe(202);
    await expectBackedUp(b.relPath);
  });

  it("401 without the right token, on /hook and /metrics; /healthz needs none", async () => {
    const clip = `Camera1/${DAY}/12-00-00.mp4`;
    for (const method of methods) {
      expect((await motioneyeWebhook(method, hookUrl(clip, "wrong"))).status, method).toBe(401);
    }
    const runsBefore = await metric("motioneye_vault_sync_runs_total");
    const refused = [
      await fetch(`${base}/hook`),
      await fetch(`${base}/hook?token=${TOKEN}x`),
      await fetch(`${base}/hook`, { headers: { Authorization: "Bearer nope" } }),
      await fetch(`${base}/hook`, { headers: { Authorization: `Basic ${TOKEN}` } }),
      await fetch(`${base}/hook`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token: TOKEN.slice(0, -1) }),
      }),
      await fetch(`${base}/metrics`),
      await fetch(`${base}/metrics?token=wrong`),
    ];
    for (const res of refused) {
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
    }
    expect((await fetch(`${base}/metrics?token=${TOKEN}`)).status).toBe(200);
    expect((await healthz()).status).toBe(200);
    expect(await metric("motioneye_vault_sync_runs_total")).toBe(runsBefore); // no run asked
  });

  it("400 for junk, 405 for other methods, 404 elsewhere; never a crash", async () => {
    const post = (body: BodyInit, type = "application/json") =>
      fetch(`${base}/hook`, { method: "POST", headers: { ...bearer, "Content-Type": type }, body });
    const junk: Array<[Promise<Response>, RegExp]> = [
      [post("{not json"), /not valid JSON/],
      [post("[1,2]"), /must be an object/],
      [post('"just a string"'), /must be an object/],
      [post(JSON.stringify({ file: 5 })), /"file" must be a string, not a number/],
      [
        post(JSON.stringify({ file: `/sdcard/Camera1/${DAY}/../../etc/x.mp4` })),
        /"\.\." is not allowed/,
      ],
      [post(JSON.stringify({ camera: "C", pad: "x".repeat(20_000) })), /larger than 8192 bytes/],
      [post(Buffer.from([0xff, 0xfe, 0x00, 0x41])), /not UTF-8/],
      [post("<xml/>", "application/xml"), /is not understood/],
    ];
    for (const [pending, message] of junk) {
      const res = await pending;
      expect(res.status, String(message)).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(message);
    }
    for (const method of ["PUT", "DELETE", "PATCH"]) {
      const res = await fetch(`${base}/hook`, { method, headers: bearer });
      expect(res.status).toBe(405);
      expect(res.headers.get("allow")).toBe("GET, POST");
    }
    expect((await fetch(`${base}/healthz`, { method: "POST" })).status).toBe(405);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    // Not HTTP at all.
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(port, "127.0.0.1", () =>
        socket.write("\u0000\u0001 GARBAGE\r\n\r\n"),
      );
      let got = "";
      socket.on("data", (d) => {
        got += d.toString();
      });
      socket.on("close", () => resolve(got));
      socket.on("error", reject);
    });
    expect(raw).toMatch(/^HTTP\/1\.1 400 /);
    expect(serve.alive).toBe(true);
    expect((await healthz()).status).toBe(200);
  });

  it("a picture (or a .thumb) makes no run and no warning", async () => {
    await waitFor(async () => (await metric("motioneye_vault_syncing")) === 0, "idle", serve);
    const runsBefore = await metric("motioneye_vault_sync_runs_total");
    const mark = serve.output.length;
    for (const name of ["12-00-01.jpg", "12-00-02.jpg", "10-00-00.mp4.thumb"]) {
      const answer = await motioneyeWebhook("POSTj", hookUrl(`Camera1/${DAY}/${name}`));
      expect(answer.status).toBe(202);
      expect(JSON.parse(answer.body)).toMatchObject({ queued: false });
    }
    // A plain trigger after them does run: the pictures were not just slow to start one.
    await motioneyeWebhook("GET", `${base}/hook?camera=Camera1&token=${TOKEN}`);
    await waitFor(
      async () => (await metric("motioneye_vault_sync_runs_total")) === runsBefore + 1,
      "the plain trigger's run",
      serve,
    );
    await waitFor(async () => (await metric("motioneye_vault_syncing")) === 0, "idle", serve);
    expect(await metric("motioneye_vault_sync_runs_total")).toBe(runsBefore + 1);
    const lines = serve.output.slice(mark);
    expect(lines).not.toMatch(/"level":40/);
    expect(lines.match(/not a clip, no run/g)).toHaveLength(3);
  });

  it("/metrics counts the clips backed up, in the Prometheus text format", async () => {
    const res = await fetch(`${base}/metrics`, { headers: bearer });
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toContain("# TYPE motioneye_vault_clips_backed_up_total counter");
    expect(text).toContain("# TYPE motioneye_vault_pending_clips gauge");
    // The startup run's clip, the four web hook clips and the two of motioneye.sh's fallback.
    const backedUp = 1 + methods.length + 2;
    expect(await metric("motioneye_vault_clips_backed_up_total")).toBe(backedUp);
    const bytes = 120_000 + (200_000 + 200_001 + 200_002 + 200_003) + 150_000 + 150_001;
    expect(await metric("motioneye_vault_bytes_backed_up_total")).toBe(bytes);
    expect(await metric("motioneye_vault_stored_clips")).toBe(backedUp);
    expect(await metric("motioneye_vault_sync_failures_total")).toBe(0);
    expect(await metric("motioneye_vault_pending_clips")).toBe(0);
    const lastSuccess = await metric("motioneye_vault_last_success_timestamp_seconds");
    expect(lastSuccess).toBeGreaterThan(Date.now() / 1000 - 600);
    expect(lastSuccess).toBeLessThanOrEqual(Date.now() / 1000);
  });

  it("/healthz: 503 once runs keep failing (the vault is gone), 200 again when it is back", async () => {
    expect(await healthz()).toMatchObject({ status: 200, body: { ok: true, problems: [] } });
    // The vault's folder is replaced by a file: no upload can succeed.
    await rename(vault, `${vault}.away`);
    await writeFile(vault, "not a folder");
    const clip = await ftp.writeClip(`Camera1/${DAY}/13-00-00.mp4`, 90_000, new Date());
    for (let failures = 1; failures <= 3; failures++) {
      expect((await motioneyeWebhook("POSTj", hookUrl(clip.relPath))).status).toBe(202);
      await waitFor(
        async () => (await metric("motioneye_vault_sync_failures_total")) === failures,
        `failed run ${failures}`,
        serve,
      );
    }
    const failing = await healthz();
    expect(failing.status).toBe(503);
    expect(failing.body).toMatchObject({ ok: false, status: "failing" });
    expect((failing.body.problems as string[]).join()).toMatch(/the last 3 sync runs failed/);
    expect(JSON.stringify(failing.body)).not.toContain("13-00-00"); // nothing about clips

    await rm(vault);
    await rename(`${vault}.away`, vault);
    await mkdir(vault, { recursive: true });
    expect((await motioneyeWebhook("POSTj", hookUrl(clip.relPath))).status).toBe(202);
    await expectBackedUp(clip.relPath);
    await waitFor(async () => (await healthz()).status === 200, "healthy again", serve);
  });

  it("300 random requests: every one answered with a 2xx or 4xx, never a crash", async () => {
    let seed = 0x5eed;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    const pick = <T>(xs: readonly T[]): T => xs[rand(xs.length)] as T;
    const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => rand(256)));
    const bodies = [
      () => bytes(rand(3000)),
      () =>
        JSON.stringify({ camera: bytes(8).toString("latin1"), file: bytes(40).toString("latin1") }),
      () =>
        JSON.stringify({
          file: `/sdcard/Camera1/${DAY}/${bytes(10).toString("hex")}.mp4`,
          token: TOKEN,
        }),
      () => `file=${encodeURIComponent(bytes(30).toString("latin1"))}&token=${TOKEN}`,
      () => "{".repeat(rand(5000)),
      () => "",
    ];
    for (let i = 0; i < 300; i++) {
      const method = pick(["GET", "POST", "POST", "PUT", "HEAD", "OPTIONS"]);
      const path = pick(["/hook", "/hook", "/healthz", "/metrics", `/${bytes(4).toString("hex")}`]);
      const query = rand(2) ? `?file=${encodeURIComponent(bytes(20).toString("latin1"))}` : "";
      const type = pick([
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
        "x/y",
      ]);
      const withBody = method !== "GET" && method !== "HEAD";
      const res = await fetch(`${base}${path}${query}`, {
        method,
        headers: { ...(rand(2) ? bearer : {}), "Content-Type": type },
        ...(withBody ? { body: pick(bodies)() } : {}),
      });
      await res.arrayBuffer();
      expect(res.status >= 200 && res.status < 500, `${method} ${path}: ${res.status}`).toBe(true);
    }
    expect(serve.alive).toBe(true);
    expect(serve.output).not.toMatch(/\n\s+at .*\(.*:\d+:\d+\)/); // no stack trace
    expect((await healthz()).status).toBe(200);
  });

  it("logs every request at debug without the token, and stops on SIGTERM with exit 0", async () => {
    const requests = serve.logLines().filter((l) => l.msg === "http request");
    for (const status of [202, 400, 401, 404, 405]) {
      expect(
        requests.some((l) => l.status === status),
        String(status),
      ).toBe(true);
    }
    for (const line of requests) {
      expect(Object.keys(line)).toEqual(expect.arrayContaining(["method", "path", "status", "ms"]));
      expect(String(line.path)).not.toContain("?");
    }
    expect(requests.some((l) => l.path === "/hook" && l.status === 401)).toBe(true);
    expect(serve.output).toContain('"msg":"HTTP trigger"');
    expect(serve.output).not.toContain(TOKEN);
    expect(await serve.stop()).toBe(0);
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  });

  it("refuses to start listening on every address without a token (config error, exit 2)", async () => {
    const dir = await tempDir();
    try {
      const config = await writeConfig(dir, {
        state: { dir: join(dir, "state") },
        http: { host: "0.0.0.0", port },
      });
      const run = await runCli(["serve", "--config", config]);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain(
        "http.token: is required when http.host (0.0.0.0) is not a loopback address",
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
