/**
 * `sync.bandwidthLimit`: an upload cap in bytes per second, rclone-style.
 *
 * - A rate: `512k` (KiB/s), `2M` (MiB/s), `1G`, `64000` or `64000B` (bytes/s), or `off`.
 * - A timetable: `"08:00,512k 23:00,off"`: from 08:00 the cap is 512 KiB/s, from 23:00 there is
 *   none; before the first time of the day the last entry still holds (as rclone does). Times
 *   are the machine's local time.
 *
 * One `BandwidthLimit` is shared by every upload of the process (a token bucket), so two clips
 * in flight share the cap instead of getting it each.
 */

/** Bytes per second, or null for no cap. */
export type Rate = number | null;

export interface TimetableEntry {
  /** Minutes after local midnight. */
  minute: number;
  rate: Rate;
}

export type BandwidthSchedule =
  | { kind: "rate"; rate: Rate }
  | { kind: "timetable"; entries: TimetableEntry[] };

/** Below this the upload watchdog (no byte for idleTimeoutSeconds) would fail slow clips. */
export const MIN_RATE = 1024;

const UNITS: Record<string, number> = { "": 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

export class BandwidthLimitError extends Error {
  override name = "BandwidthLimitError";
}

/** `512k`, `2M`, `1.5M`, `64000`, `off`; throws BandwidthLimitError saying what is wrong. */
export function parseRate(text: string): Rate {
  const t = text.trim();
  if (/^(off|none|0)$/i.test(t)) return null;
  const m = /^(\d+(?:\.\d+)?)\s*([bkmg]?)(?:i?b)?(?:\/s)?$/i.exec(t);
  if (!m) {
    throw new BandwidthLimitError(
      `"${t}" is not a rate: use a number of bytes per second with k (KiB) or M (MiB), like 512k or 2M, or off`,
    );
  }
  const rate = Math.round(Number(m[1]) * (UNITS[(m[2] ?? "").toLowerCase()] ?? 1));
  if (rate < MIN_RATE) {
    throw new BandwidthLimitError(
      `"${t}" is under 1k (1 KiB/s): uploads that slow would trip the upload watchdog; use off for no cap`,
    );
  }
  return rate;
}

/** A rate or a timetable, as `sync.bandwidthLimit` takes it (a bare YAML number is bytes/s). */
export function parseBandwidthLimit(value: string | number): BandwidthSchedule {
  const text = String(value).trim();
  if (text === "") throw new BandwidthLimitError("is empty: give a rate like 2M, or off");
  if (!text.includes(",")) return { kind: "rate", rate: parseRate(text) };
  const entries: TimetableEntry[] = [];
  for (const part of text.split(/\s+/)) {
    const m = /^(\d{1,2}):(\d{2}),(.+)$/.exec(part);
    if (!m) {
      throw new BandwidthLimitError(
        `timetable entry "${part}" is not HH:MM,RATE (a timetable looks like "08:00,512k 23:00,off")`,
      );
    }
    const hours = Number(m[1]);
    const minutes = Number(m[2]);
    if (hours > 23 || minutes > 59) {
      throw new BandwidthLimitError(
        `timetable entry "${part}": ${m[1]}:${m[2]} is not a time of day`,
      );
    }
    const minute = hours * 60 + minutes;
    if (entries.some((e) => e.minute === minute)) {
      throw new BandwidthLimitError(`timetable entry "${part}": ${m[1]}:${m[2]} is given twice`);
    }
    try {
      entries.push({ minute, rate: parseRate(m[3] ?? "") });
    } catch (err) {
      throw new BandwidthLimitError(`timetable entry "${part}": ${(err as Error).message}`);
    }
  }
  entries.sort((a, b) => a.minute - b.minute);
  return { kind: "timetable", entries };
}

/** The cap in force at `at`, and when it next changes (undefined: never). */
export function rateAt(schedule: BandwidthSchedule, at: Date): { rate: Rate; nextChange?: Date } {
  if (schedule.kind === "rate") return { rate: schedule.rate };
  const { entries } = schedule;
  const minute = at.getHours() * 60 + at.getMinutes();
  let current = entries[entries.length - 1] as TimetableEntry;
  let next = entries[0] as TimetableEntry;
  for (const [i, e] of entries.entries()) {
    if (e.minute > minute) break;
    current = e;
    next = entries[(i + 1) % entries.length] as TimetableEntry;
  }
  const change = new Date(at);
  change.setHours(Math.floor(next.minute / 60), next.minute % 60, 0, 0);
  if (change.getTime() <= at.getTime()) change.setDate(change.getDate() + 1);
  return { rate: current.rate, nextChange: change };
}

/** `512 KiB/s`, `2 MiB/s`, `off`. */
export function formatRate(rate: Rate): string {
  if (rate === null) return "off";
  for (const [unit, size] of [
    ["GiB", 1024 ** 3],
    ["MiB", 1024 ** 2],
    ["KiB", 1024],
  ] as const) {
    if (rate >= size) return `${Number((rate / size).toFixed(2))} ${unit}/s`;
  }
  return `${rate} B/s`;
}

/** What `status`, the state document and Home Assistant show. */
export interface BandwidthState {
  /** Bytes per second now, null for no cap. */
  bytesPerSecond: Rate;
  /** The same, as text: `512 KiB/s` or `off`. */
  text: string;
  /** `config` (sync.bandwidthLimit as configured) or `override` (set live, e.g. from Home Assistant). */
  from: "config" | "override";
  /** The configured value as written (`off` when unset). */
  configured: string;
  /** When the timetable next changes the cap, if it does. */
  nextChange: string | null;
}

interface Waiter {
  bytes: number;
  resolve: () => void;
}

/**
 * The shared token bucket. Pieces are taken in the order asked (FIFO), so concurrent uploads
 * share the rate evenly. The bucket holds an eighth of a second of the rate (at least 16 KiB),
 * which bounds the burst after an idle moment and keeps the achieved rate within a few percent.
 */
export class BandwidthLimit {
  private tokens = 0;
  private refilledAt: number;
  private rate: Rate;
  private overrideRate: { rate: Rate; until?: number } | undefined;
  private readonly waiters: Waiter[] = [];
  private timer: NodeJS.Timeout | undefined;
  private switchTimer: NodeJS.Timeout | undefined;
  private readonly listeners = new Set<(state: BandwidthState) => void>();
  private readonly now: () => number;

  constructor(
    private readonly schedule: BandwidthSchedule,
    private readonly configured: string,
    opts: { now?: () => number } = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.refilledAt = this.now();
    this.rate = this.scheduledRate().rate;
    this.tokens = this.capacity();
  }

  /** No cap at all, whatever the time: what an unset sync.bandwidthLimit gives. */
  static off(): BandwidthLimit {
    return new BandwidthLimit({ kind: "rate", rate: null }, "off");
  }

  static fromConfig(
    value: string | number | undefined,
    opts: { now?: () => number } = {},
  ): BandwidthLimit {
    if (value === undefined) return BandwidthLimit.off();
    return new BandwidthLimit(parseBandwidthLimit(value), String(value).trim(), opts);
  }

  /** The cap now (re-reading the timetable), where it comes from and when it next changes. */
  state(): BandwidthState {
    this.update();
    return this.snapshot();
  }

  private snapshot(): BandwidthState {
    const scheduled = this.scheduledRate();
    const next = this.overrideRate ? this.overrideRate.until : scheduled.nextChange?.getTime();
    return {
      bytesPerSecond: this.rate,
      text: formatRate(this.rate),
      from: this.overrideRate ? "override" : "config",
      configured: this.configured,
      nextChange: next === undefined ? null : new Date(next).toISOString(),
    };
  }

  /**
   * Sets the cap live (Home Assistant's number entity): it holds until the timetable's next
   * change, or until changed again when the config gives a plain rate. `undefined` goes back to
   * the configured cap.
   */
  override(rate: Rate | undefined): void {
    if (rate === undefined) this.overrideRate = undefined;
    else this.overrideRate = { rate, until: this.scheduledRate().nextChange?.getTime() };
    this.update(true);
    this.pump();
  }

  /** Tells `listener` when the cap changes (the timetable's switch times, overrides). */
  onChange(listener: (state: BandwidthState) => void): () => void {
    this.listeners.add(listener);
    this.armSwitch();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) clearTimeout(this.switchTimer);
    };
  }

  /** Wakes at the timetable's next change while someone listens, even with no upload going. */
  private armSwitch(): void {
    clearTimeout(this.switchTimer);
    const next = this.state().nextChange;
    if (next === null || this.listeners.size === 0) return;
    this.switchTimer = setTimeout(
      () => {
        this.update();
        this.armSwitch();
      },
      Math.max(1000, Date.parse(next) - this.now() + 50),
    );
    // Never what keeps a process alive.
    this.switchTimer.unref?.();
  }

  /** Resolves once `bytes` may be sent (at once when there is no cap). */
  take(bytes: number): Promise<void> {
    this.update();
    if (this.rate === null && this.waiters.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiters.push({ bytes, resolve });
      this.pump();
    });
  }

  /** True when bytes may pass at once, with nobody waiting: no cap right now. */
  uncapped(): boolean {
    this.update();
    return this.rate === null && this.waiters.length === 0;
  }

  /** The largest piece a caller should take at once (a piece never exceeds the bucket). */
  pieceSize(): number {
    return Math.min(64 * 1024, this.capacity());
  }

  private capacity(): number {
    return this.rate === null ? Number.POSITIVE_INFINITY : Math.max(16 * 1024, this.rate / 8);
  }

  private scheduledRate(): { rate: Rate; nextChange?: Date } {
    return rateAt(this.schedule, new Date(this.now()));
  }

  /** Refills the bucket and applies the timetable or override; tells listeners of a change. */
  private update(notify = false): void {
    const t = this.now();
    if (this.rate !== null) {
      this.tokens = Math.min(
        this.capacity(),
        this.tokens + ((t - this.refilledAt) / 1000) * this.rate,
      );
    }
    this.refilledAt = t;
    if (this.overrideRate?.until !== undefined && t >= this.overrideRate.until)
      this.overrideRate = undefined;
    const rate = this.overrideRate ? this.overrideRate.rate : this.scheduledRate().rate;
    if (rate !== this.rate) {
      this.rate = rate;
      this.tokens = Math.min(this.tokens, this.capacity());
      notify = true;
    }
    if (notify) {
      const state = this.snapshot();
      for (const l of this.listeners) l(state);
    }
  }

  private pump(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.update();
    for (let w = this.waiters[0]; w; w = this.waiters[0]) {
      if (this.rate !== null) {
        const need = Math.min(w.bytes, this.capacity());
        if (this.tokens < need) break;
        this.tokens -= need;
      }
      this.waiters.shift();
      w.resolve();
    }
    const head = this.waiters[0];
    if (!head || this.rate === null) return;
    const need = Math.min(head.bytes, this.capacity());
    let wait = ((need - this.tokens) / this.rate) * 1000;
    // A timetable change may lift or lower the cap before then.
    const change = this.overrideRate
      ? this.overrideRate.until
      : this.scheduledRate().nextChange?.getTime();
    if (change !== undefined) wait = Math.min(wait, Math.max(0, change - this.now()));
    this.timer = setTimeout(() => this.pump(), Math.max(1, Math.ceil(wait)));
  }
}
