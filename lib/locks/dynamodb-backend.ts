/**
 * DynamoDbLockBackend: the lock protocol on the lock table itself (LeaseStore's writes).
 * (Guarantees and assumptions: see the TSDoc of DynamoDbLockBackend below.)
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { randomUUID } from "node:crypto";
import { requestIds, type RequestIds } from "./request-ids.js";
import type { AcquireRequest, Grant, LeaseName, LockBackend } from "./backend.js";
import { sleep } from "../internal/time.js";
import type { MonotonicClock } from "./clock.js";
import { FencepostError, InvalidArgumentError, LockQueueFullError, LockTimeoutError } from "../errors.js";
import { certainlyNotApplied, isBusy } from "../internal/outcomes.js";
import { FREE_WHATEVER_THE_QUEUE, LeaseStore, MAX_SKIP_PER_WRITE, type GrantExpectation, type GrantOutcome, type LeaseRecord, type ReleasePlan } from "./lease.js";
import { DEFAULT_MAX_WAITERS, MAX_DEFAULT_POLL_MS, MIN_DEFAULT_WAITER_LEASE_MS } from "./defaults.js";
import { leaseKey, type LockPage, type LockState } from "./protocol.js";
import { formatPlace, handoffLeaseMs, handoffTarget, MAX_WAITER_LEASE_MS, MAX_WAITERS, MIN_WAITER_LEASE_MS, newWaiterId, parsePlace, PlaceWatch, QUEUE_WINDOW } from "./queue.js";
import { nextLook } from "./pace.js";


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
 * name that has no item yet (never used, or swept) is one request too when the client
 * guesses the item is missing (a transaction that creates it above the token floor): it
 * guesses so for names it has not seen while most such names turned out new, and
 * otherwise tries the UpdateItem first and creates the item in a second request.
 *
 * Handover (see lease.ts for the proof): a release hands the lock to the first live waiter
 * in the same write (its owner holds the next token, pending until the waiter takes it
 * up with one conditional write, `accept`, which starts its own lease). A contended grant
 * therefore costs the waiter's place (one write), the release that hands it over, and the
 * accept; a waiter's polls are accept attempts, whose refusal returns the item. A waiter
 * that is handed the lock and never takes it up (it crashed) holds it for at most its
 * place's lease: then the next waiter takes it over as from any expired holder. A waiter
 * that gives up while the lock is handed to it passes it on (`decline`); if it cannot, the
 * short lease ends it.
 *
 * Fair waiting. A waiter that cannot be granted appends itself to the item's `queue` (one
 * write per wait, not per poll). Grants require an empty queue or the grantee at its
 * head, and releases hand the lock to the head, so a releasing holder that wants the lock
 * back queues behind those already waiting: first come, first served. A waiter looks at
 * the item when it predicts its turn (pace.ts), so a release is noticed within about one
 * round trip of the predicted time, and never more than `maxPollMs` later while the holder
 * is alive. A dead waiter cannot block the queue for long: the first QUEUE_WINDOW places
 * must change (their waiters renew them) every half `waiterLeaseMs`, and a client that has
 * seen places at the head unchanged for their lease plus a margin, on its own monotonic
 * clock, skips them: a release hands the lock past them, a grant removes them in the same
 * write (or, while the lock is held or a whole window of them hides the rest, a write of
 * their own does). Each window of crashed waiters costs the next live one about one
 * waiter lease; `tryAcquire` (retried) and `sweep` see past them too. The queue holds at
 * most `maxWaiters` places (an acquire beyond it fails with LockQueueFullError), and owner
 * ids and attached data are bounded (by LockClient), so the item stays far below
 * DynamoDB's 400 KB and a release can always be written. The queue orders grants; safety
 * never depends on it.
 *
 * What a client remembers of a lock (the last item it saw and when, its pace) is its own
 * observations: it starts an acquire from there (a lock it just saw busy is joined at
 * once, without a refused grant first) and plans a release's handover from it (a stale
 * view costs one refused write, which returns the item).
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
  /** What this backend last saw of each lock, and when (its own observations only). */
  readonly #memory = new Map<string, LockMemory>();
  /** This client's round trip to DynamoDB, smoothed (ms). */
  #rttMs = DEFAULT_RTT_MS;
  /** Share of names this client had not seen that turned out to have no item, smoothed: above half, a first grant creates the item at once. */
  #newNameShare = 1;

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

  /** The acquire loop: join the queue, look when the turn is due, take a handover, take over an expired lease, skip gone waiters. */
  async acquire(request: AcquireRequest): Promise<Grant> {
    const { name, owner, leaseMs, data, signal } = request;
    const key = leaseKey(request.kind, name);
    const clock = this.#clock;
    const minPollMs = this.#options.pollMs;
    const maxPollMs = this.#options.maxPollMs ?? Math.max(minPollMs, Math.min(leaseMs / 4, MAX_DEFAULT_POLL_MS));
    const waiterLeaseMs = this.#waiterLeaseMs(maxPollMs);
    const maxWaiters = this.#options.maxWaiters ?? DEFAULT_MAX_WAITERS;
    const watch = this.#watch;
    const waiter = newWaiterId(owner, leaseMs);
    const placeOf = (r: LeaseRecord | undefined) => (r ? r.queue.findIndex((place) => parsePlace(place).waiter === waiter) : -1);
    const started = clock.now();
    const deadline = started + request.waitMs;
    // Every grant or accept attempt's id and when it was first sent: an item stamped with one
    // of these is ours, even if the answer to that attempt never arrived.
    const attempts = new Map<string, number>();
    // Start from what this client saw of the lock lately (its own answers, its release's too).
    const memory = this.#memory.get(key);
    const recent = memory !== undefined && clock.now() - memory.at <= Math.min(memory.record?.leaseMs ?? 0, RECENT_MS);
    let record: LeaseRecord | undefined = recent ? memory.record : undefined;
    let known = recent;
    let pollMs = minPollMs;
    // Our place as we last wrote it, and when (our clock) we sent that write.
    let written = { place: "", at: started };
    // Every place we write gets a new number, so no string of ours is ever written twice
    // (an observer still timing an old place must not mistake a new one for it).
    let placeNumber = 0;
    // Looks since the lock's state last changed (pace.ts backs off with them).
    let overdue = 0;
    // A lock handed to us is ours from the moment we read it, for its short lease counted from
    // the send of our latest request answered before the handover landed (that request was
    // applied before it): no write needed until the first heartbeat. Unless the grant carries
    // data (a leader's value must be there when it leads): then we take it up with a write.
    // So is one for a request with an id: the accept names the request on the item, for
    // its other copies (requestIds), where a lazily held handover would leave no trace.
    const lazy = request.kind === "lock" && data === undefined && request.requestId === undefined;
    let beforeHandover = started;
    // A token seen handed over, and when: this wait's turn is predicted from here (pace.ts), and
    // the time to its grant measures the lock's pace for the next waits.
    let anchor = recent && memory.record ? { token: memory.record.fencingToken, at: memory.tokenSince } : undefined;

    const observe = (found: LeaseRecord | undefined, sentAt?: number, at = clock.now()) => {
      if (sentAt !== undefined && found?.grantee !== waiter) beforeHandover = Math.max(beforeHandover, sentAt);
      if (found?.fencingToken !== record?.fencingToken || (found?.grantee === undefined) !== (record?.grantee === undefined)) overdue = 0;
      pollMs = found !== undefined && found.version === record?.version ? Math.min(maxPollMs, pollMs * 1.5) : minPollMs;
      record = found;
      known = true;
      this.#remember(key, found, at);
      if (!anchor && found) anchor = { token: found.fencingToken, at: this.#memory.get(key)?.tokenSince ?? at };
    };
    const measure = (token: number) => {
      // Only a wait that saw grants go by measures their pace; a long gap (a crashed holder) does not.
      if (!anchor || token <= anchor.token) return;
      const sample = (clock.now() - anchor.at) / (token - anchor.token);
      const memory = this.#memory.get(key);
      if (memory && sample <= MAX_PACE_SAMPLE_MS) memory.cycleMs = memory.cycleMs === undefined ? sample : memory.cycleMs + (sample - memory.cycleMs) * PACE_SMOOTHING;
    };
    const thisRequest = requestIds(request.requestId);
    // Ours: granted by an attempt of this run, or by another copy of this request (adopted).
    const ours = (r: LeaseRecord | undefined) => (r !== undefined && r.holder === owner && r.grantee === undefined && attempts.has(r.version)) || thisRequest.heldBy(r, owner);
    const granted = (found: LeaseRecord): Grant => {
      this.#remember(key, found, clock.now());
      measure(found.fencingToken);
      void this.#dropStalePlaces(key, waiter, found); // in the background: the lease is already running
      const sentAt = attempts.get(found.version);
      // Another copy's grant: when it was sent is unknown here (adoptedGrant).
      return sentAt === undefined ? adoptedGrant(found, leaseMs) : grantOf(found, sentAt, leaseMs);
    };
    const timed = async <T>(write: () => Promise<T>): Promise<T> => {
      const sentAt = clock.now();
      const result = await write();
      this.#rttMs += (clock.now() - sentAt - this.#rttMs) * RTT_SMOOTHING;
      return result;
    };
    // Every grant write of this wait names it (the item keeps the id of the wait whose grant
    // landed last), so a copy of any of them delivered late is refused (lease.ts `grant`).
    // Every copy of one request is one wait.
    const wait = request.requestId ?? randomUUID();
    /** One grant write under a fresh attempt id: the grant, or undefined with the item observed. */
    const tryGrant = async (write: (attempt: string) => Promise<GrantOutcome>): Promise<Grant | undefined> => {
      const attempt = thisRequest.next();
      attempts.set(attempt, clock.now());
      const outcome = await timed(() => write(attempt));
      if (outcome.granted) return granted(outcome.record);
      observe(outcome.record, attempts.get(attempt));
      return undefined;
    };

    try {
      for (;;) {
        signal?.throwIfAborted();
        if (ours(record)) return granted(record!);
        // A copy of this request delivered after its grant landed and moved on (the caller
        // released it, or holds it past a heartbeat): nothing more to grant (requestIds).
        if (thisRequest.finished(record)) throw new InvalidArgumentError("requestId", `was granted ${name} already and that grant has moved on: this is a late copy of the request, and nothing was granted`);
        const now = clock.now();
        if (now >= deadline) throw new LockTimeoutError(name, now - started, record?.holder);
        try {
          if (!known) {
            // Nothing known: one grant attempt (or, for a name probably new, its creation).
            const grant = await tryGrant((attempt) => this.#firstGrant(key, owner, { attempt, wait }, leaseMs, data));
            if (grant) return grant;
            continue;
          }
          if (record === undefined) {
            // Known to have no item (swept, or never used): create it, granted.
            const grant = await tryGrant((attempt) => this.#grantMissing(key, owner, { attempt, wait }, leaseMs, data));
            if (grant) return grant;
            continue;
          }
          if (record.grantee === waiter) {
            // Handed to us. Ours as it is, for its lease from before the handover (unless that
            // has mostly run out already, or the grant needs data): else take it up with a write.
            const firstLeaseMs = Math.min(record.leaseMs, leaseMs);
            if (lazy && beforeHandover + firstLeaseMs - clock.now() >= firstLeaseMs / 2) {
              measure(record.fencingToken);
              void this.#dropStalePlaces(key, waiter, record);
              return { fencingToken: record.fencingToken, version: record.version, leaseMs, firstLeaseMs, sentAt: beforeHandover, data: undefined };
            }
            const outcome = await this.#accept(key, owner, { waiter, wait, ids: thisRequest }, leaseMs, data, attempts, timed, record.version);
            if (outcome.granted) return granted(outcome.record);
            observe(outcome.record);
            continue;
          }
          const queue = record.queue;
          const position = placeOf(record);
          const ahead = position < 0 ? queue : queue.slice(0, position);
          const dead = watch.deadPrefix(key, ahead);
          // Our turn: everyone queued ahead of us (everyone, if we have no place) is gone.
          const myTurn = dead.length === ahead.length;
          const since = this.#memory.get(key);
          const versionSince = since?.record?.version === record.version ? since.versionSince : now;
          const expired = record.holder !== undefined && now - versionSince >= record.leaseMs;
          if (myTurn && (record.holder === undefined || expired)) {
            const grant = await tryGrant((attempt) =>
              this.#grant(key, owner, { attempt, wait }, leaseMs, data, {
                kind: expired ? "expired" : "free",
                version: versionOf(record!),
                skip: dead,
                mine: position >= 0 ? queue[position] : undefined,
              }),
            );
            if (grant) return grant;
            continue;
          }
          if (position < 0) {
            // Not our turn: take a place in the queue, then decide again.
            written = { place: formatPlace({ waiter, renewals: placeNumber++, leaseMs: waiterLeaseMs }), at: clock.now() };
            const after = await timed(() => this.store.enqueue(key, written.place, maxWaiters));
            observe(after, written.at);
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
            const sentAt = clock.now();
            observe(await this.store.read(key), sentAt);
            continue;
          }
          const mine = queue[position]!;
          // In the window, a place must change every half lease to show its waiter is alive
          // (at once if it is not the string we last wrote: observers may have timed it for long).
          const renewDue = position >= QUEUE_WINDOW ? Number.POSITIVE_INFINITY : mine === written.place ? written.at + waiterLeaseMs / 2 : 0;
          if (clock.now() >= renewDue) {
            const next = formatPlace({ waiter, renewals: placeNumber++, leaseMs: waiterLeaseMs });
            const sentAt = clock.now();
            const after = await this.store.renewPlace(key, position, mine, next);
            if (after?.queue.includes(next)) written = { place: next, at: sentAt };
            observe(after, sentAt); // the answer doubles as a look
            continue;
          }
          const tokenSince = since?.record?.fencingToken === record.fencingToken ? since.tokenSince : now;
          const plan = nextLook({
            now: clock.now(),
            holder: record.holder,
            pending: record.grantee !== undefined,
            leaseMs: record.leaseMs,
            holdMs: record.holdMs,
            token: record.fencingToken,
            anchor: anchor ?? { token: record.fencingToken, at: now },
            ahead: ahead.length - dead.length,
            versionSince,
            tokenSince,
            grantedAt: record.acquiredAt === undefined ? undefined : Math.min(tokenSince, now - (Date.now() - record.acquiredAt)),
            cycleMs: since?.cycleMs,
            rttMs: this.#rttMs,
            overdue,
            minPollMs,
            maxPollMs,
            handoffMs: handoffLeaseMs(parsePlace(mine), leaseMs),
          });
          const wakeAt = Math.min(plan.at, renewDue, deadline);
          await sleep(Math.max(0, wakeAt - clock.now()), signal);
          if (wakeAt !== plan.at || plan.reason !== "look") continue; // the renewal, the deadline, or the takeover decide next
          overdue++;
          const sentAt = clock.now();
          if (lazy) {
            // A look is a consistent read: a handover it finds is ours without a write (above).
            observe(await timed(() => this.store.read(key)), sentAt);
            continue;
          }
          // A look is an accept attempt: it takes up a handover, and its refusal returns the item.
          const outcome = await this.#accept(key, owner, { waiter, wait, ids: thisRequest }, leaseMs, data, attempts, timed);
          if (outcome.granted) return granted(outcome.record);
          observe(outcome.record, sentAt);
        } catch (err) {
          // Throttled, or an outcome we could not learn: wait a poll and look again. Attempt
          // ids stay in `attempts`, so a grant that landed unseen is recognised later.
          if (err instanceof FencepostError || (certainlyNotApplied(err) && !isBusy(err)) || signal?.aborted) throw err;
          await sleep(Math.max(pollMs, ERROR_BACKOFF_MS), signal);
          const sentAt = clock.now();
          const found = await this.store.read(key).then(
            (item) => ({ item, read: true }),
            () => ({ item: record, read: false }),
          );
          observe(found.item, found.read ? sentAt : undefined);
        }
      }
    } catch (err) {
      await this.#abandon(key, owner, waiter, attempts, record, request.requestId === undefined);
      throw err;
    }
  }

  async tryAcquire(request: Omit<AcquireRequest, "kind" | "waitMs" | "signal">): Promise<Grant | undefined> {
    const { owner, leaseMs, data } = request;
    const key = leaseKey("lock", request.name);
    const thisRequest = requestIds(request.requestId);
    const attempt = thisRequest.next();
    const ids = { attempt, wait: request.requestId ?? attempt };
    const sentAt = this.#clock.now();
    let outcome = await this.#firstGrant(key, owner, ids, leaseMs, data);
    const found = outcome.granted ? undefined : outcome.record;
    if (found) this.#remember(key, found, this.#clock.now());
    // Granted to another copy of this request (its answer lost): that grant is the answer;
    // granted and moved on since: this copy is late, and grants nothing.
    if (found && thisRequest.heldBy(found, owner)) return adoptedGrant(found, leaseMs);
    if (thisRequest.finished(found)) return undefined;
    // Handed to a waiter that has not taken it up for the whole handover lease, as this client
    // has seen it (its own clock): that waiter is gone, and the lock as good as free.
    const memory = this.#memory.get(key);
    const lapsedHandoff = found?.grantee !== undefined && memory?.record?.version === found.version && this.#clock.now() - memory.versionSince >= found.leaseMs;
    if (found && (found.holder === undefined || lapsedHandoff)) {
      // Free, with places queued. Those this client has seen unchanged for their lease are
      // gone: take the lock past them if they are all, else clear them for the next try.
      // (Free with none queued: a name guessed new that exists, or freed meanwhile. Take it.)
      const dead = this.#watch.deadPrefix(key, found.queue);
      const expect: GrantExpectation = lapsedHandoff ? { kind: "expired", version: found.version, skip: dead } : { kind: "free", version: versionOf(found), skip: dead };
      if (dead.length === found.queue.length) outcome = await this.#grant(key, owner, ids, leaseMs, data, expect);
      else if (dead.length > 0) await this.store.prune(key, dead);
    }
    if (!outcome.granted) return undefined;
    this.#remember(key, outcome.record, this.#clock.now());
    return grantOf(outcome.record, sentAt, leaseMs);
  }

  /**
   * The caller of request `requestId` gave up on it (AcquireRequest.requestId): a grant of
   * that request still on the item, which copies never give back, is released (the holder's
   * release, by its token). Resolves to whether one was.
   */
  async abandon(lease: LeaseName, owner: string, requestId: string): Promise<boolean> {
    const key = leaseKey(lease.kind, lease.name);
    const found = await this.store.read(key);
    this.#remember(key, found, this.#clock.now());
    if (!found || !requestIds(requestId).heldBy(found, owner)) return false;
    const outcome = await this.store.release(key, owner, found.fencingToken, randomUUID(), { plan: (seen) => this.#releasePlan(key, seen), seen: found });
    this.#remember(key, outcome.found, this.#clock.now());
    return outcome.released;
  }

  async read(lease: LeaseName): Promise<LockState | undefined> {
    const key = leaseKey(lease.kind, lease.name);
    const found = await this.store.read(key);
    this.#remember(key, found, this.#clock.now());
    return stateOf(found);
  }

  async heartbeat(lease: LeaseName, owner: string, current: string, next: string, leaseMs: number) {
    const key = leaseKey(lease.kind, lease.name);
    const outcome = await this.store.heartbeat(key, owner, current, next, leaseMs);
    this.#remember(key, outcome.ok ? outcome.record : outcome.found, this.#clock.now());
    return outcome.ok ? { ok: true as const } : { ok: false as const, found: outcome.found };
  }

  async release(lease: LeaseName, owner: string, fencingToken: number, heldMs?: number) {
    const key = leaseKey(lease.kind, lease.name);
    const seen = this.#memory.get(key)?.record;
    // One attempt id for the release: sent again while the item shows it never arrived (lease.ts).
    const outcome = await this.store.release(key, owner, fencingToken, randomUUID(), {
      plan: (found) => this.#releasePlan(key, found),
      seen: seen && seen.holder === owner && seen.fencingToken === fencingToken ? seen : undefined,
      holdMs: heldMs === undefined ? undefined : seen?.holdMs === undefined ? heldMs : seen.holdMs + (heldMs - seen.holdMs) * HOLD_SMOOTHING,
    });
    this.#remember(key, outcome.found, this.#clock.now());
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

  /**
   * What a release does with the queue, from `seen` (the item as this client last saw it):
   * skip the places at the head this client saw go unrenewed, and hand the lock to the next
   * one if its waiter takes handovers. An earlier client's waiter at the head gets the lock
   * freed instead (it takes it as it always did), and so does an unknown queue.
   */
  #releasePlan(key: string, seen: LeaseRecord | undefined): ReleasePlan {
    if (!seen) return { skip: [] }; // expect no one queued; a refusal returns the queue
    const queue = seen.queue;
    this.#watch.see(key, queue);
    const skip = this.#watch.deadPrefix(key, queue);
    if (skip.length > MAX_SKIP_PER_WRITE) return FREE_WHATEVER_THE_QUEUE;
    const head = queue[skip.length];
    if (head === undefined) return { skip };
    const place = parsePlace(head);
    const target = handoffTarget(place.waiter);
    if (target === undefined) return FREE_WHATEVER_THE_QUEUE;
    return { skip, head: { place: head, waiter: place.waiter, owner: target.owner, leaseMs: handoffLeaseMs(place, target.leaseMs) } };
  }

  /** One accept attempt (a look): takes up a handover to `waiter` (the one at version `seen`, if given), or returns the item as it is. */
  async #accept(
    key: string,
    owner: string,
    of: { waiter: string; wait: string; ids: RequestIds },
    leaseMs: number,
    data: string | undefined,
    attempts: Map<string, number>,
    timed: <T>(write: () => Promise<T>) => Promise<T>,
    seen?: string,
  ): Promise<GrantOutcome> {
    const attempt = of.ids.next();
    attempts.set(attempt, this.#clock.now());
    return timed(() => this.store.accept(key, owner, of.waiter, attempt, leaseMs, data, seen, of.wait));
  }

  /** Records an answer about `key` received at `at` (this client's clock): the item, since when its version and token have been seen, the lock's pace. */
  #remember(key: string, found: LeaseRecord | undefined, at: number): void {
    const before = this.#memory.get(key);
    const memory: LockMemory = { record: found, at, versionSince: at, tokenSince: at, cycleMs: before?.cycleMs };
    if (before && before.at > at) return; // an older answer than what we know (concurrent requests)
    if (found && before?.record) {
      if (before.record.version === found.version) memory.versionSince = before.versionSince;
      if (before.record.fencingToken === found.fencingToken) memory.tokenSince = before.tokenSince;
    }
    if (found) this.#watch.see(key, found.queue);
    this.#memory.delete(key);
    this.#memory.set(key, memory);
    if (this.#memory.size > REMEMBERED_LOCKS) this.#memory.delete(this.#memory.keys().next().value!);
  }

  /**
   * Leaving without the lock: give back a grant whose answer we never saw, pass on a
   * handover, and drop our queue place. `giveBack` false (a request with an id): a grant of
   * ours is left to its lease, as another copy of the request may have adopted it and
   * answered with it.
   */
  async #abandon(key: string, owner: string, waiter: string, attempts: Map<string, number>, last: LeaseRecord | undefined, giveBack: boolean): Promise<void> {
    try {
      const found = await this.store.read(key);
      this.#remember(key, found, this.#clock.now());
      if (giveBack && found && found.holder === owner && found.grantee === undefined && attempts.has(found.version)) {
        await this.store.release(key, owner, found.fencingToken, randomUUID(), { plan: (seen) => this.#releasePlan(key, seen), seen: found });
      } else if (found && found.grantee === waiter) {
        // Handed to us as we gave up: pass it on now rather than leave it for its short lease.
        const after = await this.store.decline(key, owner, waiter, { plan: (seen) => this.#releasePlan(key, seen), seen: found });
        this.#remember(key, after, this.#clock.now());
        // An accept of ours may have landed after all (its answer lost): then it is ours to release.
        if (giveBack && after && after.holder === owner && after.grantee === undefined && attempts.has(after.version)) {
          await this.store.release(key, owner, after.fencingToken, randomUUID(), { plan: (seen) => this.#releasePlan(key, seen), seen: after });
        }
      }
      await this.#dropStalePlaces(key, waiter, found ?? last);
    } catch {
      // Best effort: an orphaned grant expires after one lease, a handover after its short lease; a place left behind is judged gone after its lease.
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

  /**
   * The first grant attempt when nothing is known of the item: for a name this client has
   * not seen, while most such names turned out new, the transaction that creates it (one
   * request for a new name; an existing one answers with its item); otherwise the
   * UpdateItem (one request for an existing name; a missing one takes the transaction next).
   */
  async #firstGrant(key: string, owner: string, ids: GrantIds, leaseMs: number, data: string | undefined): Promise<GrantOutcome> {
    const unseen = !this.#memory.has(key);
    if (unseen && this.#newNameShare >= 0.5) {
      const outcome = await this.#grantMissing(key, owner, ids, leaseMs, data);
      this.#learnNewName(outcome.granted || outcome.record === undefined);
      return outcome;
    }
    const outcome = await this.store.grant({ key, owner, ...ids, leaseMs, data, expect: { kind: "free" } });
    const missing = !outcome.granted && outcome.record === undefined;
    if (unseen) this.#learnNewName(missing);
    return missing ? this.#grantMissing(key, owner, ids, leaseMs, data) : outcome;
  }

  #learnNewName(wasNew: boolean): void {
    this.#newNameShare += ((wasNew ? 1 : 0) - this.#newNameShare) * NEW_NAME_SMOOTHING;
  }

  #grant(key: string, owner: string, ids: GrantIds, leaseMs: number, data: string | undefined, expect: GrantExpectation) {
    return this.store.grant({ key, owner, ...ids, leaseMs, data, expect }).then(async (outcome) =>
      !outcome.granted && outcome.record === undefined ? this.#grantMissing(key, owner, ids, leaseMs, data) : outcome,
    );
  }

  async #grantMissing(key: string, owner: string, ids: GrantIds, leaseMs: number, data: string | undefined): Promise<GrantOutcome> {
    for (;;) {
      const outcome = await this.store.grantMissing({ key, owner, ...ids, leaseMs, data, expect: { kind: "free" } }, this.#floorGuess);
      if (!("floor" in outcome)) return outcome;
      this.#floorGuess = outcome.floor;
    }
  }
}

/** A grant write's own attempt id, and the id of the wait it belongs to (lease.ts GrantRequest). */
interface GrantIds {
  readonly attempt: string;
  readonly wait: string;
}

/** The version a grant from a read of `record` names (none for an item without one: then the grant is blind). */
function versionOf(record: LeaseRecord): string | undefined {
  return record.version === "" ? undefined : record.version;
}

/** What one client last saw of one lock (all times on its own monotonic clock). */
interface LockMemory {
  /** The item (undefined: seen missing). */
  record: LeaseRecord | undefined;
  /** When the answer showing it arrived. */
  at: number;
  /** Since when `record.version` has been seen (the first answer showing it). */
  versionSince: number;
  /** Since when `record.fencingToken` has been seen. */
  tokenSince: number;
  /** Time per grant over this client's waits, smoothed (ms): from the anchor of a wait to its grant. */
  cycleMs: number | undefined;
}

/** Shortest wait before looking again after a throttled request or an unknown outcome (ms). */
const ERROR_BACKOFF_MS = 20;
/** Locks whose last state one client remembers. */
const REMEMBERED_LOCKS = 1024;
/** An acquire starts from the remembered item if it is at most this old (and younger than the holder's lease). */
const RECENT_MS = 1000;
/** Round trip assumed before any is measured (ms). */
const DEFAULT_RTT_MS = 5;
const RTT_SMOOTHING = 0.2;
/** The holders' hint moves this far toward each new hold. */
const HOLD_SMOOTHING = 0.3;
const PACE_SMOOTHING = 0.3;
/** Longer gaps between grants are no sample of the pace (ms). */
const MAX_PACE_SAMPLE_MS = 2000;
const NEW_NAME_SMOOTHING = 0.25;

/**
 * A grant another copy of the request made: when its write was sent is unknown here, so it
 * is reported as sent before any time (`sentAt` -Infinity: a Lock built on it believes
 * nothing). The lock service's caller measures it from its own first send (lambda-backend.ts).
 */
function adoptedGrant(record: LeaseRecord, leaseMs: number): Grant {
  return { ...grantOf(record, Number.NEGATIVE_INFINITY, leaseMs), adopted: true };
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
    ...(record.grantee !== undefined ? { pending: true } : {}),
  };
}

function expiry(record: LeaseRecord): { expiresAt: number | undefined; expired: boolean } {
  if (record.holder === undefined || record.renewedAt === undefined) return { expiresAt: undefined, expired: false };
  const expiresAt = record.renewedAt + record.leaseMs;
  return { expiresAt, expired: Date.now() > expiresAt };
}
