import { Limiter } from "../../util/async.js";

/** What a chat is told when it asks for a restore. */
export type Admission =
  | {
      accepted: true /** This chat's restores before this one. */;
      mine: number /** Other chats' restores holding every slot. */;
      busy: number;
    }
  | { accepted: false; reason: string };

/**
 * Restores, one at a time per chat and a few at a time overall: each one downloads, decrypts,
 * perhaps cuts a clip and uploads it, so a chat asking for ten big clips must not hold up the
 * others. A chat's restores run in the order asked; a chat with too many waiting is told so.
 */
export class RestoreQueue {
  private readonly slots: Limiter;
  private readonly chats = new Map<number, { tail: Promise<void>; count: number }>();

  constructor(
    parallel: number,
    private readonly perChat = 10,
  ) {
    this.slots = new Limiter(parallel);
  }

  /** Where a new restore of this chat would stand; nothing is queued. */
  admission(chatId: number): Admission {
    const mine = this.chats.get(chatId)?.count ?? 0;
    if (mine >= this.perChat) {
      return {
        accepted: false,
        reason: `${mine} restores of this chat are waiting already: ask again when they are through.`,
      };
    }
    return { accepted: true, mine, busy: mine === 0 ? this.slots.ahead : 0 };
  }

  /** Runs `job` after this chat's earlier restores, in one of the shared slots. */
  run<T>(chatId: number, job: () => Promise<T>): Promise<T> {
    let chat = this.chats.get(chatId);
    if (!chat) {
      chat = { tail: Promise.resolve(), count: 0 };
      this.chats.set(chatId, chat);
    }
    const entry = chat;
    entry.count++;
    const result = entry.tail.then(() => this.slots.run(job));
    entry.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result.finally(() => {
      entry.count--;
      if (entry.count === 0 && this.chats.get(chatId) === entry) this.chats.delete(chatId);
    });
  }
}
