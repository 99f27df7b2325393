import { errorMessage, type Logger } from "../../util/log.js";
import { isJpeg } from "../thumbnail.js";

/**
 * Feeds Home Assistant's "Last clip thumbnail" image entity: motionEye's `<movie>.thumb` of the
 * newest clip backed up, published retained as JPEG bytes. motionEye writes the thumbnail a few
 * seconds after the movie ends, and a clip named by motionEye's storage command is often backed
 * up before that: a missing thumbnail is looked for again a little later.
 */

/** When to look for a clip's thumbnail, after it was backed up (ms). */
const DEFAULT_ATTEMPTS_MS = [0, 6_000, 15_000];

export interface ThumbnailOptions {
  /** A clip's thumbnail from its source (thumbnail.ts's readThumb). */
  read(clipId: string): Promise<Buffer | undefined>;
  topic: string;
  logger: Logger;
  /** Publishes retained; false when the broker is out of reach. */
  publish(topic: string, payload: Buffer): Promise<boolean>;
  attemptsMs?: readonly number[];
}

export class ThumbnailPublisher {
  /** Counts clips: only the newest clip's thumbnail is published. */
  private latest = 0;
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;
  private readonly attemptsMs: readonly number[];

  constructor(private readonly opts: ThumbnailOptions) {
    this.attemptsMs = opts.attemptsMs ?? DEFAULT_ATTEMPTS_MS;
  }

  /** A clip was backed up: show its thumbnail once there is one. */
  clipBackedUp(clipId: string): void {
    this.show(clipId, this.attemptsMs);
  }

  /** At start: show the last clip's thumbnail if the source still has it (no waiting). */
  showExisting(clipId: string): void {
    this.show(clipId, [0]);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private show(clipId: string, attempts: readonly number[]): void {
    const seq = ++this.latest;
    const attempt = async (i: number): Promise<void> => {
      if (this.stopped || seq !== this.latest) return;
      const thumb = await this.opts.read(clipId);
      if (this.stopped || seq !== this.latest) return;
      if (thumb && isJpeg(thumb)) {
        const sent = await this.opts.publish(this.opts.topic, thumb);
        this.opts.logger.debug({ clip: clipId, bytes: thumb.length, sent }, "thumbnail published");
        return;
      }
      const next = attempts[i + 1];
      if (next === undefined) {
        this.opts.logger.debug({ clip: clipId }, "no thumbnail for this clip");
        return;
      }
      this.after(next - (attempts[i] ?? 0), () => attempt(i + 1));
    };
    this.after(attempts[0] ?? 0, () => attempt(0));
  }

  private after(ms: number, work: () => Promise<void>): void {
    const timer = setTimeout(
      () => {
        this.timers.delete(timer);
        work().catch((err: unknown) =>
          this.opts.logger.debug({ err: errorMessage(err) }, "thumbnail not published"),
        );
      },
      Math.max(0, ms),
    );
    timer.unref();
    this.timers.add(timer);
  }
}
