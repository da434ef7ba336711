/**
 * The waiter queue's places, and how a client tells that a place's waiter is gone.
 *
 * Guarantees:
 * - A place is judged dead only by what the judging client saw on its own monotonic clock:
 *   the same place string, unchanged, for the place's lease plus PLACE_MARGIN_MS. Wall
 *   clocks are never compared, so clock skew between waiters cannot make a live place
 *   look dead, or a dead one live.
 * - Only the first QUEUE_WINDOW places need to prove they are alive: their waiters renew
 *   them (a new string, `renewals` + 1) every half lease, and observers time them only
 *   while they are in the window. A long queue therefore costs at most QUEUE_WINDOW
 *   renewal writes per half lease, however many wait behind.
 * Assumes: a live waiter notices it entered the window within one poll (maxPollMs, at
 * most half its lease; LockClient enforces this) and renews at once.
 * The queue only orders grants: nothing here affects mutual exclusion or tokens.
 */
import { randomUUID } from "node:crypto";
import type { MonotonicClock } from "./clock.js";

/** Most places a lock item can hold, whatever a client's `maxWaiters` says. */
export const MAX_WAITERS = 1000;
/** How many places at the head of the queue renew, and are timed by observers. */
export const QUEUE_WINDOW = 8;
/** Extra time an observer allows a place beyond its lease before judging it dead. */
export const PLACE_MARGIN_MS = 1000;
/** Shortest waiter lease a client may declare. */
export const MIN_WAITER_LEASE_MS = 1000;
/** Longest waiter lease a client may declare (and the longest a sweep waits to judge places). */
export const MAX_WAITER_LEASE_MS = 60_000;
/** The lease assumed for a place this version cannot parse (written by an older client). */
const UNKNOWN_PLACE_LEASE_MS = 5000;
/** Locks whose places one client remembers. */
const WATCHED_LOCKS = 1024;

/**
 * Waiter ids of clients that take a lock handed over by a release (see lease.ts) end in
 * `#h`, 7 hex digits, `.` and the lease the waiter asks for (ms); earlier clients' end in
 * `#` and 8 hex digits, and a release hands nothing to them (it frees the lock, and they
 * take it as before).
 */
const HANDOFF_WAITER = /#h[0-9a-f]{7}\.(\d{1,9})$/;

/** A fresh waiter id for one acquire of `owner` asking for `leaseMs`. */
export function newWaiterId(owner: string, leaseMs: number): string {
  return `${owner}#h${randomUUID().slice(0, 7)}.${Math.max(1, Math.round(leaseMs))}`;
}

/** The owner of a waiter that takes handovers and the lease it asks for; undefined for an earlier client's waiter. */
export function handoffTarget(waiter: string): { owner: string; leaseMs: number } | undefined {
  const match = HANDOFF_WAITER.exec(waiter);
  return match ? { owner: waiter.slice(0, match.index), leaseMs: Number(match[1]) } : undefined;
}

/**
 * The lease of a handover to a waiter: what it asked for, at least MIN_WAITER_LEASE_MS and
 * at most its place's lease (it looks at least every half of that, so it takes the lock
 * up in time). A waiter handed the lock that never takes it up holds it no longer.
 */
export function handoffLeaseMs(place: QueuePlace, askedMs: number): number {
  return Math.min(place.leaseMs, Math.max(MIN_WAITER_LEASE_MS, askedMs));
}

/** One place in a lock's waiter queue, stored as `<waiter>@<renewals>@<leaseMs>`. */
export interface QueuePlace {
  readonly waiter: string;
  readonly renewals: number;
  readonly leaseMs: number;
}

export function formatPlace(place: QueuePlace): string {
  return `${place.waiter}@${place.renewals}@${Math.round(place.leaseMs)}`;
}

export function parsePlace(raw: string): QueuePlace {
  const match = /^(.*)@(\d+)@(\d+)$/s.exec(raw);
  if (!match) return { waiter: raw, renewals: 0, leaseMs: UNKNOWN_PLACE_LEASE_MS };
  return { waiter: match[1]!, renewals: Number(match[2]), leaseMs: Number(match[3]) };
}

/**
 * What one client has seen of the places at the head of each lock's queue: since when
 * (on its monotonic clock) each place string has been in the window unchanged.
 */
export class PlaceWatch {
  readonly #clock: MonotonicClock;
  readonly #locks = new Map<string, Map<string, number>>();

  constructor(clock: MonotonicClock) {
    this.#clock = clock;
  }

  /** Records a fresh view of `key`'s queue. */
  see(key: string, queue: readonly string[]): void {
    const now = this.#clock.now();
    const before = this.#locks.get(key);
    const seen = new Map<string, number>();
    for (const place of queue.slice(0, QUEUE_WINDOW)) seen.set(place, before?.get(place) ?? now);
    this.#locks.delete(key);
    this.#locks.set(key, seen);
    if (this.#locks.size > WATCHED_LOCKS) this.#locks.delete(this.#locks.keys().next().value!);
  }

  /** The places at the head of `queue` seen unchanged for their lease plus margin, up to the first that was not. */
  deadPrefix(key: string, queue: readonly string[]): string[] {
    const dead: string[] = [];
    for (const place of queue.slice(0, QUEUE_WINDOW)) {
      if (!this.#gone(key, place)) break;
      dead.push(place);
    }
    return dead;
  }

  /** Every place in the window of `queue` seen unchanged for its lease plus margin, with its index. */
  deadPlaces(key: string, queue: readonly string[]): Array<{ place: string; index: number }> {
    return queue
      .slice(0, QUEUE_WINDOW)
      .map((place, index) => ({ place, index }))
      .filter(({ place }) => this.#gone(key, place));
  }

  #gone(key: string, place: string): boolean {
    const since = this.#locks.get(key)?.get(place);
    return since !== undefined && this.#clock.now() - since >= parsePlace(place).leaseMs + PLACE_MARGIN_MS;
  }
}
