import { setTimeout as sleep } from "node:timers/promises";

/** An error that retrying cannot fix (bad host key, missing identity, bad config). */
export class PermanentError extends Error {
  override name = "PermanentError";
}

export function isPermanent(err: unknown): boolean {
  if (err instanceof PermanentError) return true;
  const name = err instanceof Error ? err.name : "";
  return name === "HostKeyMismatchError" || name === "IdentityError" || name === "AbortError";
}

export interface RetryOptions {
  retries: number;
  /** First delay; doubled each attempt, with jitter, capped at maxDelayMs. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  signal?: AbortSignal;
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

/** The one retry/backoff helper. */
export async function withRetry<T>(
  fn: (attempt: number) => Promise<T>,
  opts: RetryOptions,
): Promise<T> {
  const base = opts.baseDelayMs ?? 500;
  const max = opts.maxDelayMs ?? 30_000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt > opts.retries || isPermanent(err) || opts.signal?.aborted) throw err;
      const delay = Math.min(max, base * 2 ** (attempt - 1)) * (0.75 + Math.random() * 0.5);
      opts.onRetry?.(err, attempt, delay);
      await sleep(delay, undefined, { signal: opts.signal });
    }
  }
}
