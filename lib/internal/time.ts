/**
 * Waiting. One `sleep` for all of Fencepost: it keeps the process alive (whoever awaits a
 * sleep is waiting for it: a script whose only work is `await locks.acquire(...)` must not
 * exit mid-wait) and ends early, rejecting with `signal.reason`, when `signal` aborts.
 * Background work (heartbeats, lease deadlines) uses its own unref'd timers instead.
 */

/** Resolves after `ms`, or rejects with `signal.reason` once `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** A backoff of about `ms`: between half of it and all of it, at random (so retries spread out). */
export function jitter(ms: number): number {
  return ms * (0.5 + Math.random() / 2);
}
