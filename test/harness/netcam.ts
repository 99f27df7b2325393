/**
 * A network camera on loopback for the real `motion` daemon: an HTTP server that streams
 * `multipart/x-mixed-replace` JPEG frames (an MJPEG netcam, what motion's `netcam_url` reads).
 * The frames are rendered once by ffmpeg: a still scene, and the same scene with a black box
 * moving across it. `setMotion(true)` switches the stream to the moving box, so motion detects
 * motion; `setMotion(false)` back to the still scene (identical JPEG bytes: no change at all).
 */
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { removeOnExit, runCommand } from "./processes.js";

export const NETCAM_WIDTH = 320;
export const NETCAM_HEIGHT = 240;
/** Frames per second the camera sends (the box moves 23 px per frame). */
export const NETCAM_FPS = 10;
const SEND_FPS = NETCAM_FPS;
const MOVING_FRAMES = 20;
const BOUNDARY = "mevaultframe";

export interface NetCamera {
  /** The stream, for motion's `netcam_url`. */
  url: string;
  port: number;
  /** True while the scene moves. */
  readonly moving: boolean;
  setMotion(on: boolean): void;
  /** Frames sent so far, over every connection. */
  readonly framesSent: number;
  /** Open stream connections (motion holds one while it runs). */
  readonly clients: number;
  /** When the newest stream connection opened, ms since epoch (0: none yet). */
  readonly lastConnectAt: number;
  close(): Promise<void>;
}

/** Renders the still and the moving frames with ffmpeg's test source into `dir`. */
async function renderFrames(dir: string): Promise<{ still: Buffer; moving: Buffer[] }> {
  const size = `${NETCAM_WIDTH}x${NETCAM_HEIGHT}`;
  const ffmpeg = (args: string[]) =>
    runCommand("ffmpeg", ["-hide_banner", "-loglevel", "error", "-y", ...args], {
      timeoutMs: 60_000,
    });
  const stillPng = path.join(dir, "still.png");
  await ffmpeg(["-f", "lavfi", "-i", `testsrc=s=${size}`, "-frames:v", "1", stillPng]);
  // A black box moves over the still scene: a third of the picture (80x120 of 320x240), 23 px
  // per frame, far above motion's threshold. The still frame goes through the same filter
  // chain with the box off-screen, so every pixel away from the box is the same in all frames
  // (once the box stops, motion's reference frame matches the scene again).
  const boxOver = (x: string, frames: number, out: string) =>
    ffmpeg([
      "-loop",
      "1",
      "-i",
      stillPng,
      "-f",
      "lavfi",
      "-i",
      `color=c=black:s=80x120:r=${SEND_FPS}`,
      "-filter_complex",
      `[0:v][1:v]overlay=x='${x}':y=60`,
      "-frames:v",
      String(frames),
      "-q:v",
      "5",
      path.join(dir, out),
    ]);
  await boxOver("-400", 1, "frame-00.jpg");
  await boxOver(`mod(n*23,${NETCAM_WIDTH - 80})`, MOVING_FRAMES, "frame-%02d.jpg");
  const names = (await readdir(dir)).filter((n) => n.startsWith("frame-")).sort();
  const [still, ...moving] = await Promise.all(names.map((n) => readFile(path.join(dir, n))));
  if (!still || moving.length === 0) throw new Error(`netcam: ffmpeg rendered no frames in ${dir}`);
  return { still, moving };
}

/**
 * Starts the camera on a free port of 127.0.0.1 (still scene), sending `NETCAM_FPS` frames a
 * second. motion cannot learn an MJPEG stream's rate: it reads it at `capture_rate` (netcam
 * params, default its `framerate`), so give motion a capture rate above NETCAM_FPS, or it falls
 * ever further behind the scene.
 */
export async function startNetCamera(): Promise<NetCamera> {
  const intervalMs = 1000 / NETCAM_FPS;
  const dir = await mkdtemp(path.join(os.tmpdir(), "mevault-netcam-"));
  const forget = removeOnExit(dir);
  const frames = await renderFrames(dir);
  await rm(dir, { recursive: true, force: true });
  forget();

  let moving = false;
  let next = 0;
  let framesSent = 0;
  let lastConnectAt = 0;
  const streams = new Set<http.ServerResponse>();
  const frame = (): Buffer => {
    if (!moving) return frames.still;
    const f = frames.moving[next % frames.moving.length] as Buffer;
    next++;
    return f;
  };
  // One clock for every connection: all of them see the same scene at the same moment.
  const timer = setInterval(() => {
    if (streams.size === 0) return;
    const jpeg = frame();
    const head = `--${BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: ${jpeg.length}\r\n\r\n`;
    for (const res of streams) {
      res.write(head);
      res.write(jpeg);
      res.write("\r\n");
      framesSent++;
    }
  }, intervalMs);
  timer.unref();

  const server = http.createServer((req, res) => {
    if (req.method !== "GET" || !req.url?.startsWith("/stream")) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, {
      "Content-Type": `multipart/x-mixed-replace; boundary=${BOUNDARY}`,
      "Cache-Control": "no-cache",
      Connection: "close",
    });
    streams.add(res);
    lastConnectAt = Date.now();
    const drop = () => streams.delete(res);
    req.on("close", drop);
    res.on("error", drop);
  });
  server.keepAliveTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  server.unref();
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}/stream`,
    port,
    get moving() {
      return moving;
    },
    setMotion(on: boolean) {
      moving = on;
    },
    get framesSent() {
      return framesSent;
    },
    get clients() {
      return streams.size;
    },
    get lastConnectAt() {
      return lastConnectAt;
    },
    close: async () => {
      clearInterval(timer);
      for (const res of streams) res.destroy();
      streams.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
