/**
 * What the completeness check costs per clip on the camera's FTP server (vsftpd on loopback):
 * ranged reads, FTP commands, bytes the check uses, bytes the server sent before the data
 * connection was closed, and time, next to the same store's `stat` of the same file (SIZE +
 * MDTM, two commands: what every run already pays per new clip before its upload).
 *
 * Clips: a finished motion movie (test/fixtures/motion/finished.mp4, ~100 KB), a finished movie
 * of 50 MB in motion's layout (the check must not cost more for a bigger file), and a movie still
 * recording (motion's 48-byte header).
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { pino } from "pino";
import { checkCompleteness } from "../src/clips/completeness.js";
import { createFtpSource } from "../src/storage/source/ftp/ftpSource.js";
import { REPO } from "../test/harness/cli.js";
import { startFtpServer } from "../test/harness/ftp.js";
import { onCleanup } from "./lib/cleanup.js";
import { MiB, median, round, timed } from "./lib/measure.js";
import type { BenchRow } from "./lib/types.js";

const ROUNDS = 20;

export async function run(): Promise<BenchRow[]> {
  const ftp = await startFtpServer();
  const stop = onCleanup(() => ftp.close());
  const received: number[] = [];
  const logger = pino(
    { level: "debug" },
    {
      write: (line: string) => {
        const entry = JSON.parse(line) as { msg: string; received?: number };
        if (entry.msg === "ftp range read") received.push(entry.received ?? 0);
      },
    },
  );
  const store = createFtpSource({
    host: ftp.host,
    port: ftp.port,
    user: ftp.user,
    password: ftp.password,
    secure: false,
    root: ftp.path,
    maxConnections: 1,
    logger,
  });
  try {
    const fixtures = join(REPO, "test/fixtures/motion");
    const clips = [
      {
        label: "a finished motion movie (100 KB)",
        clip: await ftp.writeClip(
          "Camera1/2024-05-01/12-00-00.mp4",
          await readFile(join(fixtures, "finished.mp4")),
        ),
      },
      {
        label: "a finished 50 MB movie",
        clip: await ftp.writeClip("Camera1/2024-05-01/12-10-00.mp4", 50 * MiB),
      },
      {
        label: "a movie still recording (header only)",
        clip: await ftp.writeClip(
          "Camera1/2024-05-01/12-20-00.mp4",
          await readFile(join(fixtures, "header-only.mp4")),
        ),
      },
    ];
    const commands = async () =>
      (await readFile(ftp.logFile, "utf8")).split("\n").filter((l) => l.includes("FTP command:"))
        .length;
    await store.list("Camera1/2024-05-01"); // log in once, outside the figures

    const rows: BenchRow[] = [];
    for (const { label, clip } of clips) {
      const checkMs: number[] = [];
      const statMs: number[] = [];
      let reads = 0;
      let bytes = 0;
      let state = "";
      let checkCommands = 0;
      let statCommands = 0;
      received.length = 0;
      for (let i = 0; i < ROUNDS; i++) {
        // alternate, so that the machine's load drifts over both alike
        const c0 = await commands();
        const check = await timed(() => checkCompleteness(store, clip.relPath, clip.size));
        const c1 = await commands();
        const st = await timed(() => store.stat(clip.relPath));
        const c2 = await commands();
        checkMs.push(check.ms);
        statMs.push(st.ms);
        ({ reads, bytes } = check.result);
        state = check.result.verdict.state;
        checkCommands = c1 - c0;
        statCommands = c2 - c1;
      }
      const perCheck = received.reduce((n, b) => n + b, 0) / ROUNDS;
      rows.push({
        name: `completeness check over FTP, ${label}, median of ${ROUNDS}`,
        value: round(median(checkMs)),
        unit: "ms",
        reference: {
          name: "stat (SIZE + MDTM) of the same file",
          value: round(median(statMs)),
          unit: "ms",
        },
        lowerIsBetter: true,
        note:
          `${state}: ${reads} ranged read(s), ${checkCommands} FTP commands (stat: ${statCommands}), ` +
          `${bytes} bytes used, ${Math.round(perCheck)} bytes received before the data ` +
          "connection was closed (the server sends ahead)",
      });
    }
    return rows;
  } finally {
    await store.close();
    await stop();
  }
}
