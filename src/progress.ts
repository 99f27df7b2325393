import { MultiBar, Presets } from "cli-progress";
import type { EventBus } from "./events.js";
import { formatBytes } from "./format.js";

/** A terminal progress bar over the event bus (files and bytes). Returns a function to stop it. */
export function showSyncProgress(events: EventBus): () => void {
  const bars = new MultiBar(
    {
      format: " {bar} {percentage}% | {value}/{total} clips | {done} of {size} | {clip}",
      hideCursor: true,
      clearOnComplete: false,
      stream: process.stderr,
    },
    Presets.shades_classic,
  );
  let bar: ReturnType<MultiBar["create"]> | undefined;
  let totalBytes = 0;
  let doneBytes = 0;
  const inFlight = new Map<string, number>();
  const payload = (clip: string) => {
    const current = [...inFlight.values()].reduce((a, b) => a + b, 0);
    return { clip, done: formatBytes(doneBytes + current), size: formatBytes(totalBytes) };
  };
  const offs = [
    events.on("syncPlanned", (p) => {
      totalBytes = p.bytes;
      if (p.toUpload > 0) bar = bars.create(p.toUpload, 0, payload(""));
    }),
    events.on("clipProgress", (p) => {
      inFlight.set(p.id, p.bytes);
      bar?.update(payload(p.id));
    }),
    events.on("clipBackedUp", (p) => {
      inFlight.delete(p.id);
      doneBytes += p.size;
      bar?.increment(1, payload(p.id));
    }),
    events.on("clipFailed", (p) => {
      inFlight.delete(p.id);
    }),
  ];
  return () => {
    for (const off of offs) off();
    bars.stop();
  };
}
