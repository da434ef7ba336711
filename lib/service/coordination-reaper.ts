/**
 * The scheduled session reaper: what the coordination reaper Lambda does each run. For
 * every namespace with live sessions it runs a SessionReaper (lib/coordination/reaper.ts)
 * long enough to expire any of those sessions that has stopped its keepalives, then
 * reports what it did.
 * (Guarantees and assumptions: see the TSDoc of reapSessions below.)
 */
import { systemClock, type MonotonicClock } from "../locks/clock.js";
import { SessionReaper } from "../coordination/reaper.js";
import type { CoordinationStore } from "../coordination/store.js";

/** How often a reaper re-reads a namespace's sessions: an expiry comes about this long after the session's ttl ran out. */
export const REAPER_POLL_MS = 1000;
/**
 * Time a reaper invocation keeps back from its watch (for the last expiries' commits and
 * the answer): it watches until its remaining time is down to this.
 */
export const REAPER_RESERVE_MS = 10_000;

/** What one reaper run did. */
export interface ReaperReport {
  /** Per namespace that had live sessions: how many it watched (live when it started) and the ids of those it expired. */
  namespaces: { namespace: string; watched: number; expired: string[] }[];
  /** Sessions watched, over all namespaces. */
  watched: number;
  /** Ids of the sessions this run expired, over all namespaces. */
  expired: string[];
  /**
   * Namespaces whose reaper stopped on an error (what it expired before is in `namespaces`);
   * the others are reaped regardless. The next run tries them again.
   */
  failed: { namespace: string; error: string }[];
  /** How long the run took. */
  ms: number;
}

export interface ReapOptions {
  /** Longest the run may watch (an invocation: its remaining time minus REAPER_RESERVE_MS). */
  budgetMs: number;
  /** How often each namespace's sessions are re-read. @default REAPER_POLL_MS (1 s) */
  pollMs?: number;
  /** The reaper's monotonic clock (expiry is measured on it). @default systemClock */
  clock?: MonotonicClock;
}

/**
 * Expires the sessions, in every namespace, that stopped sending keepalives.
 *
 * Guarantees: a session is expired only by SessionReaper's rule (its version seen
 * unchanged for its whole ttl on this run's monotonic clock, then a write conditioned on
 * that version), so never one that is still renewing, and never before its owner's
 * `signal` aborted. Each namespace is watched for its longest live session's ttl plus two
 * polls (within `budgetMs`): so a run expires every session that was already dead when it
 * started, and a session that dies later is expired by the next run. With runs every
 * `interval`, a session nobody else observes is expired within about ttl + interval
 * (+ one poll) of its last keepalive; runs overlap only when a ttl exceeds the interval.
 * Assumes: the store's table may be scanned (sessionNamespaces); `budgetMs` covers the
 * longest ttl in use (MAX_SESSION_TTL_MS, 10 minutes, fits a 15-minute invocation).
 */
export async function reapSessions(store: CoordinationStore, options: ReapOptions): Promise<ReaperReport> {
  const clock = options.clock ?? systemClock;
  const pollMs = options.pollMs ?? REAPER_POLL_MS;
  const started = clock.now();
  const namespaces = await store.sessionNamespaces();
  const failed: ReaperReport["failed"] = [];
  const reports = await Promise.all(
    namespaces.sort().map(async (namespace) => {
      let watched = 0;
      const expired: string[] = [];
      try {
        const live = await store.listSessions(namespace, true);
        watched = live.length;
        const longestTtl = Math.max(0, ...live.map((s) => s.ttlMs));
        const untilMs = Math.min(longestTtl + 2 * pollMs, options.budgetMs - (clock.now() - started));
        if (watched > 0 && untilMs > 0) expired.push(...(await new SessionReaper(store, namespace, clock).run({ pollMs, untilMs })));
      } catch (err) {
        // One namespace's failure (a throttled table, a bad item) must not keep the others' sessions alive.
        failed.push({ namespace, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
      }
      return { namespace, watched, expired };
    }),
  );
  const active = reports.filter((r) => r.watched > 0);
  return {
    namespaces: active,
    watched: active.reduce((n, r) => n + r.watched, 0),
    expired: active.flatMap((r) => r.expired),
    failed,
    ms: Math.round(clock.now() - started),
  };
}
