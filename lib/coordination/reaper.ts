/**
 * Failure detection without synchronized clocks: an observer expires a session only after
 * seeing its version unchanged for the session's ttl, on the observer's own monotonic clock,
 * with a write conditioned on that version (the lock takeover rule). Group members observe
 * each other while they hold assignments; the scheduled reaper function observes everyone.
 * (Guarantees and assumptions: see the TSDoc of SessionReaper below.)
 */
import type { MonotonicClock } from "../locks/clock.js";
import { sleep } from "../internal/time.js";
import { cleanUpSession, endSession } from "./session.js";
import type { CoordinationStore, SessionRecord } from "./store.js";

/** What an observer has seen of sessions: each one's version and since when (observer's clock) it has been seen unchanged. */
export class SessionWatch {
  readonly #seen = new Map<string, { version: string; since: number; ttlMs: number }>();

  constructor(private readonly clock: MonotonicClock) {}

  /** Records what a read returned, at the time its answer was received (now). */
  see(sessions: readonly SessionRecord[]): void {
    const now = this.clock.now();
    const live = new Set<string>();
    for (const s of sessions) {
      if (s.state !== "live") continue;
      live.add(s.id);
      const before = this.#seen.get(s.id);
      if (!before || before.version !== s.version) this.#seen.set(s.id, { version: s.version, since: now, ttlMs: s.ttlMs });
    }
    for (const id of this.#seen.keys()) if (!live.has(id)) this.#seen.delete(id);
  }

  /** Sessions seen unchanged for their whole ttl: each with the version to condition the expiry on. */
  due(): { id: string; version: string }[] {
    const now = this.clock.now();
    return [...this.#seen].flatMap(([id, s]) => (now - s.since >= s.ttlMs ? [{ id, version: s.version }] : []));
  }

  /** Milliseconds until the next session could fall due (Infinity when none is watched). */
  nextDueInMs(): number {
    const now = this.clock.now();
    return Math.min(Infinity, ...[...this.#seen.values()].map((s) => Math.max(0, s.since + s.ttlMs - now)));
  }
}

/**
 * Expires the sessions of one namespace that stopped sending keepalives.
 *
 * Guarantees: a session is expired only with a write conditioned on the version this
 * reaper saw unchanged for the session's full ttl, measured on this reaper's monotonic
 * clock from the receipt of the read that showed it; so the owner, which measures its ttl
 * from the send of its last keepalive, has stopped believing first. Expiring deletes the
 * session's ephemeral keys as recorded changes (see endSession).
 * Assumes: sessions' ttls are short enough to watch for (a reaper must stay up ttl + one
 * poll to expire anything).
 */
export class SessionReaper {
  readonly #watch: SessionWatch;

  constructor(
    private readonly store: CoordinationStore,
    private readonly namespace: string,
    private readonly clock: MonotonicClock,
  ) {
    this.#watch = new SessionWatch(clock);
  }

  /**
   * One look: reads the sessions, expires the live ones due, and finishes the cleanup of
   * ended ones that still have keys (an ender that was interrupted). One session's failure
   * does not stop the others: it is tried again on the next pass. Resolves to the ids expired.
   */
  async pass(): Promise<string[]> {
    const sessions = await this.store.listSessions(this.namespace);
    this.#watch.see(sessions);
    const expired: string[] = [];
    for (const { id, version } of this.#watch.due()) {
      if (await endSession(this.store, this.namespace, id, "expired", version).catch(() => false)) expired.push(id);
    }
    for (const s of sessions) if (s.state !== "live" && s.keys.length > 0) await cleanUpSession(this.store, this.namespace, s.id).catch(() => undefined);
    return expired;
  }

  /**
   * Watches until `signal` aborts (or `untilMs` of this reaper's clock have passed),
   * looking every `pollMs` and as soon as a session may fall due. Resolves to the ids expired.
   */
  async run(options: { signal?: AbortSignal; pollMs: number; untilMs?: number }): Promise<string[]> {
    const started = this.clock.now();
    const expired: string[] = [];
    while (!options.signal?.aborted && (options.untilMs === undefined || this.clock.now() - started < options.untilMs)) {
      expired.push(...(await this.pass()));
      await sleep(Math.max(10, Math.min(options.pollMs, this.#watch.nextDueInMs())), options.signal).catch(() => undefined);
    }
    return expired;
  }
}
