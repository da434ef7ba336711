/**
 * Every default of the lock family in one place, each beside what it is for. Options'
 * TSDoc names these with `@default`; nothing else in lib/locks spells a default number.
 * (Limits that are part of the protocol, such as the queue's window, are in queue.ts.)
 */

/** Lease of a grant when neither the client nor the acquire names one. */
export const DEFAULT_LEASE_MS = 10_000;
/** How long `acquire` waits when neither the client nor the acquire says. */
export const DEFAULT_WAIT_MS = 60_000;
/**
 * Fastest look while waiting for a lock: the shortest gap between two looks of a waiter (after
 * one that came before its turn). Looks are timed by the lock's pace (pace.ts), not every pollMs.
 */
export const DEFAULT_POLL_MS = 2;
/** Slowest poll while waiting, at most: the default `maxPollMs` is min(leaseMs / 4, this). */
export const MAX_DEFAULT_POLL_MS = 1000;
/** Most waiters queued on one lock. */
export const DEFAULT_MAX_WAITERS = 64;
/** A queued waiter's place lease is max(this, 4 × maxPollMs) by default. */
export const MIN_DEFAULT_WAITER_LEASE_MS = 5000;
/** The holder's safety margin is max(this fraction of the lease, MIN_SAFETY_MARGIN_MS). */
export const SAFETY_MARGIN_FRACTION = 0.02;
/** The smallest safety margin the holder keeps by default. */
export const MIN_SAFETY_MARGIN_MS = 50;
/** A held lease is renewed every leaseMs × this (three heartbeats per lease). */
export const HEARTBEAT_FRACTION = 1 / 3;
/** Inside Lambda (`context`), a lock's lease and wait end this long before the invocation does: time for its release. */
export const INVOCATION_RESERVE_MS = 500;
/** The lock service stops waiting for a grant this long before its own invocation ends: time for the response. */
export const SERVICE_RESPONSE_RESERVE_MS = 1000;
/** How often `Election.observe` reads the election. */
export const DEFAULT_OBSERVE_POLL_MS = 250;
/** `sweep` deletes items released longer ago than this. */
export const DEFAULT_SWEEP_IDLE_MS = 24 * 60 * 60 * 1000;
/** Locks per page of `list`. */
export const DEFAULT_LIST_LIMIT = 100;
/** The lock service's wait for `acquire` and `elect` requests that name none (bounded by the invocation). */
export const DEFAULT_SERVICE_WAIT_MS = 10_000;
/** An increment may be retried (with its request id) for this long after its first attempt. */
export const DEFAULT_RETRY_WINDOW_MS = 60 * 60 * 1000;
/** Attempts of one increment call before CounterContentionError. */
export const DEFAULT_MAX_ATTEMPTS = 50;
/** Longest one increment call keeps trying before CounterContentionError. */
export const DEFAULT_MAX_CALL_MS = 10_000;
/** How long a released claim's tombstone is kept (DynamoDB TTL): far past the 15 minutes a signed request stays valid. */
export const TOMBSTONE_RETENTION_MS = 24 * 60 * 60 * 1000;
/**
 * Largest difference between two clients' wall clocks that a blind grant allows for (ms).
 * Never needed for safety: only for refusing a copy of a grant delivered after the lock was
 * released (lease.ts `grant`), which beyond it could leave a grant nobody holds for a lease.
 */
export const MAX_CLOCK_OFFSET_MS = 1000;
