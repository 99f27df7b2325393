/**
 * Issue 11, must-show 1: a real camera, as plain motionEye runs it. The real motion daemon
 * records a loopback network camera (2 fps, one picture at each event start, a long event and
 * short ones) into ProFTPD configured as motionEyeOS has it; motionEye's hooks run
 * integrations/motioneye/motioneye.sh (storage command and end command), which publishes with
 * the real mosquitto_pub to a real mosquitto; the real `serve` backs up to OpenSSH's sftp with
 * its schedule firing every 2 seconds all along, so runs keep finding movies motion is still
 * writing. The vault's folder on the SFTP server is watched the whole time.
 *
 * Every movie must end on the destination whole (Debian's age gives its final bytes), no final
 * name may ever have held anything else, no picture or `.thumb` may be uploaded, and pictures
 * must not fill serve's log with warnings.
 */
import { mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ageCliDecrypt } from "../harness/age.js";
import { sftpDestination } from "../harness/config.js";
import { type DestinationWatch, watchDestination } from "../harness/destinationWatch.js";
import { ffprobe } from "../harness/ffprobe.js";
import { sha256, tempDir, walk, writeConfig } from "../harness/files.js";
import { type Broker, startMosquitto } from "../harness/mosquitto.js";
import { type MotionCamera, type RecordedMovie, startMotion } from "../harness/motion.js";
import { MOTIONEYE_SH } from "../harness/motioneyeos.js";
import { type ProftpdServer, startProftpd } from "../harness/proftpd.js";
import { ServeProcess } from "../harness/serve.js";
import { type SftpServer, startSftpServer } from "../harness/sshd.js";

const LONG_EVENT_SECONDS = 22;
const SHORT_EVENT_SECONDS = 2;
const SHORT_EVENTS = 2;

describe("a real motion camera behind motionEyeOS's ProFTPD, backed up by serve over MQTT", () => {
  let ftp: ProftpdServer;
  let sftp: SftpServer;
  let broker: Broker;
  let work: string;
  let serve: ServeProcess;
  let motion: MotionCamera;
  let watch: DestinationWatch;
  let identityFile: string;
  const movies: RecordedMovie[] = [];
  const vault = () => join(sftp.root, "vault");

  /** The movie's `.age` decrypts (Debian's age) to the movie motion closed. */
  async function backedUpWhole(movie: RecordedMovie): Promise<boolean> {
    const remote = join(vault(), `${movie.relPath}.age`);
    try {
      const plain = await ageCliDecrypt(remote, identityFile);
      return plain.equals(await readFile(movie.path));
    } catch {
      return false;
    }
  }

  beforeAll(async () => {
    [ftp, sftp, broker, work] = await Promise.all([
      startProftpd(),
      startSftpServer(),
      startMosquitto(),
      tempDir("mev-real-camera-"),
    ]);
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
        // short, so that a rule that trusts a quiet file would take the movie being written
        stableSeconds: 2,
      },
      destination: sftpDestination(sftp, vault()),
      encryption: { identityFile },
      state: { dir: join(work, "state") },
      mqtt: { url: broker.url, baseTopic: "mev-real-camera", homeassistant: { enabled: false } },
      schedule: { sync: "*/2 * * * * *" },
      http: { port: 0 },
    });
    serve = new ServeProcess(config);
    // motion learns its scene while serve starts
    [motion] = await Promise.all([
      startMotion({
        root: ftp.localRoot,
        // motionEye's fields, as the README tells plain motionEye users to fill them
        storageCommand: `${MOTIONEYE_SH} %$ %f`,
        endCommand: `${MOTIONEYE_SH} %$`,
        env: { ...process.env, MQTT_HOST: broker.host, MQTT_PORT: String(broker.port) },
      }),
      serve.until(() => serve.logLines().some((l) => l.msg === "serve running"), "serve"),
    ]);
  }, 90_000);

  afterAll(async () => {
    await watch?.stop();
    await motion?.close();
    if (serve?.alive) await serve.stop();
    await Promise.allSettled([ftp?.close(), sftp?.close(), broker?.close()]);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("backs up every movie whole, never anything else under a final name", async () => {
    movies.push(await motion.recordEvent(LONG_EVENT_SECONDS));
    for (let i = 0; i < SHORT_EVENTS; i++) {
      movies.push(await motion.recordEvent(SHORT_EVENT_SECONDS));
    }
    // motionEye's thumbnails appear a few seconds after each movie: let the schedule see them.
    await Promise.all(movies.map((m) => m.thumbnailReady));

    for (const movie of movies) {
      expect((await ffprobe(movie.path)).ok, movie.path).toBe(true);
      await serve.until(() => backedUpWhole(movie), `${movie.relPath} backed up whole`, 30_000);
    }
    // two more scheduled runs with every picture and thumbnail in place
    const runs = () => serve.logLines().filter((l) => l.msg === "sync finished").length;
    const runsBefore = runs();
    await serve.until(() => runs() >= runsBefore + 2, "two more scheduled runs");
    await watch.stop();

    // The destination holds exactly the movies (no picture, no .thumb, nothing temporary)...
    expect(await walk(vault())).toEqual(movies.map((m) => `${m.relPath}.age`).sort());
    // ...and each final name only ever held that one, complete, encrypted movie.
    expect(Object.fromEntries(watch.rewritten())).toEqual({});
    for (const movie of movies) {
      const name = `${movie.relPath}.age`;
      const final = await readFile(join(vault(), name));
      expect(watch.contents().get(name), name).toEqual([
        { sha256: sha256(final), size: final.length },
      ]);
    }
    expect(watch.scans).toBeGreaterThan(100);

    // the camera had pictures and thumbnails to tempt it
    for (const movie of movies) {
      expect(movie.picture).toMatch(/\.jpg$/);
      await expect(readFile(movie.thumb)).resolves.toBeInstanceOf(Buffer);
    }
  }, 180_000);

  it("pictures make no warning in serve's log", () => {
    const pictureWarnings = serve
      .warnings()
      .filter((l) => JSON.stringify(l).match(/\.jpg|\.thumb|picture/i));
    expect(pictureWarnings).toEqual([]);
    expect(serve.alive).toBe(true);
  });

  it("stops on SIGTERM with exit 0", async () => {
    expect(await serve.stop()).toBe(0);
  });
});
