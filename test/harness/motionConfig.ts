/**
 * motion's config for one camera as motionEye writes it (motioneye/config.py,
 * motion_camera_ui_to_dict), for ./motion.ts: the settings and the event hook lines.
 */
import path from "node:path";
import { NETCAM_FPS, NETCAM_HEIGHT, NETCAM_WIDTH } from "./netcam.js";

const PYTHON = "/usr/bin/python3";
const MEYECTL_SCRIPT = path.join(import.meta.dirname, "motioneye", "meyectl.py");
/** The stand-in for motionEye's meyectl, as a command line (`${MEYECTL} record NAME %$ %f`). */
export const MEYECTL = `${PYTHON} ${MEYECTL_SCRIPT}`;

/** motionEye's "Call A Web Hook" methods (GET, POST, POST form, POST json). */
export type WebHookMethod = "GET" | "POST" | "POSTf" | "POSTj";

/** motionEye's fields that become hook lines. */
export interface HookOptions {
  /** File Storage > "Run A Command" (motionEye's `command_storage_exec`), e.g. `x.sh %$ %f`. */
  storageCommand?: string;
  /** Motion Notifications > "Run An End Command" (`command_end_notifications_exec`). */
  endCommand?: string;
  /** File Storage > "Call A Web Hook": motion expands `%$`, `%f`... in the URL. */
  storageWebHook?: { method: WebHookMethod; url: string };
}

/** A motion config line's value must be one line. */
function oneLine(value: string, what: string): string {
  if (/[\r\n]/.test(value)) throw new Error(`motion harness: ${what} must be one line`);
  return value;
}

export function motionConfig(o: {
  camera: string;
  netcamUrl: string;
  targetDir: string;
  framerate: number;
  eventGap: number;
  preCapture: number;
  postCapture: number;
  hooks: Record<string, string>;
}): string {
  const lines = [
    "# motioneye-vault test harness: one camera as motionEye configures it",
    "daemon off",
    "setup_mode off",
    "log_level 6",
    "camera_id 1",
    `camera_name ${o.camera}`,
    `netcam_url ${o.netcamUrl}`,
    // not motionEye's: an MJPEG stream has no rate motion can learn, and read at `framerate`
    // (2/s) a camera sending 10/s leaves motion ever further behind; it records at `framerate`
    `netcam_params capture_rate=${Math.ceil(NETCAM_FPS * 1.5)}`,
    `width ${NETCAM_WIDTH}`,
    `height ${NETCAM_HEIGHT}`,
    `framerate ${o.framerate}`,
    `target_dir ${o.targetDir}`,
    // motionEye's defaults: movies and pictures in one folder per day
    "movie_filename %Y-%m-%d/%H-%M-%S",
    "picture_filename %Y-%m-%d/%H-%M-%S",
    "snapshot_filename %Y-%m-%d/%H-%M-%S",
    "movie_output on",
    "movie_codec mp4",
    "movie_quality 75",
    "movie_passthrough off",
    "movie_max_time 0",
    "picture_output first",
    "picture_quality 85",
    "emulate_motion off",
    `text_left ${o.camera}`,
    "text_right %Y-%m-%d\\n%T",
    "locate_motion_mode off",
    // low threshold: the moving box changes ~10% of the picture
    "threshold 1000",
    "noise_tune on",
    "noise_level 32",
    "lightswitch_percent 0",
    "minimum_motion_frames 1",
    `event_gap ${o.eventGap}`,
    `pre_capture ${o.preCapture}`,
    `post_capture ${o.postCapture}`,
    "webcontrol_port 0",
    "stream_port 0",
  ];
  for (const [name, value] of Object.entries(o.hooks)) lines.push(`${name} ${value}`);
  return `${lines.join("\n")}\n`;
}

/**
 * The lines motionEye writes for the events (motion_camera_ui_to_dict): its relay first, then
 * the web hook, then the user's command, joined with "; ".
 */
export function hookLines(o: HookOptions): Record<string, string> {
  const meyectl = MEYECTL;
  const join = (parts: (string | undefined)[]) =>
    parts.filter((p): p is string => Boolean(p)).join("; ");
  const hook = o.storageWebHook
    ? `${meyectl} webhook '${o.storageWebHook.method}' '${oneLine(o.storageWebHook.url, "storageWebHook.url").replace(/\s/g, "+")}'`
    : undefined;
  const storage = o.storageCommand ? oneLine(o.storageCommand, "storageCommand") : undefined;
  const end = o.endCommand ? oneLine(o.endCommand, "endCommand") : undefined;
  return {
    on_event_start: `${meyectl} relayevent start %t`,
    on_event_end: join([`${meyectl} relayevent stop %t`, end]),
    on_movie_end: join([`${meyectl} relayevent movie_end %t %f`, hook, storage]),
    on_picture_save: join([`${meyectl} relayevent picture_save %t %f`, hook, storage]),
  };
}
