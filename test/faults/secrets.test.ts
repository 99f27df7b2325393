import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFile, chmod, copyFile, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../harness/cli.js";
import { ftpSource } from "../harness/config.js";
import { type FakeTelegram, startFakeTelegram } from "../harness/fakeTelegram.js";
import { writeConfig } from "../harness/files.js";
import { type Broker, mosquittoPub, startMosquitto } from "../harness/mosquitto.js";
import { freePort } from "../harness/ports.js";
import { runCommand, spawnServer, stopProcess, waitForPort } from "../harness/processes.js";
import {
  type Lab,
  Rng,
  scenario,
  startCli,
  startLab,
  sync,
  until,
  verifyVault,
  writeClips,
} from "./support.js";

const MQTT_USER = "vault-mqtt";
const MQTT_PASSWORD = `mqtt-pw-${randomBytes(6).toString("hex")}`;
const TOKEN = `7700112233:AAF-${randomBytes(12).toString("hex")}`;
const OWNER = 4242;

/** A self-signed certificate for 127.0.0.1 (its own CA), as a camera or a home broker has. */
async function selfSigned(dir: string): Promise<{ cert: string; key: string }> {
  await mkdir(dir, { recursive: true });
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
      .concat(["-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1"])
      .concat(["-addext", "subjectAltName=IP:127.0.0.1"]),
    { stdio: "ignore" },
  );
  return { cert, key };
}

/**
 * Keys and passwords: files written 0600, a warning when a key file is readable by others,
 * no secret in any log line (even at trace level, even on the error paths), FTPS to the camera,
 * MQTT with a username and password.
 */
describe("faults: secrets", { timeout: 120_000 }, () => {
  let lab: Lab;
  let broker: Broker;
  let tg: FakeTelegram;

  beforeAll(async () => {
    [lab, broker, tg] = await Promise.all([
      startLab(),
      startMosquitto({ username: MQTT_USER, password: MQTT_PASSWORD }),
      startFakeTelegram({ token: TOKEN }),
    ]);
  });

  afterAll(async () => {
    await Promise.allSettled([broker?.close(), tg?.stop()]);
    await lab?.close();
  });

  it("warns when the age identity, the SSH key or the Fernet key is readable by others", async () => {
    const keys = join(lab.work, "keys");
    const identity = join(keys, "identity.txt");
    const sshKey = join(keys, "id_ed25519");
    const fernetKey = join(keys, "filekey.key");
    const s = await scenario(lab, "key-modes", {
      destination: { privateKeyFile: sshKey },
      top: { encryption: { identityFile: identity, fernetKeyFile: fernetKey } },
    });
    const made = await runCli(["keygen", "--config", s.cfg]);
    expect(made.code, made.stderr).toBe(0);
    expect((await stat(identity)).mode & 0o777).toBe(0o600);
    await copyFile(lab.sftp.privateKeyPath, sshKey);
    await writeFile(fernetKey, randomBytes(32).toString("base64url"));

    for (const f of [identity, sshKey, fernetKey]) await chmod(f, 0o644);
    const loose = await sync(s, ["--date", "1999-01-01"]); // a run with nothing to do
    expect(loose.code, loose.stderr).toBe(0);
    expect(loose.stderr).toMatch(/age identity file is readable by other users: chmod 600 it/);
    expect(loose.stderr).toMatch(/SSH private key is readable by other users: chmod 600 it/);
    expect(loose.stderr).toMatch(/legacy Fernet key is readable by other users: chmod 600 it/);

    for (const f of [identity, sshKey, fernetKey]) await chmod(f, 0o600);
    const tight = await sync(s, ["--date", "1999-01-01"]);
    expect(tight.code, tight.stderr).toBe(0);
    expect(tight.stderr).not.toMatch(/readable by other users/);
  });

  it("no password or token in any output of serve and sync, at trace level, also when things fail", async () => {
    const clips = await writeClips(lab.ftp, new Rng(700), "Secret", "2024-05-01", 2);
    const mqtt = (password: string) => ({
      url: broker.url,
      username: MQTT_USER,
      password,
      baseTopic: "mev-secrets",
      homeassistant: { enabled: false },
    });
    const telegram = { token: TOKEN, apiRoot: tg.apiRoot, allowedChatIds: [OWNER] };
    const s = await scenario(lab, "no-secrets-in-logs", {
      top: {
        mqtt: mqtt(MQTT_PASSWORD),
        telegram,
        schedule: { sync: "" },
        log: { level: "trace" },
      },
    });
    const outputs: string[] = [];

    // Everything working: MQTT with credentials triggers a run, the bot answers.
    const serve = startCli(["serve", "--config", s.cfg]);
    try {
      await until("serve's startup run", () => /sync finished/.test(serve.output()));
      await mosquittoPub(broker.url, "motioneye/Secret/event", "", {
        username: MQTT_USER,
        password: MQTT_PASSWORD,
      });
      await until("the MQTT-triggered run", () => serve.count(/sync finished/) >= 2);
      tg.failNext("sendMessage", { errorCode: 500, times: 1 });
      tg.sendText(OWNER, "/status");
      tg.sendText(OWNER, "/list 2024-05-01");
      tg.sendText(999, "/status"); // a stranger
      await tg.waitForCall("sendMessage", (c) => c.params.chat_id === 999, 20_000);
      await tg.waitForCall("sendMessage", (c) => c.params.chat_id === OWNER && c.ok, 20_000);
    } finally {
      await stopProcess(serve.child);
      outputs.push(serve.output());
    }
    await verifyVault(s, lab, clips);

    // Everything failing: a wrong MQTT password, a wrong FTP password, a refused bot call.
    const wrongMqtt = `wrong-${MQTT_PASSWORD}`;
    const wrongFtp = `wrong-${lab.ftp.password}`;
    await mkdir(join(lab.work, "no-secrets-bad"));
    const bad = await writeConfig(join(lab.work, "no-secrets-bad"), {
      source: ftpSource(lab.ftp, { password: wrongFtp }),
      destination: { type: "local", path: join(lab.work, "no-secrets-bad", "vault") },
      state: { dir: join(lab.work, "no-secrets-bad", "state") },
      mqtt: mqtt(wrongMqtt),
      telegram,
      schedule: { sync: "" },
      log: { level: "trace" },
    });
    const failing = startCli(["serve", "--config", bad]);
    try {
      await until("the failed login to the camera", () => /login as/.test(failing.output()));
      await until("the refused MQTT login", () =>
        /not authori[sz]ed|refused|bad user/i.test(failing.output()),
      );
      tg.failNext("sendMessage", { disconnect: true, times: 2 });
      tg.sendText(OWNER, "/status");
      await until("the bot's failed reply", () => /telegram/i.test(failing.output()));
    } finally {
      await stopProcess(failing.child);
      outputs.push(failing.output());
    }
    const cli = await runCli(["sync", "--config", bad]);
    expect(cli.code).toBe(1);
    outputs.push(cli.stdout + cli.stderr);

    const secrets = [MQTT_PASSWORD, wrongMqtt, lab.ftp.password, wrongFtp, TOKEN];
    // The token's secret half alone, too (a URL or a message could carry just that part).
    secrets.push(TOKEN.split(":")[1] ?? TOKEN);
    for (const out of outputs) {
      expect(out).toMatch(/"level":/); // the logs really were written
      for (const secret of secrets) expect(out).not.toContain(secret);
    }
  });

  it("FTPS to the camera: TLS with the camera's certificate; plain FTP and unknown certificates refused", async () => {
    const { cert, key } = await selfSigned(join(lab.work, "tls-ftp"));
    // The harness's vsftpd reads <its folder>/vsftpd.conf on start: turn TLS on, and require it.
    const conf = join(dirname(lab.ftp.base), "vsftpd.conf");
    const original = await readFile(conf, "utf8");
    await lab.ftp.stop();
    await appendFile(
      conf,
      [
        "ssl_enable=YES",
        `rsa_cert_file=${cert}`,
        `rsa_private_key_file=${key}`,
        "force_local_logins_ssl=YES",
        "force_local_data_ssl=YES",
        "require_ssl_reuse=NO",
        "ssl_ciphers=HIGH",
        "",
      ].join("\n"),
    );
    await lab.ftp.start();
    try {
      const clips = await writeClips(lab.ftp, new Rng(701), "Tls", "2024-05-01", 2);
      const s = await scenario(lab, "ftps", { source: { secure: true, caFile: cert } });
      const run = await sync(s, ["--camera", "Tls"]);
      expect(run.code, run.stderr).toBe(0);
      await verifyVault(s, lab, clips);

      const plain = await scenario(lab, "ftps-plain", { source: { secure: false } });
      const refused = await sync(plain, ["--camera", "Tls"]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/530 .*encryption/i);

      const unknown = await scenario(lab, "ftps-unknown-cert", { source: { secure: true } });
      const untrusted = await sync(unknown, ["--camera", "Tls"]);
      expect(untrusted.code).toBe(1);
      expect(untrusted.stderr).toMatch(/self[- ]signed certificate/i);
    } finally {
      // Plain FTP again for the other tests of this file.
      await lab.ftp.stop();
      await writeFile(conf, original, { mode: 0o600 });
      await lab.ftp.start();
    }
  });

  it("mqtts:// with mqtt.caFile and a password: triggers arrive over TLS; an unknown certificate is refused", async () => {
    const { cert, key } = await selfSigned(join(lab.work, "tls-mqtt"));
    const port = await freePort();
    const conf = join(lab.work, "tls-mqtt", "mosquitto.conf");
    const passwords = join(lab.work, "tls-mqtt", "passwords");
    await runCommand("mosquitto_passwd", ["-b", "-c", passwords, MQTT_USER, MQTT_PASSWORD]);
    await writeFile(
      conf,
      [
        `listener ${port} 127.0.0.1`,
        `cafile ${cert}`,
        `certfile ${cert}`,
        `keyfile ${key}`,
        "allow_anonymous false",
        `password_file ${passwords}`,
        "persistence false",
        "user root",
        "log_dest stderr",
        "",
      ].join("\n"),
    );
    const tlsBroker = spawnServer("/usr/sbin/mosquitto", ["-c", conf], { name: "mosquitto-tls" });
    try {
      await waitForPort(port, 10_000, { server: tlsBroker });
      const clips = await writeClips(lab.ftp, new Rng(702), "Mqtts", "2024-05-01", 1);
      const mqtt = {
        url: `mqtts://127.0.0.1:${port}`,
        username: MQTT_USER,
        password: MQTT_PASSWORD,
        baseTopic: "mev-mqtts",
        homeassistant: { enabled: false },
      };
      const s = await scenario(lab, "mqtts", {
        top: { mqtt: { ...mqtt, caFile: cert }, schedule: { sync: "" } },
      });
      const serve = startCli(["serve", "--config", s.cfg]);
      try {
        await until("serve's startup run", () => /sync finished/.test(serve.output()));
        await until("the TLS connection", () => /MQTT connected/.test(serve.output()));
        await runCommand("mosquitto_pub", [
          "-h",
          "127.0.0.1",
          "-p",
          String(port),
          "--cafile",
          cert,
          "-u",
          MQTT_USER,
          "-P",
          MQTT_PASSWORD,
          "-t",
          "motioneye/Mqtts/event",
          "-n",
        ]);
        await until("the triggered run", () => serve.count(/sync finished/) >= 2);
      } finally {
        await stopProcess(serve.child);
      }
      await verifyVault(s, lab, clips);

      // Without the CA the broker's certificate is not trusted: no connection, said clearly.
      const untrusted = await scenario(lab, "mqtts-untrusted", {
        top: { mqtt, schedule: { sync: "" } },
      });
      const refused = startCli(["serve", "--config", untrusted.cfg]);
      try {
        await until("the refused TLS connection", () =>
          /self[- ]signed certificate/i.test(refused.output()),
        );
        expect(refused.output()).not.toMatch(/MQTT connected/);
        expect(refused.output()).not.toContain(MQTT_PASSWORD);
      } finally {
        await stopProcess(refused.child);
      }
    } finally {
      await tlsBroker.stop();
    }
  });
});
