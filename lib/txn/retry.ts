/**
 * Retrying work that nobody else would finish: phase two driving a decision to a
 * participant, and a participant releasing what it reserved for a transaction already
 * decided (the coordinator has moved on).
 */
import { jitter, sleep } from "../internal/time.js";
import { DEFAULT_RETRY_FOR_MS } from "./defaults.js";

export interface PersistOptions {
  /** Epoch ms after which the last error is rethrown instead of retried. @default now + DEFAULT_RETRY_FOR_MS (5 s) */
  readonly until?: number;
  /** Errors that asking again will not cure are rethrown at once. Default: retry everything. */
  readonly retryIf?: (err: unknown) => boolean;
}

/** Runs `attempt` until it succeeds, backing off 25 ms doubling to 1 s with jitter. */
export async function retryUntilDone<T>(attempt: () => Promise<T>, options: PersistOptions = {}): Promise<T> {
  const until = options.until ?? Date.now() + DEFAULT_RETRY_FOR_MS;
  for (let backoff = 25; ; backoff = Math.min(backoff * 2, 1000)) {
    try {
      return await attempt();
    } catch (err) {
      if (options.retryIf?.(err) === false || Date.now() + backoff > until) throw err;
      await sleep(jitter(backoff));
    }
  }
}
