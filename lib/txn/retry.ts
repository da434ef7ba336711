/**
 * Retrying cleanup that nobody else would do: a participant that finds it reserved
 * something for a transaction already decided must release it itself, through
 * transient errors, because the coordinator has moved on.
 */

/** Runs `attempt` until it succeeds, backing off 25 ms doubling to 1 s; rethrows once `budgetMs` is spent. */
export async function persistently<T>(attempt: () => Promise<T>, budgetMs = 5000): Promise<T> {
  const until = Date.now() + budgetMs;
  for (let backoff = 25; ; backoff = Math.min(backoff * 2, 1000)) {
    try {
      return await attempt();
    } catch (err) {
      if (Date.now() + backoff > until) throw err;
      await new Promise((r) => setTimeout(r, backoff * (0.5 + Math.random() / 2)));
    }
  }
}
