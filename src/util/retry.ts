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

/** Exponential backoff with ±25% jitter: `baseMs`, then doubled per attempt, capped at `maxMs`. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** (attempt - 1)) * (0.75 + Math.random() * 0.5);
}

export interface RetryOptions {
  retries: number;
  /** First delay; doubled each attempt, with jitter, capped at maxDelayMs. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  signal?: AbortSignal;
  /** Only errors this accepts are retried (default: every error that is not permanent). */
  retryIf?: (err: unknown) => boolean;
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
      const retryable = opts.retryIf ? opts.retryIf(err) : true;
      if (!retryable || attempt > opts.retries || isPermanent(err) || opts.signal?.aborted) {
        throw err;
      }
      const delay = backoffDelay(attempt, base, max);
      opts.onRetry?.(err, attempt, delay);
      await sleep(delay, undefined, { signal: opts.signal });
    }
  }
}
