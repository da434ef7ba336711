/**
 * Waiting. One `sleep` for all of Fencepost: it keeps the process alive (whoever awaits a
 * sleep is waiting for it: a script whose only work is `await locks.acquire(...)` must not
 * exit mid-wait) and ends early, rejecting with `signal.reason`, when `signal` aborts.
 * Background work (heartbeats, lease deadlines) uses its own unref'd timers instead.
 * `raceUntil` waits on work no longer than a deadline: it settles by then (its timer
 * cleared either way) with "done", the work's error, or "timeout"; the work itself is not
 * cancelled and may still finish later, so a caller reads "timeout" as "no answer".
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

/** Waits for `work` until epoch ms `until`; "timeout" if it has not settled by then (its error, if it fails first). */
export async function raceUntil(work: Promise<unknown>, until: number): Promise<"done" | "timeout"> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), Math.max(0, until - Date.now()))));
  try {
    return await Promise.race([work.then(() => "done" as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A backoff of about `ms`: between half of it and all of it, at random (so retries spread out). */
export function jitter(ms: number): number {
  return ms * (0.5 + Math.random() / 2);
}
