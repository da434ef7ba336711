/**
 * Waiting on a participant call no longer than a deadline (prepare's, or the end of phase
 * two).
 *
 * Guarantees: `raceUntil` settles by the deadline (its timer is cleared either way): with
 * the work's result, its error, or "timeout"; the work itself is not cancelled and may
 * still finish later.
 * Assumes: the caller treats "timeout" as "no answer" (a no vote, an unacknowledged
 * decision), and handles a rejection of the work that comes after the deadline.
 */

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
