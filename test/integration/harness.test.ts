/**
 * The test harness itself: every real server starts, speaks to the real clients the product
 * and the benchmark use, restarts on the same port, and is really stopped.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Readable, Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { Client as FtpClient } from "basic-ftp";
import SftpClient from "ssh2-sftp-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clipBytes, type FtpServer, pseudoRandomBytes, startFtpServer } from "../harness/ftp.js";
import { type Broker, mosquittoPub, mosquittoSub, startMosquitto } from "../harness/mosquitto.js";
import { freePort, freePortRange } from "../harness/ports.js";
import { runCommand, waitForPort } from "../harness/processes.js";
import { type FaultProxy, startFaultProxy } from "../harness/proxy.js";
import { opensshSftpBatch, type SftpServer, startSftpServer } from "../harness/sshd.js";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const HARNESS = fileURLToPath(new URL("../harness/", import.meta.url));

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return !alive(pid);
}

function canConnect(port: number): Promise<boolean> {
  return waitForPort(port, 0).then(
    () => true,
    () => false,
  );
}

/** `ssh-keygen -lf` style fingerprint of the raw key ssh2's hostVerifier gets. */
function fingerprintOfRaw(key: Buffer): string {
  return `SHA256:${createHash("sha256").update(key).digest("base64").replace(/=+$/, "")}`;
}

function quietSftp(): SftpClient {
  return new SftpClient("harness-test", { end: () => {}, close: () => {}, error: () => {} });
}

async function sftpConnect(
  server: SftpServer,
  opts: { port?: number; pinned?: string; readyTimeout?: number } = {},
): Promise<SftpClient> {
  const client = quietSftp();
  const pinned = opts.pinned ?? server.hostKeyFingerprint;
  await client.connect({
    host: server.host,
    port: opts.port ?? server.port,
    username: server.username,
    privateKey: await readFile(server.privateKeyPath),
    readyTimeout: opts.readyTimeout ?? 10_000,
    hostVerifier: (key: Buffer) => fingerprintOfRaw(key) === pinned,
  });
  return client;
}

async function ftpConnect(server: FtpServer, password = server.password): Promise<FtpClient> {
  const client = new FtpClient(10_000);
  await client.access({ host: server.host, port: server.port, user: server.user, password });
  return client;
}

async function ftpDownload(client: FtpClient, remote: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  await client.downloadTo(sink, remote);
  return Buffer.concat(chunks);
}

describe("ports", () => {
  it("freePort gives a bindable port and freePortRange consecutive ones", async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(1023);
    expect(await canConnect(port)).toBe(false);
    const first = await freePortRange(5);
    expect(first).toBeGreaterThanOrEqual(12000);
    expect(first + 4).toBeLessThan(32000);
  });
});

describe("FTP (vsftpd)", () => {
  let ftp: FtpServer;
  const mtime = new Date("2024-05-01T12:00:07Z");

  beforeAll(async () => {
    const t0 = Date.now();
    ftp = await startFtpServer();
    expect(Date.now() - t0).toBeLessThan(5000);
  }, 30_000);
  afterAll(async () => {
    await ftp?.close();
  });

  it("serves a motionEyeOS-like tree with sizes and MDTM times, in passive mode", async () => {
    const clip = await ftp.writeClip("Camera1/2024-05-01/12-00-00.mp4", 200_000, mtime);
    await ftp.writeClip("Camera1/2024-05-01/12-00-00.mp4.thumb", "not really a jpeg", mtime);
    const other = await ftp.writeClip("Camera1/2024-05-01/13-30-00.mp4", Buffer.from("small"));
    expect(ftp.path).toBe("/sdcard");
    expect(ftp.localRoot.endsWith("/sdcard")).toBe(true);
    expect((await stat(clip.localPath)).mtime.getTime()).toBe(mtime.getTime());
    expect(Math.abs(other.mtime.getTime() - (Date.now() - 3600_000))).toBeLessThan(60_000);

    const client = await ftpConnect(ftp);
    try {
      expect(await client.pwd()).toBe("/");
      expect((await client.list("/")).map((f) => f.name)).toEqual(["sdcard"]);
      expect((await client.list("/sdcard")).map((f) => f.name)).toEqual(["Camera1"]);
      const list = await client.list("/sdcard/Camera1/2024-05-01");
      const sizes = Object.fromEntries(list.map((f) => [f.name, f.size]));
      expect(sizes).toEqual({
        "12-00-00.mp4": 200_000,
        "12-00-00.mp4.thumb": 17,
        "13-30-00.mp4": 5,
      });
      // MDTM has seconds (LIST only minutes) and is UTC
      expect((await client.lastMod(clip.ftpPath)).getTime()).toBe(mtime.getTime());
      expect(await client.size(clip.ftpPath)).toBe(200_000);

      const bytes = await ftpDownload(client, clip.ftpPath);
      expect(bytes.length).toBe(200_000);
      expect(sha256(bytes)).toBe(clip.sha256);
      expect(bytes.equals(clipBytes(200_000, clip.relPath))).toBe(true);
      expect((await ftpDownload(client, other.ftpPath)).toString()).toBe("small");

      // the FTP user owns the tree: it can write and delete (motionEye's own cleanup does)
      await client.uploadFrom(Readable.from([Buffer.from("x")]), "/sdcard/x");
      expect((await readFile(path.join(ftp.localRoot, "x"))).toString()).toBe("x");
      await client.remove("/sdcard/x");
    } catch (err) {
      throw new Error(`${err}\n${await readFile(ftp.logFile, "utf8").catch(() => "")}`);
    } finally {
      client.close();
    }
  });

  it("transfers a larger file intact", async () => {
    const big = await ftp.writeClip("Camera2/2024-05-02/00-00-01.mp4", 6 * 1024 * 1024 + 3);
    const client = await ftpConnect(ftp);
    try {
      const bytes = await ftpDownload(client, big.ftpPath);
      expect(sha256(bytes)).toBe(big.sha256);
    } finally {
      client.close();
    }
  });

  it("refuses a wrong password", async () => {
    await expect(ftpConnect(ftp, "wrong-password")).rejects.toThrow(/530/);
  });

  it("stops (sessions too) and starts again on the same port", async () => {
    const client = await ftpConnect(ftp);
    const pid = ftp.pid;
    expect(pid).toBeTypeOf("number");
    await ftp.stop();
    expect(ftp.pid).toBeNull();
    expect(await waitGone(pid as number, 2000)).toBe(true);
    expect(await canConnect(ftp.port)).toBe(false);
    await expect(client.list("/sdcard")).rejects.toThrow();
    client.close();

    await ftp.start();
    const again = await ftpConnect(ftp);
    try {
      expect((await again.list("/sdcard")).map((f) => f.name)).toContain("Camera1");
    } finally {
      again.close();
    }
  });
});

describe("SFTP (OpenSSH sshd)", () => {
  let sshd: SftpServer;

  beforeAll(async () => {
    const t0 = Date.now();
    sshd = await startSftpServer();
    expect(Date.now() - t0).toBeLessThan(5000);
  }, 30_000);
  afterAll(async () => {
    await sshd?.close();
  });

  it("reports the host key fingerprint as ssh-keygen -lf prints it", async () => {
    const { stdout } = await runCommand("ssh-keygen", ["-lf", sshd.hostPublicKeyPath]);
    expect(stdout.split(" ")[1]).toBe(sshd.hostKeyFingerprint);
    expect(sshd.hostKeyFingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(path.isAbsolute(sshd.root)).toBe(true);
  });

  it("works with ssh2-sftp-client: put, posixRename over an existing file, list, get", async () => {
    const client = await sftpConnect(sshd);
    try {
      const dir = `${sshd.root}/Camera1/2024-05-01`;
      await client.mkdir(dir, true);
      await client.put(Buffer.from("old"), `${dir}/a.mp4.age`);
      await client.put(Buffer.from("new content"), `${dir}/a.mp4.age.tmp`, {
        writeStreamOptions: { mode: 0o600 },
      });
      await client.posixRename(`${dir}/a.mp4.age.tmp`, `${dir}/a.mp4.age`);
      const list = await client.list(dir);
      expect(list.map((f) => [f.name, f.size])).toEqual([["a.mp4.age", 11]]);
      expect(((await client.get(`${dir}/a.mp4.age`)) as Buffer).toString()).toBe("new content");
      expect((await readFile(path.join(dir, "a.mp4.age"))).toString()).toBe("new content");
    } finally {
      await client.end();
    }
  });

  it("works with OpenSSH's sftp in batch mode", async () => {
    const local = await mkdtemp(path.join(os.tmpdir(), "mevault-harness-"));
    try {
      const data = pseudoRandomBytes(300_000, "openssh");
      await writeFile(path.join(local, "up.bin"), data);
      const out = await opensshSftpBatch(sshd, [
        `cd ${sshd.root}`,
        `put ${path.join(local, "up.bin")} up.bin`,
        "ls -l up.bin",
        `get up.bin ${path.join(local, "down.bin")}`,
      ]);
      expect(out).toContain("up.bin");
      expect((await readFile(path.join(sshd.root, "up.bin"))).equals(data)).toBe(true);
      expect((await readFile(path.join(local, "down.bin"))).equals(data)).toBe(true);
      await expect(opensshSftpBatch(sshd, ["get /no/such/file /tmp/x"])).rejects.toThrow();
    } finally {
      await rm(local, { recursive: true, force: true });
    }
  });

  it("restarts on the same port with the same host key, and can rotate it", async () => {
    const before = sshd.hostKeyFingerprint;
    const pid = sshd.pid as number;
    const open = await sftpConnect(sshd);
    await open.list(sshd.root);
    await sshd.stop();
    expect(await waitGone(pid, 2000)).toBe(true);
    // stopping the server drops open sessions too (sshd's per-connection children)
    await expect(open.list(sshd.root)).rejects.toThrow();
    await open.end().catch(() => {});
    expect(await canConnect(sshd.port)).toBe(false);
    await sshd.start();
    expect(sshd.hostKeyFingerprint).toBe(before);
    await (await sftpConnect(sshd)).end();

    const after = await sshd.rotateHostKey();
    expect(after).not.toBe(before);
    expect(sshd.hostKeyFingerprint).toBe(after);
    const { stdout } = await runCommand("ssh-keygen", ["-lf", sshd.hostPublicKeyPath]);
    expect(stdout.split(" ")[1]).toBe(after);
    // a client pinned to the old key must refuse the server now
    await expect(sftpConnect(sshd, { pinned: before })).rejects.toThrow();
    await (await sftpConnect(sshd)).end();
  });
});

describe("MQTT (mosquitto)", () => {
  let broker: Broker;
  let secured: Broker;

  beforeAll(async () => {
    const t0 = Date.now();
    [broker, secured] = await Promise.all([
      startMosquitto(),
      startMosquitto({ username: "vault", password: "s3cret pass" }),
    ]);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(broker.url).toBe(`mqtt://127.0.0.1:${broker.port}`);
  }, 30_000);
  afterAll(async () => {
    await Promise.all([broker?.close(), secured?.close()]);
  });

  it("mosquitto_pub reaches mosquitto_sub, payloads kept exactly", async () => {
    const sub = mosquittoSub(broker.url, "motioneye/+/event", { count: 3, timeoutMs: 10_000 });
    await sub.ready;
    const json = JSON.stringify({ camera: "Camera 1", file: "/data/output/Camera1/a b.mp4" });
    await mosquittoPub(broker.url, "motioneye/Camera1/event", json);
    await mosquittoPub(broker.url, "motioneye/Camera2/event", "two words\nand a line\tand tab");
    await mosquittoPub(broker.url, "motioneye/Camera3/event", "", { qos: 1 });
    const messages = await sub;
    expect(messages.map((m) => [m.topic, m.payload, m.retained])).toEqual([
      ["motioneye/Camera1/event", json, false],
      ["motioneye/Camera2/event", "two words\nand a line\tand tab", false],
      ["motioneye/Camera3/event", "", false],
    ]);
  });

  it("keeps retained messages, and --retained-only reads just those", async () => {
    await mosquittoPub(broker.url, "vault/availability", "online", { retain: true, qos: 1 });
    await mosquittoPub(broker.url, "vault/state", "not retained");
    const retained = await mosquittoSub(broker.url, "vault/#", {
      timeoutMs: 800,
      retainedOnly: true,
    });
    expect(retained.map((m) => [m.topic, m.payload, m.retained])).toEqual([
      ["vault/availability", "online", true],
    ]);
    // an empty retained message clears it
    await mosquittoPub(broker.url, "vault/availability", "", { retain: true });
    expect(await mosquittoSub(broker.url, "vault/#", { timeoutMs: 500 })).toEqual([]);
  });

  it("resolves with what arrived when the timeout ends it", async () => {
    const t0 = Date.now();
    expect(await mosquittoSub(broker.url, "nothing/here", { count: 1, timeoutMs: 600 })).toEqual(
      [],
    );
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it("a broker with credentials refuses anonymous clients", async () => {
    const creds = { username: "vault", password: "s3cret pass" };
    const sub = mosquittoSub(secured.url, "t", { count: 1, timeoutMs: 5000, ...creds });
    await sub.ready;
    await mosquittoPub(`mqtt://vault:s3cret%20pass@127.0.0.1:${secured.port}`, "t", "ok");
    expect((await sub).map((m) => m.payload)).toEqual(["ok"]);
    await expect(mosquittoPub(secured.url, "t", "anonymous")).rejects.toThrow(/exit 5/);
  });

  it("stops and starts again on the same port", async () => {
    const pid = broker.pid as number;
    await broker.stop();
    expect(await waitGone(pid, 2000)).toBe(true);
    await expect(mosquittoPub(broker.url, "t", "x", { timeoutMs: 3000 })).rejects.toThrow();
    await broker.start();
    const sub = mosquittoSub(broker.url, "t", { count: 1, timeoutMs: 5000 });
    await sub.ready;
    await mosquittoPub(broker.url, "t", "back");
    expect((await sub).map((m) => m.payload)).toEqual(["back"]);
  });
});

describe("fault proxy", () => {
  let sshd: SftpServer;
  let proxy: FaultProxy;

  beforeAll(async () => {
    sshd = await startSftpServer();
    proxy = await startFaultProxy({ host: sshd.host, port: sshd.port });
  }, 30_000);
  afterAll(async () => {
    await proxy?.close();
    await sshd?.close();
  });

  it("passes SFTP through", async () => {
    const client = await sftpConnect(sshd, { port: proxy.port });
    try {
      await client.put(pseudoRandomBytes(100_000, "pass"), `${sshd.root}/pass.bin`);
    } finally {
      await client.end();
    }
    expect((await stat(path.join(sshd.root, "pass.bin"))).size).toBe(100_000);
    expect(proxy.connections).toBe(1);
    expect(proxy.bytesUp).toBeGreaterThan(100_000);
    expect(proxy.bytesDown).toBeGreaterThan(0);
    expect(proxy.cuts).toBe(0);
  });

  it("cuts an ssh2-sftp-client upload after N bytes", async () => {
    proxy.setMode({ kind: "pass" });
    const client = await sftpConnect(sshd, { port: proxy.port });
    const before = proxy.stats();
    proxy.setMode({ kind: "cut", afterBytes: 1024 * 1024, direction: "up" });
    const data = pseudoRandomBytes(4 * 1024 * 1024, "cut");
    try {
      await expect(client.put(data, `${sshd.root}/cut.bin`)).rejects.toThrow();
    } finally {
      await client.end().catch(() => {});
    }
    const after = proxy.stats();
    expect(after.cuts).toBe(before.cuts + 1);
    // exactly 1 MiB more went up on that connection, then it was reset
    expect(after.bytesUp - before.bytesUp).toBe(1024 * 1024);
    const written = await stat(path.join(sshd.root, "cut.bin")).then(
      (s) => s.size,
      () => 0,
    );
    expect(written).toBeLessThan(1024 * 1024);
    expect(after.open).toBe(0);

    // the server itself is fine
    proxy.setMode({ kind: "pass" });
    const again = await sftpConnect(sshd, { port: proxy.port });
    await again.put(data, `${sshd.root}/cut.bin`);
    await again.end();
    expect((await readFile(path.join(sshd.root, "cut.bin"))).equals(data)).toBe(true);
  });

  it("stalls and refuses", async () => {
    proxy.setMode({ kind: "stall" });
    await expect(sftpConnect(sshd, { port: proxy.port, readyTimeout: 800 })).rejects.toThrow();
    proxy.dropConnections();
    proxy.setMode({ kind: "refuse" });
    const refusedBefore = proxy.refused;
    await expect(sftpConnect(sshd, { port: proxy.port })).rejects.toThrow();
    expect(proxy.refused).toBe(refusedBefore + 1);
    proxy.setMode({ kind: "pass" });
    await (await sftpConnect(sshd, { port: proxy.port })).end();
  });

  it("releases stalled data when the mode goes back to pass", async () => {
    proxy.setMode({ kind: "stall", afterBytes: 0 });
    const connecting = sftpConnect(sshd, { port: proxy.port, readyTimeout: 10_000 });
    await new Promise((r) => setTimeout(r, 300));
    proxy.setMode({ kind: "pass" });
    await (await connecting).end();
  });
});

describe("process cleanup", () => {
  // A separate Node process starts servers and then dies without stopping them.
  async function orphanTest(ending: "exit" | "sigkill"): Promise<{ pids: number[]; dir: string }> {
    const script = `
      import { startMosquitto } from ${JSON.stringify(path.join(HARNESS, "mosquitto.ts"))};
      import { startSftpServer } from ${JSON.stringify(path.join(HARNESS, "sshd.ts"))};
      const [b, s] = await Promise.all([startMosquitto(), startSftpServer()]);
      console.log(JSON.stringify({ pids: [b.pid, s.pid], dir: s.root }));
      ${ending === "exit" ? "process.exit(3);" : "setInterval(() => {}, 1000);"}
    `;
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", script],
      {
        cwd: REPO,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    let err = "";
    child.stderr.on("data", (c: Buffer) => {
      err += c.toString();
    });
    const started = await new Promise<{ pids: number[]; dir: string }>((resolve, reject) => {
      child.stdout.on("data", (c: Buffer) => {
        out += c.toString();
        const line = out.split("\n").find((l) => l.startsWith("{"));
        if (line) resolve(JSON.parse(line) as { pids: number[]; dir: string });
      });
      child.once("exit", (code) => {
        if (!out.includes("{")) reject(new Error(`child exited ${code}: ${err}`));
      });
    });
    expect(started.pids.every((p) => typeof p === "number" && p > 0)).toBe(true);
    if (ending === "sigkill") child.kill("SIGKILL");
    if (child.exitCode === null && child.signalCode === null) {
      await new Promise((r) => child.once("exit", r));
    }
    return started;
  }

  async function gone(dir: string, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const exists = await stat(dir).then(
        () => true,
        () => false,
      );
      if (!exists) return true;
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it("kills leftover servers when the test process exits without stopping them", async () => {
    const { pids, dir } = await orphanTest("exit");
    for (const pid of pids) expect(await waitGone(pid, 3000)).toBe(true);
    expect(await gone(path.dirname(dir), 3000)).toBe(true);
  });

  it("kills leftover servers even when the test process is SIGKILLed (watchdog)", async () => {
    const { pids, dir } = await orphanTest("sigkill");
    for (const pid of pids) expect(await waitGone(pid, 3000)).toBe(true);
    expect(await gone(path.dirname(dir), 3000)).toBe(true);
  });
});
