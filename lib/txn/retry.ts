/**
 * Retrying work that nobody else would finish: phase two driving a decision to a
 * participant, and a participant releasing what it reserved for a transaction already
 * decided (the coordinator has moved on).
 */
import { sleep } from "../internal/time.js";
import { jitter } from "../internal/time.js";

export { jitter };

export interface PersistOptions {
  /** Epoch ms after which the last error is rethrown instead of retried. Default: 5 s from now. */
  readonly until?: number;
  /** Errors that asking again will not cure are rethrown at once. Default: retry everything. */
  readonly retryIf?: (err: unknown) => boolean;
}

/** Runs `attempt` until it succeeds, backing off 25 ms doubling to 1 s with jitter. */
export async function persistently<T>(attempt: () => Promise<T>, options: PersistOptions = {}): Promise<T> {
  const until = options.until ?? Date.now() + 5000;
  for (let backoff = 25; ; backoff = Math.min(backoff * 2, 1000)) {
    try {
      return await attempt();
    } catch (err) {
      if (options.retryIf?.(err) === false || Date.now() + backoff > until) throw err;
      await sleep(jitter(backoff));
    }
  }
}
