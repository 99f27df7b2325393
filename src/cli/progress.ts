import { MultiBar, Presets } from "cli-progress";
import type { EventBus } from "../util/events.js";
import { formatBytes } from "../util/format.js";

/** A terminal progress bar of clips and bytes, on stderr: shared by sync and restore. */
export class ClipProgressBar {
  private readonly bars = new MultiBar(
    {
      format: " {bar} {percentage}% | {value}/{total} clips | {done} of {size} | {clip}",
      hideCursor: true,
      clearOnComplete: false,
      stream: process.stderr,
    },
    Presets.shades_classic,
  );
  private bar: ReturnType<MultiBar["create"]> | undefined;
  private totalBytes = 0;
  private doneBytes = 0;
  private readonly inFlight = new Map<string, number>();

  /** Adds work: called once per restore, once per source of a sync. */
  start(clips: number, bytes: number): void {
    this.totalBytes += bytes;
    if (clips === 0) return;
    if (this.bar) this.bar.setTotal(this.bar.getTotal() + clips);
    else this.bar = this.bars.create(clips, 0, this.payload(""));
  }

  /** `bytes` so far of a clip in flight. */
  progress(id: string, bytes: number): void {
    this.inFlight.set(id, bytes);
    this.bar?.update(this.payload(id));
  }

  done(id: string, size: number): void {
    this.inFlight.delete(id);
    this.doneBytes += size;
    this.bar?.increment(1, this.payload(id));
  }

  failed(id: string): void {
    this.inFlight.delete(id);
  }

  stop(): void {
    this.bars.stop();
  }

  private payload(clip: string) {
    const current = [...this.inFlight.values()].reduce((a, b) => a + b, 0);
    return {
      clip,
      done: formatBytes(this.doneBytes + current),
      size: formatBytes(this.totalBytes),
    };
  }
}

/** The sync progress bar, driven by the event bus. Returns a function to stop it. */
export function showSyncProgress(events: EventBus): () => void {
  const bar = new ClipProgressBar();
  const offs = [
    events.on("syncPlanned", (p) => bar.start(p.toUpload, p.bytes)),
    events.on("clipProgress", (p) => bar.progress(p.id, p.bytes)),
    events.on("clipBackedUp", (p) => bar.done(p.id, p.size)),
    events.on("clipFailed", (p) => bar.failed(p.id)),
  ];
  return () => {
    for (const off of offs) off();
    bar.stop();
  };
}
