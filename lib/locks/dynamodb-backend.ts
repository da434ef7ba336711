/**
 * DynamoDbLockBackend: the lock protocol on the lock table itself (LeaseStore's writes).
 * (Guarantees and assumptions: see the TSDoc of DynamoDbLockBackend below.)
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { randomUUID } from "node:crypto";
import type { AcquireRequest, Grant, LeaseName, LockBackend } from "./backend.js";
import { sleep } from "../internal/time.js";
import type { MonotonicClock } from "./clock.js";
import { FencepostError, InvalidArgumentError, LockQueueFullError, LockTimeoutError } from "../errors.js";
import { certainlyNotApplied, isBusy } from "../internal/outcomes.js";
import { LeaseStore, type GrantExpectation, type LeaseRecord } from "./lease.js";
import { DEFAULT_MAX_WAITERS, MAX_DEFAULT_POLL_MS, MIN_DEFAULT_WAITER_LEASE_MS } from "./defaults.js";
import { leaseKey, type LockPage, type LockState } from "./protocol.js";
import { formatPlace, MAX_WAITER_LEASE_MS, MAX_WAITERS, MIN_WAITER_LEASE_MS, parsePlace, PlaceWatch, QUEUE_WINDOW } from "./queue.js";


/** How a DynamoDbLockBackend waits; LockClient passes its options on. */
export interface DynamoDbLockBackendOptions {
  readonly dynamodb: DynamoDBClient;
  readonly tableName: string;
  readonly clock: MonotonicClock;
  /** Fastest poll while waiting. */
  readonly pollMs: number;
  /** Slowest poll while waiting. @default min(leaseMs / 4, MAX_DEFAULT_POLL_MS), and at least pollMs */
  readonly maxPollMs?: number | undefined;
  /** A queued waiter's place lease. @default max(MIN_DEFAULT_WAITER_LEASE_MS, 4 × maxPollMs), at most MAX_WAITER_LEASE_MS */
  readonly waiterLeaseMs?: number | undefined;
  /** Most places in one lock's queue. @default DEFAULT_MAX_WAITERS */
  readonly maxWaiters?: number | undefined;
}

/**
 * DynamoDbLockBackend: the lock protocol on the lock table itself (LeaseStore's writes).
 *
 * Requests: a free or released lock is granted in one request (a conditional UpdateItem
 * that also increments the fencing token); release is one request; a heartbeat is one
 * request. Contention is learned from the failed write's old item
 * (ReturnValuesOnConditionCheckFailure), never from an extra read. The first grant of a
 * name that has no item yet (never used, or swept) takes one more request (a transaction
 * that checks the token floor).
 *
 * Fair waiting. A waiter that cannot be granted appends itself to the item's `queue` (one
 * write per wait, not per poll). Grants require an empty queue or the grantee at its
 * head, and remove the grantee from it, so a releasing holder that wants the lock back
 * queues behind those already waiting: first come, first served. The head waiter polls
 * with grant attempts, the others with reads, every `pollMs` while the lock changes
 * hands and backing off (up to `maxPollMs`) while it does not, so a release is noticed
 * within one poll rather than one lease. A dead waiter cannot block the queue for long:
 * the first QUEUE_WINDOW places must change (their waiters renew them) every half
 * `waiterLeaseMs`, and a client that has seen places at the head unchanged for their
 * lease plus a margin, on its own monotonic clock, removes them in the same write as its
 * grant (or, while the lock is held or a whole window of them hides the rest, in a write
 * of their own). Each window of crashed waiters costs the next live one about one waiter
 * lease; `tryAcquire` (retried) and `sweep` see past them too. The queue holds at most
 * `maxWaiters` places (an acquire beyond it fails with LockQueueFullError), and owner ids
 * and attached data are bounded (by LockClient), so the item stays far below DynamoDB's
 * 400 KB and a release can always be written. The queue orders grants; safety never
 * depends on it.
 *
 * Takeover without synchronized clocks: a waiter takes over a held lock only after it
 * has seen the same lease version unchanged for the holder's full lease, measured on its
 * own monotonic clock from the receipt of the answer that showed it, and only with a
 * write conditioned on that version. See lock.ts for why the holder stops first.
 *
 * Lost responses: every write carries a fresh attempt id; see lease.ts.
 *
 * Cleanup: `sweep` deletes released items idle for longer than a threshold after raising
 * the table's token floor, so tokens never regress (see lease.ts). DynamoDB TTL is never
 * used on lock items, because TTL deletion cannot raise the floor.
 *
 * Assumes: the table has partition key `pk` (string).
 */
export class DynamoDbLockBackend implements LockBackend {
  /** The persistence layer: the conditional writes on lease items. */
  readonly store: LeaseStore;
  readonly #clock: MonotonicClock;
  readonly #options: DynamoDbLockBackendOptions;
  /** The lowest fencing token a recreated item may take, as last learned (see lease.ts). */
  #floorGuess = 0;
  /** What this backend saw of queue heads, to tell gone waiters (see queue.ts). */
  readonly #watch: PlaceWatch;

  constructor(options: DynamoDbLockBackendOptions) {
    const { maxPollMs, waiterLeaseMs, maxWaiters } = options;
    if (maxPollMs !== undefined && !(typeof maxPollMs === "number" && maxPollMs > 0)) {
      throw new InvalidArgumentError("maxPollMs", `must be a positive number of milliseconds, got ${maxPollMs}`);
    }
    if (waiterLeaseMs !== undefined && !(typeof waiterLeaseMs === "number" && waiterLeaseMs > 0)) {
      throw new InvalidArgumentError("waiterLeaseMs", `must be a positive number of milliseconds, got ${waiterLeaseMs}`);
    }
    if (maxWaiters !== undefined && !(Number.isSafeInteger(maxWaiters) && maxWaiters >= 1 && maxWaiters <= MAX_WAITERS)) {
      throw new InvalidArgumentError("maxWaiters", `must be an integer from 1 to ${MAX_WAITERS}, got ${maxWaiters}`);
    }
    this.store = new LeaseStore(options.dynamodb, options.tableName);
    this.#clock = options.clock;
    this.#options = options;
    this.#watch = new PlaceWatch(options.clock);
  }

  /** The acquire loop: queue, poll, take over an expired lease, skip gone waiters. */
  async acquire(request: AcquireRequest): Promise<Grant> {
    const { name, owner, leaseMs, data, signal } = request;
    const key = leaseKey(request.kind, name);
    const clock = this.#clock;
    const minPollMs = this.#options.pollMs;
    const maxPollMs = this.#options.maxPollMs ?? Math.max(minPollMs, Math.min(leaseMs / 4, MAX_DEFAULT_POLL_MS));
    const waiterLeaseMs = this.#waiterLeaseMs(maxPollMs);
    const maxWaiters = this.#options.maxWaiters ?? DEFAULT_MAX_WAITERS;
    const watch = this.#watch;
    const waiter = `${owner}#${randomUUID().slice(0, 8)}`;
    const placeOf = (r: LeaseRecord | undefined) => (r ? r.queue.findIndex((place) => parsePlace(place).waiter === waiter) : -1);
    const started = clock.now();
    const deadline = started + request.waitMs;
    // Every grant attempt's id and when it was first sent: an item stamped with one of
    // these is ours, even if the answer to that attempt never arrived.
    const attempts = new Map<string, number>();
    let record: LeaseRecord | undefined;
    let known = false;
    // Since when (receipt time of the answer that first showed it) the lock's version has
    // been seen unchanged.
    let seen = { version: "", since: started };
    let pollMs = minPollMs;
    // Our place as we last wrote it, and when (our clock) we sent that write.
    let written = { place: "", at: started };
    // Every place we write gets a new number, so no string of ours is ever written twice
    // (an observer still timing an old place must not mistake a new one for it).
    let placeNumber = 0;

    const observe = (found: LeaseRecord | undefined) => {
      record = found;
      known = true;
      if (!found) return;
      watch.see(key, found.queue);
      if (found.version !== seen.version) {
        seen = { version: found.version, since: clock.now() };
        pollMs = minPollMs;
      } else pollMs = Math.min(maxPollMs, pollMs * 1.5);
    };
    const ours = (r: LeaseRecord | undefined) => r !== undefined && r.holder === owner && attempts.has(r.version);
    const granted = (found: LeaseRecord, sentAt: number): Grant => {
      void this.#dropStalePlaces(key, waiter, found); // in the background: the lease is already running
      return grantOf(found, sentAt, leaseMs);
    };

    let pollNext = false; // a waiter whose turn it is polls with a grant attempt, whose failure returns the item
    try {
      for (;;) {
        signal?.throwIfAborted();
        if (ours(record)) return granted(record!, attempts.get(record!.version)!);
        const now = clock.now();
        if (now >= deadline) throw new LockTimeoutError(name, now - started, record?.holder);
        try {
          const queue = record?.queue ?? [];
          const position = placeOf(record);
          const ahead = position < 0 ? queue : queue.slice(0, position);
          const dead = watch.deadPrefix(key, ahead);
          // Our turn: everyone queued ahead of us (everyone, if we have no place) is gone.
          const myTurn = dead.length === ahead.length;
          const expired = record?.holder !== undefined && record.version === seen.version && now - seen.since >= record.leaseMs;
          if (!known || record === undefined || (myTurn && (record.holder === undefined || expired || pollNext))) {
            pollNext = false;
            const attempt = randomUUID();
            attempts.set(attempt, clock.now());
            const outcome = await this.#grant(key, owner, attempt, leaseMs, data, {
              kind: expired ? "expired" : "free",
              version: expired ? record!.version : undefined,
              skip: dead,
              mine: position >= 0 ? queue[position] : undefined,
            });
            if (outcome.granted) return granted(outcome.record, attempts.get(attempt)!);
            const before = record;
            observe(outcome.record);
            // The item was not as we last saw it: decide again with what the failed write returned.
            if (outcome.record?.version !== before?.version || outcome.record?.queue.join("\n") !== before?.queue.join("\n")) continue;
          }
          if (record && position < 0) {
            // Not our turn: take a place in the queue, then decide again.
            written = { place: formatPlace({ waiter, renewals: placeNumber++, leaseMs: waiterLeaseMs }), at: clock.now() };
            const after = await this.store.enqueue(key, written.place, maxWaiters);
            observe(after);
            if (after && placeOf(after) < 0 && after.queue.length >= Math.min(maxWaiters, MAX_WAITERS)) {
              // Full. Places this client has seen go unrenewed are removed; a retry may then fit.
              const gone = watch.deadPlaces(key, after.queue);
              if (gone.length > 0) {
                await this.store.removePlaces(key, gone); // false if the queue changed: look again either way
                continue;
              }
              throw new LockQueueFullError(name, after.queue.length);
            }
            continue;
          }
          if (dead.length > 0 && (myTurn || dead.length === QUEUE_WINDOW)) {
            // Gone waiters ahead while the lock is held (or a whole window of them, which would
            // hide the rest of the queue from everyone): clear them, so the next ones come into view.
            await this.store.prune(key, dead);
            observe(await this.store.read(key));
            continue;
          }
          const mine = position >= 0 ? queue[position]! : undefined;
          // In the window, a place must change every half lease to show its waiter is alive
          // (at once if it is not the string we last wrote: observers may have timed it for long).
          const renewDue = mine === undefined || position >= QUEUE_WINDOW ? Number.POSITIVE_INFINITY : mine === written.place ? written.at + waiterLeaseMs / 2 : 0;
          if (mine !== undefined && clock.now() >= renewDue) {
            const next = formatPlace({ waiter, renewals: placeNumber++, leaseMs: waiterLeaseMs });
            const sentAt = clock.now();
            const after = await this.store.renewPlace(key, position, mine, next);
            if (after?.queue.includes(next)) written = { place: next, at: sentAt };
            observe(after); // the answer doubles as a poll
            continue;
          }
          await sleep(Math.max(0, Math.min(pollMs, deadline - clock.now(), renewDue - clock.now())), signal);
          if (myTurn) pollNext = true;
          else observe(await this.store.read(key));
        } catch (err) {
          // Throttled, or an outcome we could not learn: wait a poll and look again. Attempt
          // ids stay in `attempts`, so a grant that landed unseen is recognised later.
          if (err instanceof FencepostError || (certainlyNotApplied(err) && !isBusy(err)) || signal?.aborted) throw err;
          await sleep(pollMs, signal);
          observe(await this.store.read(key).catch(() => record));
        }
      }
    } catch (err) {
      await this.#abandon(key, owner, waiter, attempts, record);
      throw err;
    }
  }

  async tryAcquire(request: Omit<AcquireRequest, "kind" | "waitMs" | "signal">): Promise<Grant | undefined> {
    const { owner, leaseMs, data } = request;
    const key = leaseKey("lock", request.name);
    const attempt = randomUUID();
    const sentAt = this.#clock.now();
    let outcome = await this.#grant(key, owner, attempt, leaseMs, data, { kind: "free" });
    const found = outcome.granted ? undefined : outcome.record;
    if (found && found.holder === undefined && found.queue.length > 0) {
      // Free, with places queued. Those this client has seen unchanged for their lease are
      // gone: take the lock past them if they are all, else clear them for the next try.
      this.#watch.see(key, found.queue);
      const dead = this.#watch.deadPrefix(key, found.queue);
      if (dead.length === found.queue.length) outcome = await this.#grant(key, owner, attempt, leaseMs, data, { kind: "free", skip: dead });
      else if (dead.length > 0) await this.store.prune(key, dead);
    }
    return outcome.granted ? grantOf(outcome.record, sentAt, leaseMs) : undefined;
  }

  async read(lease: LeaseName): Promise<LockState | undefined> {
    return stateOf(await this.store.read(leaseKey(lease.kind, lease.name)));
  }

  async heartbeat(lease: LeaseName, owner: string, current: string, next: string, leaseMs: number) {
    const outcome = await this.store.heartbeat(leaseKey(lease.kind, lease.name), owner, current, next, leaseMs);
    return outcome.ok ? { ok: true as const } : { ok: false as const, found: outcome.found };
  }

  async release(lease: LeaseName, owner: string, fencingToken: number) {
    // One attempt id for the release: sent again while the item shows it never arrived (lease.ts).
    const outcome = await this.store.release(leaseKey(lease.kind, lease.name), owner, fencingToken, randomUUID());
    return { released: outcome.released, holder: outcome.found?.holder };
  }

  async list(limit: number, startAfter?: string): Promise<LockPage> {
    const prefix = leaseKey("lock", "");
    const page = await this.store.page(prefix, limit, startAfter);
    const locks = page.records.map((record) => ({ name: record.key.slice(prefix.length), ...stateOf(record)! }));
    return { locks, ...(page.next ? { next: page.next } : {}) };
  }

  async sweep(releasedBefore: number): Promise<number> {
    return (await this.store.sweep(leaseKey("lock", ""), releasedBefore)) + (await this.store.sweep(leaseKey("election", ""), releasedBefore));
  }

  /** Leaving without the lock: give back a grant whose answer we never saw, and our queue place. */
  async #abandon(key: string, owner: string, waiter: string, attempts: Map<string, number>, last: LeaseRecord | undefined): Promise<void> {
    try {
      const found = await this.store.read(key);
      if (found && found.holder === owner && attempts.has(found.version)) {
        await this.store.release(key, owner, found.fencingToken, randomUUID());
      }
      await this.#dropStalePlaces(key, waiter, found ?? last);
    } catch {
      // Best effort: an orphaned grant expires after one lease; a place left behind is judged gone after its lease.
    }
  }

  /**
   * Removes `waiter`'s places from the queue as `found` shows it (best effort): after a
   * grant, a place of ours left behind by an enqueue that landed late would otherwise
   * hold up those behind it for one waiter lease.
   */
  async #dropStalePlaces(key: string, waiter: string, found: LeaseRecord | undefined): Promise<void> {
    const places = (found?.queue ?? []).map((place, index) => ({ place, index })).filter(({ place }) => parsePlace(place).waiter === waiter);
    // Highest index first, so removing one does not shift the next.
    for (const { place, index } of places.reverse()) await this.store.dequeue(key, place, index).catch(() => false);
  }

  #waiterLeaseMs(maxPollMs: number): number {
    const declared = this.#options.waiterLeaseMs;
    const floor = Math.max(MIN_WAITER_LEASE_MS, 2 * maxPollMs);
    if (declared !== undefined && !(declared >= floor && declared <= MAX_WAITER_LEASE_MS)) {
      throw new InvalidArgumentError("waiterLeaseMs", `must be from ${floor} ms (1 s, and twice maxPollMs, so a waiter renews its place in time) to ${MAX_WAITER_LEASE_MS} ms, got ${declared}`);
    }
    return declared ?? Math.min(MAX_WAITER_LEASE_MS, Math.max(MIN_DEFAULT_WAITER_LEASE_MS, 4 * maxPollMs));
  }

  #grant(key: string, owner: string, attempt: string, leaseMs: number, data: string | undefined, expect: GrantExpectation) {
    return this.store.grant({ key, owner, attempt, leaseMs, data, expect }).then(async (outcome) =>
      !outcome.granted && outcome.record === undefined ? this.#grantMissing(key, owner, attempt, leaseMs, data) : outcome,
    );
  }

  async #grantMissing(key: string, owner: string, attempt: string, leaseMs: number, data: string | undefined) {
    for (;;) {
      const outcome = await this.store.grantMissing({ key, owner, attempt, leaseMs, data, expect: { kind: "free" } }, this.#floorGuess);
      if (!("floor" in outcome)) return outcome;
      this.#floorGuess = outcome.floor;
    }
  }
}

function grantOf(record: LeaseRecord, sentAt: number, leaseMs: number): Grant {
  return { fencingToken: record.fencingToken, version: record.version, data: record.data, leaseMs: record.leaseMs || leaseMs, sentAt };
}

/** A lease item as LockClient.inspect reports it. */
export function stateOf(record: LeaseRecord | undefined): LockState | undefined {
  if (!record) return undefined;
  return {
    holder: record.holder,
    fencingToken: record.fencingToken,
    leaseMs: record.leaseMs,
    released: record.holder === undefined,
    waiters: record.queue.length,
    // A waiter is `<owner>#<8 hex digits>` (one per acquire call): show the owner.
    nextWaiters: record.queue.slice(0, QUEUE_WINDOW).map((place) => parsePlace(place).waiter.replace(/#[0-9a-f]{8}$/, "")),
    data: record.data,
    ...expiry(record),
  };
}

function expiry(record: LeaseRecord): { expiresAt: number | undefined; expired: boolean } {
  if (record.holder === undefined || record.renewedAt === undefined) return { expiresAt: undefined, expired: false };
  const expiresAt = record.renewedAt + record.leaseMs;
  return { expiresAt, expired: Date.now() > expiresAt };
}
