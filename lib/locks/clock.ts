/**
 * The monotonic clock every lease decision is measured on. Never wall-clock time:
 * safety must not depend on synchronized clocks. Injectable so tests and the verification
 * harness can skew or pause a worker's clock.
 */
export interface MonotonicClock {
  /** Milliseconds since an arbitrary origin; never decreases. */
  now(): number;
}

export const systemClock: MonotonicClock = { now: () => performance.now() };

/**
 * Resolves after `ms`, or rejects with `signal.reason` once `signal` aborts. The timer keeps
 * the process alive: whoever awaits a sleep is waiting for it (a script whose only work is
 * `await locks.acquire(...)` must not exit mid-wait). Background work (heartbeats, lease
 * deadlines) uses its own unref'd timers.
 */
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
