import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { connect, type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../harness/cli.js";
import { type Call, type FakeTelegram, startFakeTelegram } from "../harness/fakeTelegram.js";
import { sha256, tempDir, walk, writeConfig } from "../harness/files.js";
import { pseudoRandomBytes } from "../harness/ftp.js";
import { type Broker, startMosquitto } from "../harness/mosquitto.js";
import { stopProcess } from "../harness/processes.js";
import { count } from "./counters.js";
import { Rng, type Running, seedFor, startCli, until } from "./support.js";

const TOKEN = `5500112233:AAF-${randomBytes(12).toString("hex")}`;
const OWNER = 7001;
const STRANGER = 666;
/** A marker in every traversal attempt: no file with it may appear anywhere we can look. */
const CANARY = `pwned-${randomBytes(4).toString("hex")}`;

const TRICKY = [
  "\u202E", // right-to-left override
  "\u200B", // zero-width space
  "\uFEFF", // byte order mark
  "\uFF0F", // fullwidth solidus
  "\uFF0E", // fullwidth full stop
  "\u2024", // one dot leader
  "\u2215", // division slash
  "\u0301", // combining acute
  "\u0000",
  "\\",
  "/",
  "..",
  "%2e%2e%2f",
  "%00",
  "*",
  "?",
  "'",
  '"',
  "$(",
  "`",
  "~",
  "🎥",
];

const TRAVERSALS = [
  `../../../../tmp/${CANARY}.mp4`,
  `Camera1/2024-05-01/../../../../tmp/${CANARY}.mp4`,
  `Camera1/../../tmp/${CANARY}/2024-05-01/x.mp4`,
  `/tmp/${CANARY}.mp4`,
  `..\\..\\tmp\\${CANARY}.mp4`,
  `Camera1/2024-05-01/..%2f..%2f${CANARY}.mp4`,
  `Camera1\uFF0F2024-05-01\uFF0F\uFF0E\uFF0E\uFF0F${CANARY}.mp4`,
  `file:///tmp/${CANARY}.mp4`,
  `~/${CANARY}.mp4`,
  "/etc/passwd",
  "../../../../etc/shadow",
  "Camera1/2024-05-01/12-00-00.mp4/..",
  "2024-05-01/..",
  "2024-02-30/12-00-00.mp4",
  "9999-99-99",
  "2024-05-01/\u0000.mp4",
  `Camera1/2024-05-01/${"A".repeat(300)}.mp4`,
  `${"../".repeat(1300)}${CANARY}`,
  "A".repeat(4000),
];

/** A hostile string: a known traversal, random text, or either with tricky pieces spliced in. */
function fuzzString(rng: Rng): string {
  let s: string;
  const kind = rng.int(0, 3);
  if (kind === 0) s = rng.pick(TRAVERSALS);
  else if (kind === 1) {
    s = "";
    for (let i = rng.int(0, 40); i > 0; i--) s += String.fromCharCode(rng.int(0x20, 0x7e));
  } else if (kind === 2) {
    s = `Camera${rng.int(0, 3)}/2024-05-0${rng.int(0, 9)}/${rng.int(0, 23)}-00-00.mp4`;
  } else {
    s = "";
    for (let i = rng.int(1, 8); i > 0; i--) s += rng.pick(TRICKY);
  }
  for (let i = rng.int(0, 3); i > 0; i--) {
    const at = rng.int(0, s.length);
    s = s.slice(0, at) + rng.pick(TRICKY) + s.slice(at);
  }
  return s;
}

/** A JSON value of any type, sometimes a hostile string. */
function fuzzJson(rng: Rng, depth = 0): unknown {
  switch (rng.int(0, depth > 2 ? 4 : 6)) {
    case 0:
      return null;
    case 1:
      return rng.int(-1e9, 1e9) / rng.int(1, 1000);
    case 2:
      return rng.next() < 0.5;
    case 3:
    case 4:
      return fuzzString(rng);
    case 5:
      return Array.from({ length: rng.int(0, 4) }, () => fuzzJson(rng, depth + 1));
    default:
      return { camera: fuzzJson(rng, depth + 1), file: fuzzJson(rng, depth + 1) };
  }
}

/** An MQTT trigger payload from someone who is not motioneye.sh. */
function fuzzPayload(rng: Rng, mediaRoot: string): Buffer {
  switch (rng.int(0, 7)) {
    case 0:
      return rng.bytes(rng.int(0, 512));
    case 1:
      return Buffer.from(JSON.stringify({ camera: fuzzJson(rng), file: fuzzJson(rng) }));
    case 2:
      return Buffer.from(
        JSON.stringify({ camera: "Camera1", file: `${mediaRoot}/${fuzzString(rng)}` }),
      );
    case 3:
      return Buffer.from(JSON.stringify({ file: fuzzString(rng) }));
    case 4:
      return Buffer.from(JSON.stringify(fuzzJson(rng)));
    case 5:
      return Buffer.from(
        `{"__proto__":{"file":"${mediaRoot}/Camera1/2024-05-01/x.mp4"},"constructor":{"prototype":{"polluted":1}}}`,
      );
    case 6:
      return Buffer.from("[".repeat(rng.int(1, 4000)));
    default:
      return Buffer.from(fuzzString(rng));
  }
}

interface Clip {
  id: string;
  sha256: string;
}

/**
 * Untrusted input, fuzzed with a seeded PRNG (FAULTS_SEED replays): MQTT payloads against a
 * running `serve`, Telegram commands and button data against its bot, clip ids and shell lines
 * against the CLI. Nothing crashes, every input gets an answer (or a logged refusal), no file
 * appears outside the vault and the output folder, and nothing is restored that was not asked.
 */
describe("faults: fuzzed untrusted input", { timeout: 120_000 }, () => {
  let broker: Broker;
  let tg: FakeTelegram;
  let work: string;
  let source: string;
  let vault: string;
  let out: string;
  let tmp: string;
  let cfg: string;
  let serve: Running;
  const clips: Clip[] = [];

  const addClip = async (id: string, size: number): Promise<Clip> => {
    const bytes = pseudoRandomBytes(size, id);
    const file = join(source, id);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, bytes);
    const old = new Date(Date.now() - 3600_000);
    await utimes(file, old, old);
    const clip = { id, sha256: sha256(bytes) };
    clips.push(clip);
    return clip;
  };

  beforeAll(async () => {
    [broker, tg, work] = await Promise.all([
      startMosquitto(),
      startFakeTelegram({ token: TOKEN }),
      tempDir("mev-fuzz-"),
    ]);
    source = join(work, "source");
    vault = join(work, "vault");
    out = join(work, "out");
    tmp = join(work, "tmp");
    await Promise.all([mkdir(out), mkdir(tmp)]);
    await addClip("Camera1/2024-05-01/12-00-00.mp4", 20_000);
    await addClip("Camera1/2024-05-01/12-30-00.mp4", 30_000);
    await addClip("Camera2/2024-05-02/08-00-00.mp4", 10_000);
    cfg = await writeConfig(work, {
      source: { type: "local", path: source, stableSeconds: 1 },
      destination: { type: "local", path: vault },
      state: { dir: join(work, "state") },
      mqtt: { url: broker.url, baseTopic: "mev-fuzz", homeassistant: { enabled: false } },
      telegram: { token: TOKEN, apiRoot: tg.apiRoot, allowedChatIds: [OWNER] },
      schedule: { sync: "" },
      sync: { retries: 0 },
      log: { level: "debug" },
    });
    serve = startCli(["serve", "--config", cfg], { TMPDIR: tmp });
    await until("serve's startup run", () => /sync finished/.test(serve.output()), 30_000);
    await tg.waitForCall("setMyCommands", undefined, 30_000);
  });

  afterAll(async () => {
    if (serve) await stopProcess(serve.child);
    if (process.env.DEBUG_FAULTS) await writeFile("/tmp/dbg/fuzz-serve.log", serve.output());
    await Promise.allSettled([broker?.close(), tg?.stop()]);
    // Every file the run made is in the vault, the state dir or the output folder; no
    // decrypted clip is left in the bot's temp folder.
    if (work) {
      const files = await walk(work);
      // tmp/tsx-*: the TypeScript loader's own cache (the CLI runs from source in tests)
      const allowed = /^(source|vault|state|out)\/|^config\.yml$|^tmp\/tsx-/;
      expect(files.filter((f) => !allowed.test(f))).toEqual([]);
      expect((await readdir(tmp)).filter((n) => !n.startsWith("tsx-"))).toEqual([]);
      await rm(work, { recursive: true, force: true });
    }
    expect((await readdir("/tmp")).filter((n) => n.includes(CANARY))).toEqual([]);
  });

  const noCrash = (text: string) => {
    expect(text).not.toMatch(/\n\s+at .*\(.*:\d+:\d+\)/); // a stack trace
    expect(text).not.toMatch(/uncaught|unhandled/i);
  };

  it("MQTT: 300 hostile trigger payloads; serve stays up and still backs up a clip named the right way", async () => {
    const rng = new Rng(seedFor("mqtt-fuzz"));
    const client: MqttClient = connect(broker.url, { clientId: "fuzzer" });
    await new Promise<void>((resolve, reject) => {
      client.once("connect", () => resolve());
      client.once("error", reject);
    });
    const N = 300;
    const before = serve.count(/odd trigger payload|MQTT trigger/);
    try {
      for (let i = 0; i < N; i++) {
        const topic =
          rng.next() < 0.8
            ? "motioneye/Camera1/event"
            : `motioneye/${fuzzString(rng).replaceAll("\u0000", "").replace(/[+#/]/g, "_") || "x"}/event`;
        await client.publishAsync(topic, fuzzPayload(rng, source), { qos: 1 });
      }
      // A 4 MiB message: far over any trigger, refused by size before it is read.
      await client.publishAsync("motioneye/Camera1/event", Buffer.alloc(4 << 20, 0x41), { qos: 1 });
      count("mqtt-fuzz", { fuzz: N + 1 });
      await until(
        "serve to take every message",
        () => serve.count(/odd trigger payload|MQTT trigger/) - before >= N + 1,
        60_000,
      );

      // Still working: a new clip named the way motioneye.sh names it is backed up.
      const fresh = await addClip("Camera1/2024-05-03/09-00-00.mp4", 12_000);
      await client.publishAsync(
        "motioneye/Camera1/event",
        JSON.stringify({ camera: "Camera1", file: join(source, fresh.id) }),
        { qos: 1 },
      );
      // The named clip goes first; the run it starts also takes the earlier clips (random bytes
      // under .mp4 names, so they are judged by two sightings, not by their boxes). addClip put
      // the named one in `clips` too.
      await until(
        "the named clip and the earlier ones in the vault",
        () => clips.every((c) => existsSync(join(vault, `${c.id}.age`))),
        30_000,
      );
    } finally {
      await client.endAsync();
    }
    expect(serve.child.exitCode).toBeNull();
    noCrash(serve.output());
    expect((await walk(vault)).sort()).toEqual(clips.map((c) => `${c.id}.age`).sort());
  });

  /** Sends one update and waits for the bot's answer to it (a message, or a button answer). */
  async function answerTo(send: () => { update_id: number }, chat: number): Promise<Call> {
    const since = (tg.calls.at(-1)?.seq ?? -1) + 1;
    send();
    let answer: Call | undefined;
    await until(
      "the bot's answer",
      () => {
        answer = tg.calls.find(
          (c) =>
            c.seq >= since &&
            (c.method === "answerCallbackQuery" ||
              (c.method !== "getUpdates" && c.params.chat_id === chat)),
        );
        return answer !== undefined;
      },
      20_000,
    );
    return answer as Call;
  }

  it("Telegram: 200 hostile commands and button presses get a plain answer; nothing is sent that was not asked for", async () => {
    const rng = new Rng(seedFor("telegram-fuzz"));
    const commands = [
      "/restore",
      "/list",
      "/status",
      "/help",
      "/restore@vault_test_bot",
      "/RESTORE",
      "/list@other_bot",
      "",
    ];
    const uploadsBefore = tg.uploads.length;
    const N = 200;
    for (let i = 0; i < N; i++) {
      if (rng.next() < 0.2) {
        const data =
          rng.next() < 0.5 ? `r:${fuzzString(rng)}`.slice(0, 64) : fuzzString(rng).slice(0, 64);
        await answerTo(() => tg.pressButton(OWNER, rng.int(1, 1000), data), OWNER);
      } else {
        const text = `${rng.pick(commands)} ${fuzzString(rng)}`.trim().slice(0, 4096) || "?";
        const answer = await answerTo(() => tg.sendText(OWNER, text), OWNER);
        noCrash(String(answer.params.text ?? answer.params.caption ?? ""));
      }
    }
    // Strangers get the fixed refusal and nothing else, whatever they send.
    for (let i = 0; i < 20; i++) tg.sendText(STRANGER + i, `/restore ${fuzzString(rng)}`);
    await until("the refusals", () => tg.textsTo(STRANGER + 19).length > 0);
    for (let i = 0; i < 20; i++) {
      expect(tg.textsTo(STRANGER + i)).toEqual([`not authorized (chat id ${STRANGER + i})`]);
    }
    count("telegram-fuzz", { fuzz: N + 20 });

    // Nothing was uploaded: no fuzzed input named a clip.
    expect(tg.uploads.length).toBe(uploadsBefore);
    // And the bot still works: a real restore sends the exact bytes.
    const wanted = clips[0] as Clip;
    const sent = await answerTo(() => tg.sendText(OWNER, `/restore ${wanted.id}`), OWNER);
    const video =
      sent.method === "sendVideo" ? sent : await tg.nextCall("sendVideo", undefined, 20_000);
    expect(video.files[0]?.sha256).toBe(wanted.sha256);
    expect(serve.child.exitCode).toBeNull();
    noCrash(serve.output());
  });

  it("CLI: hostile clip ids to restore and list, and 300 hostile shell lines; usage errors, nothing written outside the output folder", async () => {
    const rng = new Rng(seedFor("cli-fuzz"));
    // argv cannot carry NUL
    const ids = [...TRAVERSALS.slice(0, 4), fuzzString(rng)].map((s) => s.replaceAll("\u0000", ""));
    for (const id of ids) {
      const r = await runCli(["restore", id, "--out", out, "--config", cfg]);
      expect([1, 2]).toContain(r.code);
      expect(r.stderr).toMatch(/^error: |^no clips in the vault match/m);
      noCrash(r.stderr);
    }
    for (const date of ["2024-13-01", `2024-05-01/../${CANARY}`]) {
      const r = await runCli(["list", date, "--config", cfg]);
      expect(r.code).toBe(2);
      noCrash(r.stderr);
    }

    const quoteArg = (s: string) => `'${s.replace(/'/g, `'"'"'`)}'`;
    const lines: string[] = [];
    for (let i = 0; i < 300; i++) {
      const cmd = rng.pick(["ls", "cd", "get", "mget", "info", "get -f"]);
      lines.push(
        `${cmd} ${quoteArg(
          fuzzString(rng)
            .replaceAll("\u0000", "")
            .replace(/[\r\n]/g, ""),
        )}`,
      );
    }
    lines.push("cd /", "exit");
    const started = Date.now();
    const shell = await runCli(["shell", "--lcd", out, "--config", cfg], {
      input: `${lines.join("\n")}\n`,
      timeoutMs: 120_000,
    });
    if (process.env.DEBUG_FAULTS) console.log(`shell: ${Date.now() - started} ms`);
    count("cli-fuzz", { fuzz: ids.length + 2 + lines.length });
    expect(shell.signal).toBeNull();
    expect([0, 1]).toContain(shell.code);
    noCrash(shell.stderr);
    // Whatever a fuzzed `get`/`mget` restored is a real clip, under its own id, with its bytes.
    for (const f of await walk(out)) {
      const clip = clips.find((c) => c.id === f || c.id.endsWith(`/${f}`));
      expect(clip, `unexpected file in the output folder: ${f}`).toBeDefined();
      expect(sha256(await readFile(join(out, f)))).toBe(clip?.sha256);
    }
  });
});
