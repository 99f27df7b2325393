import { describe, expect, it } from "vitest";
import { RestoreQueue } from "../../src/extensions/telegram/restoreQueue.js";

/** A job that runs until released, recording when it started and ended. */
function gate(log: string[], name: string) {
  let release = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  return {
    release: () => release(),
    job: async () => {
      log.push(`start ${name}`);
      await released;
      log.push(`end ${name}`);
      return name;
    },
  };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("RestoreQueue", () => {
  it("runs one restore at a time per chat, in order, and a few at once over all chats", async () => {
    const q = new RestoreQueue(2);
    const log: string[] = [];
    const a1 = gate(log, "a1");
    const a2 = gate(log, "a2");
    const b1 = gate(log, "b1");
    const c1 = gate(log, "c1");

    expect(q.admission(1)).toEqual({ accepted: true, mine: 0, busy: 0 });
    const ra1 = q.run(1, a1.job);
    expect(q.admission(1)).toEqual({ accepted: true, mine: 1, busy: 0 });
    const ra2 = q.run(1, a2.job);
    const rb1 = q.run(2, b1.job);
    await settle();
    // a2 waits for a1 (same chat), although a slot is free for b1.
    expect(log).toEqual(["start a1", "start b1"]);
    // Both slots are taken: a third chat is told it waits.
    expect(q.admission(3)).toEqual({ accepted: true, mine: 0, busy: 1 });
    const rc1 = q.run(3, c1.job);
    await settle();
    expect(log).toEqual(["start a1", "start b1"]);

    a1.release();
    expect(await ra1).toBe("a1");
    await settle();
    // a1's slot goes to the one waiting longest for a slot (c1); a2 queues for the next.
    expect(log.slice(2)).toEqual(["end a1", "start c1"]);
    b1.release();
    await rb1;
    await settle();
    expect(log.slice(4)).toEqual(["end b1", "start a2"]);
    a2.release();
    c1.release();
    await Promise.all([ra2, rc1]);
    expect(q.admission(1)).toEqual({ accepted: true, mine: 0, busy: 0 });
  });

  it("a failed restore does not stop the chat's next one", async () => {
    const q = new RestoreQueue(1);
    const failed = q.run(7, () => Promise.reject(new Error("broken clip")));
    const next = q.run(7, async () => "sent");
    await expect(failed).rejects.toThrow("broken clip");
    expect(await next).toBe("sent");
  });

  it("refuses more than its limit of waiting restores for one chat", async () => {
    const q = new RestoreQueue(1, 2);
    const log: string[] = [];
    const first = gate(log, "1");
    const second = gate(log, "2");
    const runs = [q.run(5, first.job), q.run(5, second.job)];
    await settle();
    expect(q.admission(5)).toMatchObject({ accepted: false });
    expect(q.admission(6)).toEqual({ accepted: true, mine: 0, busy: 1 });
    first.release();
    second.release();
    await Promise.all(runs);
    expect(q.admission(5)).toEqual({ accepted: true, mine: 0, busy: 0 });
  });
});
