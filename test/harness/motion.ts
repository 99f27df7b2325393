/**
 * The real `motion` daemon (Debian's `motion`) as motionEye runs it, recording real movies from a
 * loopback network camera (./netcam.ts) into a motionEye layout `<root>/<camera>/<date>/<time>.mp4`.
 *
 * The config (./motionConfig.ts) is the one motionEye writes for a camera: `framerate 2`,
 * `movie_filename %Y-%m-%d/%H-%M-%S`, `movie_codec mp4`, `picture_output first` (one picture
 * at the start of each event), event gap, pre/post capture, text overlay, and motionEye's hook
 * wiring: `on_movie_end` and `on_picture_save` both run `meyectl relayevent ...`, the storage
 * web hook (`meyectl webhook METHOD URL`) and the File Storage command; `on_event_end` runs
 * `meyectl relayevent stop` and the end command. motion runs each line with `/bin/sh -c` and
 * never waits for it. `meyectl` is ./motioneye/meyectl.py (python3, as motionEye is), which
 * records every call in a hook log; this harness plays motionEye's server: it reads that log
 * and writes `<movie>.thumb` (a JPEG frame, by ffmpeg) a few seconds after each movie ends.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { type HookOptions, hookLines, motionConfig } from "./motionConfig.js";
import { type NetCamera, startNetCamera } from "./netcam.js";
import { removeOnExit, runCommand, type ServerChild, spawnServer } from "./processes.js";

const MOTION = "/usr/bin/motion";

export { MEYECTL, type WebHookMethod } from "./motionConfig.js";
export interface MotionOptions extends HookOptions {
  /** The media root; motion writes `<root>/<camera>/...` (motionEye's per-camera target_dir). */
  root: string;
  /** motionEye's camera name (motion's `camera_name`, `%$` in commands). */
  camera?: string;
  /** motionEye's default is 2 frames per second. */
  framerate?: number;
  /** Seconds without motion that end an event (motionEye's default 30; short for tests). */
  eventGap?: number;
  /** Frames kept before / recorded after the motion. */
  preCapture?: number;
  postCapture?: number;
  /** motion's environment, inherited by every hook (its PATH decides what the hooks find). */
  env?: NodeJS.ProcessEnv;
  /** Seconds after a movie ends before its `.thumb` appears (motionEye: about 5). */
  thumbnailDelaySeconds?: number;
}

/** One call recorded by meyectl.py (see its docstring). */
export interface HookCall {
  /** When it ran, ms since epoch. */
  t: number;
  hook: "relayevent" | "webhook" | "record";
  /** relayevent: start, stop, movie_end, picture_save; record: its name. */
  event?: string;
  args?: string[];
  method?: string;
  url?: string;
  body?: string;
  status?: number;
  error?: string;
}

/** A movie motion closed (its `on_movie_end` ran). */
export interface RecordedMovie {
  /** Absolute path, as motion passed it in `%f`. */
  path: string;
  /** Relative to the media root: `Camera1/2024-05-01/12-00-00.mp4` (the clip id). */
  relPath: string;
  /** The event's picture (`picture_output first`), absolute, when motion saved one. */
  picture?: string;
  /** `<path>.thumb` (exists once `thumbnailReady` resolves). */
  thumb: string;
  /** When motion ran `on_movie_end`, ms since epoch. */
  endedAt: number;
  /** Resolves once motionEye's thumbnail has been written (or failed to be). */
  thumbnailReady: Promise<void>;
}

export interface MotionCamera {
  camera: string;
  root: string;
  /** `<root>/<camera>`: motion's target_dir. */
  cameraDir: string;
  feed: NetCamera;
  configFile: string;
  hookLog: string;
  readonly pid: number | null;
  /** Every hook call so far, in order. */
  hooks(): HookCall[];
  /** Every movie closed so far, in order. */
  movies(): RecordedMovie[];
  /**
   * One event: the scene moves until motion has started an event and for `seconds` more, then
   * stops; resolves once motion has closed the movie (after the event gap).
   */
  recordEvent(seconds: number): Promise<RecordedMovie>;
  /** Starts the scene moving and resolves once motion has started an event. */
  startEvent(): Promise<void>;
  /** Stops the motion; resolves once motion has closed the movie. */
  endEvent(): Promise<RecordedMovie>;
  /** SIGKILL, like a power cut: a movie being recorded stays unfinished (no moov box). */
  kill(): Promise<void>;
  /** Stops motion (SIGTERM: it closes a movie in progress) and the thumbnails in flight. */
  stop(): Promise<void>;
  /** Stops everything and deletes the harness's own files (not the media root). */
  close(): Promise<void>;
  /** motion's log (stderr), hooks' stderr included. */
  output(): string;
}

/** Time from motion's capture connection to its first detection (see startMotion). */
const MOTION_STARTUP_MS = 6000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function parseHookLog(text: string): HookCall[] {
  const calls: HookCall[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      calls.push(JSON.parse(line) as HookCall);
    } catch {
      // a line being written: the next read has it whole
    }
  }
  return calls;
}

/** motionEye's preview: the first frame of the movie as JPEG, next to it. */
async function makeThumbnail(movie: string): Promise<void> {
  await runCommand(
    "ffmpeg",
    [
      "-hide_banner",
      "-loglevel",
      "error",
      "-i",
      movie,
      "-f",
      "mjpeg",
      "-vframes",
      "1",
      "-y",
      `${movie}.thumb`,
    ],
    { timeoutMs: 30_000, allowFailure: true },
  );
}

/**
 * Starts motion with its own camera, config and hook log; resolves once motion reads the camera
 * (and has had a few frames to learn the still scene).
 */
export async function startMotion(opts: MotionOptions): Promise<MotionCamera> {
  const camera = opts.camera ?? "Camera1";
  if (!/^[A-Za-z0-9_-]+$/.test(camera))
    throw new Error(`motion harness: odd camera name ${camera}`);
  const eventGap = opts.eventGap ?? 3;
  const framerate = opts.framerate ?? 2;
  const thumbnailDelayMs = (opts.thumbnailDelaySeconds ?? 5) * 1000;
  const work = await mkdtemp(path.join(os.tmpdir(), "mevault-motion-"));
  const forgetWork = removeOnExit(work);
  const cameraDir = path.join(opts.root, camera);
  await mkdir(cameraDir, { recursive: true });
  const configFile = path.join(work, "motion.conf");
  const hookLog = path.join(work, "hooks.jsonl");
  await writeFile(hookLog, "");
  const feed = await startNetCamera();
  await writeFile(
    configFile,
    motionConfig({
      camera,
      netcamUrl: feed.url,
      targetDir: cameraDir,
      framerate,
      eventGap,
      preCapture: opts.preCapture ?? 1,
      postCapture: opts.postCapture ?? 1,
      hooks: hookLines(opts),
    }),
  );

  let calls: HookCall[] = [];
  const movies: RecordedMovie[] = [];
  const thumbnails = new Set<Promise<void>>();
  let lastPicture: string | undefined;
  let stopped = false;

  /** Reads new hook calls; a movie_end schedules its thumbnail, as motionEye's server does. */
  const refresh = async () => {
    const all = parseHookLog(await readFile(hookLog, "utf8").catch(() => ""));
    for (const call of all.slice(calls.length)) {
      if (call.hook !== "relayevent") continue;
      // hooks race each other (each is its own process), so an event's picture is the one
      // saved since the previous movie ended, not since its start
      if (call.event === "picture_save") lastPicture = call.args?.[1];
      if (call.event === "movie_end" && call.args?.[1]) {
        const file = call.args[1];
        const thumbnailReady = (async () => {
          await sleep(Math.max(0, call.t + thumbnailDelayMs - Date.now()));
          if (!stopped) await makeThumbnail(file);
        })();
        thumbnails.add(thumbnailReady);
        void thumbnailReady.finally(() => thumbnails.delete(thumbnailReady));
        movies.push({
          path: file,
          relPath: path.relative(opts.root, file).split(path.sep).join("/"),
          picture: lastPicture,
          thumb: `${file}.thumb`,
          endedAt: call.t,
          thumbnailReady,
        });
        lastPicture = undefined;
      }
    }
    calls = all;
  };
  const poller = setInterval(() => void refresh(), 100);
  poller.unref();

  const env = { ...(opts.env ?? process.env), MEVAULT_HOOK_LOG: hookLog };
  let server: ServerChild | null = spawnServer(MOTION, ["-n", "-c", configFile], {
    name: `motion:${camera}`,
    env,
    cwd: work,
  });
  const alive = () =>
    server !== null && server.child.exitCode === null && server.child.signalCode === null;
  const describe = () => `motion's output:\n${server?.output().slice(-4000) ?? ""}`;

  async function until(ok: () => boolean, what: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await refresh();
      if (ok()) return;
      if (!alive()) throw new Error(`motion exited while waiting for ${what}\n${describe()}`);
      if (Date.now() > deadline) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${describe()}`);
      }
      await sleep(100);
    }
  }

  const close = async () => {
    stopped = true;
    clearInterval(poller);
    const s = server;
    server = null;
    await s?.stop(10_000);
    await Promise.allSettled([...thumbnails]);
    await feed.close();
    await rm(work, { recursive: true, force: true });
    forgetWork();
  };

  try {
    // motion opens the stream twice (a probe, then its capture thread), then skips detection
    // for its start-up frames (2 s of framerate, pre_capture, minimum_motion_frames) while it
    // learns the scene: an event started before that is missed or merged.
    await until(() => feed.clients > 0, "motion to connect to the camera", 20_000);
    await until(
      () => feed.clients > 0 && Date.now() - feed.lastConnectAt >= MOTION_STARTUP_MS,
      "motion to learn the still scene",
      30_000,
    );
  } catch (err) {
    await close();
    throw err;
  }

  const count = (event: string) =>
    calls.filter((c) => c.hook === "relayevent" && c.event === event).length;
  let moviesBefore = 0;

  const startEvent = async () => {
    await refresh();
    const starts = count("start");
    moviesBefore = movies.length;
    feed.setMotion(true);
    await until(() => count("start") > starts, "motion to start an event", 30_000);
  };
  const endEvent = async (): Promise<RecordedMovie> => {
    feed.setMotion(false);
    await until(
      () => movies.length > moviesBefore,
      "motion to close the movie",
      (eventGap + 30) * 1000,
    );
    return movies[movies.length - 1] as RecordedMovie;
  };

  return {
    camera,
    root: opts.root,
    cameraDir,
    feed,
    configFile,
    hookLog,
    get pid() {
      return alive() ? (server as ServerChild).pid : null;
    },
    hooks: () => [...calls],
    movies: () => [...movies],
    startEvent,
    endEvent,
    recordEvent: async (seconds: number) => {
      await startEvent();
      await sleep(seconds * 1000);
      return endEvent();
    },
    kill: async () => {
      const pid = server?.pid;
      if (pid && alive()) {
        const exited = new Promise((resolve) => server?.child.once("exit", resolve));
        process.kill(pid, "SIGKILL");
        await exited;
      }
    },
    stop: async () => {
      stopped = true;
      await server?.stop(10_000);
      await Promise.allSettled([...thumbnails]);
    },
    close,
    output: () => server?.output() ?? "",
  };
}
