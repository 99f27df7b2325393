import { type Api, GrammyError } from "grammy";
import type { Logger } from "../../util/log.js";
import { apiSignal, quote } from "./common.js";

/** Telegram takes about one edit a second per chat: frequent updates wait this long. */
const THROTTLE_MS = 3000;

/**
 * One message that says how a long job is going ("decrypting…", "sending part 2/4…"): sent on
 * the first update, edited on the next ones, removed when the result speaks for itself. A
 * failed send or edit is logged and never fails the job.
 */
export class ProgressMessage {
  private messageId: number | undefined;
  private shown = "";
  private lastAt = 0;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly api: Api,
    private readonly chatId: number,
    /** Put before every text, e.g. the clip id. */
    private readonly prefix: string,
    private readonly log: Logger,
    private readonly describe: (err: unknown) => string,
    private readonly signal: AbortSignal,
  ) {}

  /** Shows `text` now (after any update still on its way). */
  set(text: string): Promise<void> {
    this.chain = this.chain.then(() => this.show(text));
    return this.chain;
  }

  /** Shows `text` unless the message changed less than a few seconds ago (for counters). */
  tick(text: string): void {
    if (Date.now() - this.lastAt < THROTTLE_MS) return;
    this.lastAt = Date.now();
    void this.set(text);
  }

  /** Deletes the message (the video or the error that follows says it all). */
  remove(): Promise<void> {
    this.chain = this.chain.then(async () => {
      const id = this.messageId;
      if (id === undefined) return;
      this.messageId = undefined;
      await this.api
        .deleteMessage(this.chatId, id, apiSignal(this.signal))
        .catch((err: unknown) => this.failed("delete", err));
    });
    return this.chain;
  }

  private async show(text: string): Promise<void> {
    const full = quote(`${this.prefix}${text}`, 1000);
    if (full === this.shown || this.signal.aborted) return;
    this.shown = full;
    this.lastAt = Date.now();
    try {
      if (this.messageId === undefined) {
        const sent = await this.api.sendMessage(this.chatId, full, {}, apiSignal(this.signal));
        this.messageId = sent.message_id;
      } else {
        await this.api.editMessageText(
          this.chatId,
          this.messageId,
          full,
          {},
          apiSignal(this.signal),
        );
      }
    } catch (err) {
      if (err instanceof GrammyError && err.description.includes("not modified")) return;
      this.failed("update", err);
    }
  }

  private failed(what: string, err: unknown): void {
    if (this.signal.aborted) return;
    this.log.debug({ err: this.describe(err) }, `telegram: could not ${what} a progress message`);
  }
}
