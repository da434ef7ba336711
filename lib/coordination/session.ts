/**
 * Session: a client's liveness, as the coordination service sees it, and the end of a
 * session (closed by its owner, or expired by an observer) with its ephemeral keys.
 * (Guarantees and assumptions: see the TSDoc of Session below.)
 */
import { randomUUID } from "node:crypto";
import { SessionExpiredError } from "../errors.js";
import type { LeaseKeeper } from "../locks/backend.js";
import type { MonotonicClock } from "../locks/clock.js";
import { Lock } from "../locks/lock.js";
import { MAX_CHANGES_PER_COMMIT, type CoordinationStore, type KeyOperation } from "./store.js";

/** Where a member's key lives: `_fencepost/groups/<group>/members/<session id>`. */
export const GROUPS_PREFIX = "_fencepost/groups/";

/** The group a key belongs to as a membership key, if it is one. */
export function groupOfKey(key: string): string | undefined {
  if (!key.startsWith(GROUPS_PREFIX)) return undefined;
  const rest = key.slice(GROUPS_PREFIX.length);
  const at = rest.indexOf("/members/");
  return at > 0 ? rest.slice(0, at) : undefined;
}

/**
 * Ends a live session: marks it expired or closed, then deletes its ephemeral keys, as
 * recorded changes. The end is conditioned (for an expiry) on the version the observer saw
 * unchanged, so a session that renewed meanwhile keeps everything. After the end no key
 * can be bound to the session any more (every ephemeral write requires it live), so the
 * cleanup that follows reads its keys again and deletes all of them, however many; if the
 * cleanup is interrupted, any later endSession, or the reaper, finishes it.
 * Resolves to true if this call ended the session, false if it had already ended (cleanup
 * still runs) or, for an expiry, renewed.
 */
export async function endSession(store: CoordinationStore, ns: string, id: string, state: "expired" | "closed", ifVersion?: string): Promise<boolean> {
  const session = await store.getSession(ns, id);
  if (!session) return false;
  let ended = false;
  if (session.state === "live") {
    if (ifVersion !== undefined && session.version !== ifVersion) return false;
    const stamp = randomUUID();
    const end = { session: id, state, stamp, ...(ifVersion !== undefined ? { ifVersion } : {}) };
    // The end deletes the keys bound now (up to one commit's worth); the cleanup after it catches the rest.
    const { bound, stale } = await boundKeys(store, ns, id, session.keys);
    let result = await store.commit(ns, deletionsOf(id, state, bound), { end: { ...end, forget: stale } });
    // A key changed hands between the read and the end: end without deleting; the cleanup deletes what is still bound.
    if (!result.committed && result.failed !== "session") result = await store.commit(ns, [], { end });
    if (result.committed) ended = true;
    else {
      // Refused: renewed, or ended by someone else, unless the refused attempt was a retry of ours (a lost answer).
      const now = await store.getSession(ns, id);
      ended = now?.endStamp === stamp;
      if (!ended && now?.state === "live") return false;
    }
  }
  await cleanUpSession(store, ns, id);
  return ended;
}

/** Deletes the keys still bound to an ended session, in commits of up to MAX_CHANGES_PER_COMMIT (its item already has its TTL). */
export async function cleanUpSession(store: CoordinationStore, ns: string, id: string): Promise<void> {
  for (;;) {
    const session = await store.getSession(ns, id);
    if (!session || session.state === "live") return;
    if (session.keys.length === 0) return;
    const { bound, stale } = await boundKeys(store, ns, id, session.keys);
    await store.commit(ns, deletionsOf(id, session.state === "expired" ? "expired" : "closed", bound), { end: { session: id, state: "cleanup", forget: stale } });
    // Committed or refused (a key changed hands meanwhile): look again either way.
  }
}

/** The recorded deletes of keys bound to session `id`, which ended by `state`. */
function deletionsOf(id: string, state: "expired" | "closed", keys: readonly string[]): KeyOperation[] {
  const cause = state === "expired" ? "session-expired" : "session-closed";
  return keys.map((key) => ({ type: "delete", key, ifSession: id, cause, group: groupOfKey(key) }));
}

/** Of a session's key set, the keys still bound to it (at most one commit's worth) and names no longer bound. */
async function boundKeys(store: CoordinationStore, ns: string, id: string, keys: readonly string[]): Promise<{ bound: string[]; stale: string[] }> {
  const names = keys.slice(0, 4 * MAX_CHANGES_PER_COMMIT);
  const records = await Promise.all(names.map((key) => store.getKey(ns, key)));
  return {
    bound: records.flatMap((record) => (record?.session === id ? [record.key] : [])).slice(0, MAX_CHANGES_PER_COMMIT),
    stale: names.filter((_, i) => records[i]?.session !== id),
  };
}

/** The part of a Lock's lease rules a session uses: keepalive is a heartbeat, close is a release. */
class SessionKeeper implements LeaseKeeper {
  constructor(
    private readonly store: CoordinationStore,
    private readonly ns: string,
    private readonly id: string,
  ) {}

  async heartbeat(_lease: unknown, owner: string, current: string, next: string) {
    const outcome = await this.store.keepalive(this.ns, this.id, current, next);
    if (outcome.ok) return { ok: true as const };
    const found = outcome.found;
    return { ok: false as const, found: found ? { holder: found.state === "live" ? owner : undefined, version: found.version } : undefined };
  }

  async release() {
    return { released: await endSession(this.store, this.ns, this.id, "closed") };
  }
}

/**
 * A session: the unit of failure detection. Its owner keeps it alive with one keepalive
 * request per ttl/3; ephemeral keys (and group memberships) are bound to it and vanish,
 * as recorded changes, when it is closed or expires.
 *
 * Guarantees (the lock takeover rule, on the session item):
 * - `signal` aborts (with SessionExpiredError) before any other client can declare the
 *   session expired, as long as this process is not paused and its monotonic clock runs
 *   within the margin of the observers' clocks: the owner measures ttl from the send of
 *   its last successful keepalive; an observer may expire the session only after seeing
 *   the same version unchanged for ttl on its own monotonic clock, from the receipt of
 *   the answer that showed it, and only with a write conditioned on that version.
 * - A session declared expired (or closed) can never write again: every ephemeral write
 *   is conditioned on the session being live, in the same transaction.
 * - Lost keepalive responses are settled from the item (Lock's rules); a keepalive that
 *   never reached DynamoDB is retried soon.
 * Assumes: a paused owner can outlive its belief (GC, a frozen Lambda): the fencing
 * tokens of partition grants are for that.
 */
export class Session {
  /** The session's id: a member's id in groups, the owner of its ephemeral keys. */
  readonly id: string;
  readonly namespace: string;
  readonly ttlMs: number;
  readonly #lease: Lock;

  /** @internal Made by Coordination.openSession. */
  constructor(params: { store: CoordinationStore; namespace: string; id: string; ttlMs: number; version: string; sentAt: number; clock: MonotonicClock; owner: string; safetyMarginMs: number }) {
    this.id = params.id;
    this.namespace = params.namespace;
    this.ttlMs = params.ttlMs;
    this.#lease = new Lock({
      backend: new SessionKeeper(params.store, params.namespace, params.id),
      clock: params.clock,
      kind: "lock",
      name: `session ${params.id}`,
      owner: params.owner,
      record: { fencingToken: 0, version: params.version },
      sentAt: params.sentAt,
      leaseMs: params.ttlMs,
      safetyMarginMs: params.safetyMarginMs,
      lostError: (reason) => new SessionExpiredError(params.id, reason),
    });
  }

  /** Opens a live session item; the lease runs from before the write was sent. */
  static async open(store: CoordinationStore, params: { namespace: string; ttlMs: number; clock: MonotonicClock; owner: string; safetyMarginMs: number }): Promise<Session> {
    const id = randomUUID();
    const version = randomUUID();
    const sentAt = params.clock.now();
    await store.openSession(params.namespace, id, params.ttlMs, version, params.owner);
    return new Session({ store, id, version, sentAt, ...params });
  }

  /** Aborts (with SessionExpiredError) before any other client could declare this session expired. */
  get signal(): AbortSignal {
    return this.#lease.signal;
  }

  /** True while the session is believed live: not closed, not lost, ttl not run out. */
  get live(): boolean {
    return this.#lease.held;
  }

  /** Throws SessionExpiredError if the session is no longer believed live. Call before irreversible work. */
  assertLive(): void {
    this.#lease.assertHeld();
  }

  /** Closes the session: its ephemeral keys are deleted (recorded changes). Idempotent; true if this call closed it. */
  close(): Promise<boolean> {
    return this.#lease.release();
  }
}
