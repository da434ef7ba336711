/**
 * LockClient: acquire, tryAcquire, withLock, inspect, release and sweep of named locks
 * with fencing tokens, on one DynamoDB table.
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
 * lease; `tryAcquire` (retried) and `sweep` see past them too. The queue holds at most `maxWaiters` places (an acquire beyond it
 * fails with LockQueueFullError), and owner ids and attached data are bounded, so the
 * item stays far below DynamoDB's 400 KB and a release can always be written. The
 * queue orders grants; safety never depends on it.
 *
 * Takeover without synchronized clocks: a waiter takes over a held lock only after it
 * has seen the same lease version unchanged for the holder's full lease, measured on its
 * own monotonic clock from the receipt of the answer that showed it, and only with a
 * write conditioned on that version. See lock.ts for why the holder stops first.
 *
 * Lost responses: every write carries a fresh attempt id; see lease.ts.
 *
 * Cleanup: `sweep()` deletes released items idle for longer than a threshold after
 * raising the table's token floor, so tokens never regress (see lease.ts). DynamoDB TTL
 * is never used on lock items, because TTL deletion cannot raise the floor.
 *
 * Assumes: the table has partition key `pk` (string); one LockClient per process or
 * ownerId (two clients sharing an ownerId are one owner).
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { systemClock, sleep, type MonotonicClock } from "./clock.js";
import { FencepostError, InvalidArgumentError, LockLostError, LockQueueFullError, LockTimeoutError, NotLockOwnerError } from "./errors.js";
import { certainlyNotApplied, isThrottling, LeaseStore, type GrantExpectation, type LeaseRecord } from "./lease.js";
import { formatPlace, MAX_WAITER_LEASE_MS, MAX_WAITERS, MIN_WAITER_LEASE_MS, parsePlace, PlaceWatch, QUEUE_WINDOW } from "./queue.js";
import { elect, leader, observe, type ElectOptions, type Leader, type Leadership } from "./election.js";
import { Lock, type LeaseKeeper } from "./lock.js";
import { kindAndName, LockFunction, RemoteLeaseKeeper } from "./remote.js";

/** The part of a Lambda context the client needs to bound leases and waits by the invocation. */
export interface InvocationContext {
  getRemainingTimeInMillis(): number;
}

/** Options of a LockClient that talks to the lock table directly. */
export interface LockClientOptions extends CommonLockClientOptions {
  /** The lock table (partition key `pk`). */
  tableName: string;
  /** Injected client: add endpoints, middleware, fault injection. Default: a new DynamoDBClient. */
  dynamodb?: DynamoDBClient;
}

/**
 * Options of a LockClient in remote mode: every request goes to the lock Lambda (the
 * Fencepost construct's `lockFunction`) by direct invoke; the caller needs
 * lambda:InvokeFunction on it and no table access. Same API, same semantics.
 */
export interface RemoteLockClientOptions extends CommonLockClientOptions {
  /** Name or ARN of the lock function (stack output LockFunctionName). */
  functionName: string;
  /** Injected client (endpoint, credentials, middleware). Default: a new LambdaClient. */
  lambda?: LambdaClient;
}

export interface CommonLockClientOptions {
  /** Default lease. Default: 10 000 ms. */
  leaseMs?: number;
  /** Identifies this client as a holder. Default: hostname/pid/random. */
  ownerId?: string;
  /** Default acquire wait. Default: 60 000 ms. */
  waitMs?: number;
  /** Fastest poll while waiting. Default: 10 ms. */
  pollMs?: number;
  /** Slowest poll while waiting. Default: min(leaseMs / 4, 1000) ms. */
  maxPollMs?: number;
  /**
   * How long a waiter's place near the head of the queue lasts unless the waiter renews
   * it (it does, every half of this, while it waits): a crashed waiter holds others up
   * about this long, plus one second. From 1000 ms (and twice maxPollMs) to 60 000 ms. Default:
   * max(5000, 4 * maxPollMs) ms.
   */
  waiterLeaseMs?: number;
  /** Most waiters queued on one lock; an acquire beyond it fails with LockQueueFullError. Default 64, at most 1000. */
  maxWaiters?: number;
  /** Holder-side margin for clock drift and timer lateness. Default: max(2% of leaseMs, 50 ms). */
  safetyMarginMs?: number;
  /** Monotonic clock; injectable for tests. */
  clock?: MonotonicClock;
}

export interface AcquireOptions {
  /** How long to wait for the lock. Default: the client's waitMs. */
  waitMs?: number;
  /** Lease for this grant. Default: the client's leaseMs. */
  leaseMs?: number;
  /** Stops waiting when aborted (rejects with the signal's reason). */
  signal?: AbortSignal;
  /** A value attached to the grant, visible to inspect() (a leader's address, say). */
  data?: string;
  /** Inside Lambda: bound the wait and the lease by the remaining invocation time. */
  context?: InvocationContext;
}

/** What inspect() reports about a lock. */
export interface LockState {
  holder: string | undefined;
  fencingToken: number;
  leaseMs: number;
  released: boolean;
  /** Places in the waiter queue (a crashed waiter's place counts until it is judged gone and removed). */
  waiters: number;
  data: string | undefined;
  /**
   * When the holder's lease runs out (epoch ms: its last heartbeat plus the lease), by the
   * wall clocks of the writers and the reader. An estimate for people: taking over never
   * uses it (a waiter measures the lease on its own monotonic clock). Undefined when free.
   */
  expiresAt: number | undefined;
  /** Held, but the lease ran out by `expiresAt`: the next acquire will take it over. */
  expired: boolean;
}

const MAX_NAME_LENGTH = 512;
/** Owner ids are stored in every queue place, so they are shorter than names. */
const MAX_OWNER_ID_BYTES = 256;
/** Data attached to a grant (a leader's address, say). */
const MAX_DATA_BYTES = 16 * 1024;
/** Time kept back from a Lambda invocation for release and the response. */
const INVOCATION_RESERVE_MS = 500;

function positive(field: string, value: number | undefined): void {
  if (value !== undefined && !(typeof value === "number" && value > 0)) {
    throw new InvalidArgumentError(field, `must be a positive number of milliseconds, got ${value}`);
  }
}

/**
 * A name (of a lock, a table, a transaction, an owner...): a non-empty, well-formed
 * Unicode string of at most MAX_NAME_LENGTH UTF-8 bytes, without control characters.
 */
export function validateName(field: string, name: unknown): asserts name is string {
  if (typeof name !== "string" || name.length === 0) throw new InvalidArgumentError(field, "must be a non-empty string");
  const bytes = Buffer.byteLength(name, "utf8");
  if (bytes > MAX_NAME_LENGTH) throw new InvalidArgumentError(field, `must be at most ${MAX_NAME_LENGTH} bytes as UTF-8, got ${bytes}`);
  if (!isWellFormed(name)) throw new InvalidArgumentError(field, "must be well-formed Unicode (it contains a lone surrogate)");
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) throw new InvalidArgumentError(field, "must not contain control characters");
}

function isWellFormed(text: string): boolean {
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(text);
}

function nonNegative(field: string, value: number | undefined): void {
  if (value !== undefined && !(typeof value === "number" && Number.isFinite(value) && value >= 0)) {
    throw new InvalidArgumentError(field, `must be zero or a positive number of milliseconds, got ${value}`);
  }
}

const DEFAULT_MAX_WAITERS = 64;

/** Longest wait one remote acquire invocation is asked for; longer waits take several. */
const REMOTE_WAIT_SLICE_MS = 20_000;

export class LockClient {
  readonly ownerId: string;
  /** The lock table in direct mode; undefined in remote mode. */
  readonly tableName: string | undefined;
  /** The lock function in remote mode; undefined in direct mode. */
  readonly functionName: string | undefined;
  readonly #store: LeaseStore | undefined;
  readonly #remote: LockFunction | undefined;
  readonly #keeper: LeaseKeeper;
  readonly #clock: MonotonicClock;
  readonly #leaseMs: number;
  readonly #waitMs: number;
  readonly #pollMs: number;
  readonly #options: CommonLockClientOptions;
  #floorGuess = 0;
  /** What this client saw of queue heads, to tell gone waiters (see queue.ts). */
  readonly #watch: PlaceWatch;

  constructor(options: LockClientOptions | RemoteLockClientOptions) {
    positive("leaseMs", options.leaseMs);
    positive("waitMs", options.waitMs);
    positive("pollMs", options.pollMs);
    if (!("functionName" in options)) {
      positive("maxPollMs", options.maxPollMs);
      positive("waiterLeaseMs", options.waiterLeaseMs);
      nonNegative("safetyMarginMs", options.safetyMarginMs);
      const maxWaiters = options.maxWaiters;
      if (maxWaiters !== undefined && !(Number.isSafeInteger(maxWaiters) && maxWaiters >= 1 && maxWaiters <= MAX_WAITERS)) {
        throw new InvalidArgumentError("maxWaiters", `must be an integer from 1 to ${MAX_WAITERS}, got ${maxWaiters}`);
      }
    }
    if ("functionName" in options) {
      validateName("functionName", options.functionName);
      this.functionName = options.functionName;
      this.#remote = new LockFunction(options.lambda ?? new LambdaClient({}), options.functionName);
      this.#keeper = new RemoteLeaseKeeper(this.#remote);
    } else {
      validateName("tableName", options.tableName);
      this.tableName = options.tableName;
      this.#store = new LeaseStore(options.dynamodb ?? new DynamoDBClient({}), options.tableName);
      this.#keeper = this.#store;
    }
    this.ownerId = options.ownerId ?? `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`;
    validateName("ownerId", this.ownerId);
    const ownerBytes = Buffer.byteLength(this.ownerId, "utf8");
    if (ownerBytes > MAX_OWNER_ID_BYTES) throw new InvalidArgumentError("ownerId", `must be at most ${MAX_OWNER_ID_BYTES} bytes as UTF-8, got ${ownerBytes}`);
    this.#clock = options.clock ?? systemClock;
    this.#watch = new PlaceWatch(this.#clock);
    this.#leaseMs = options.leaseMs ?? 10_000;
    this.#waitMs = options.waitMs ?? 60_000;
    this.#pollMs = options.pollMs ?? 10;
    this.#options = options;
  }

  /** @internal The persistence layer (direct mode only). */
  get store(): LeaseStore {
    if (!this.#store) throw new FencepostError(`This LockClient talks to the lock function '${this.functionName}'; this operation needs direct table access (a LockClient with tableName).`);
    return this.#store;
  }

  /** Waits for the lock and returns it; LockTimeoutError after waitMs. */
  async acquire(name: string, options: AcquireOptions = {}): Promise<Lock> {
    validateName("name", name);
    return this.acquireKey(`lock#${name}`, name, options);
  }

  /** One attempt: the lock if it is free and nobody is queued for it, else undefined. Usually one request. */
  async tryAcquire(name: string, options: Omit<AcquireOptions, "waitMs" | "signal"> = {}): Promise<Lock | undefined> {
    validateName("name", name);
    const { leaseMs, stopBy } = this.#bounds(options);
    const key = `lock#${name}`;
    if (this.#remote) {
      const sentAt = this.#clock.now();
      const out = await this.#remote.call({ action: "tryAcquire", name, owner: this.ownerId, leaseMs: Math.round(leaseMs), data: options.data });
      return out.granted ? this.#lockFrom(name, key, out.lock, sentAt, out.lock.leaseMs, stopBy) : undefined;
    }
    const attempt = randomUUID();
    const sentAt = this.#clock.now();
    let outcome = await this.#grant(key, attempt, leaseMs, options.data, { kind: "free" });
    const found = outcome.granted ? undefined : outcome.record;
    if (found && found.holder === undefined && found.queue.length > 0) {
      // Free, with places queued. Those this client has seen unchanged for their lease are
      // gone: take the lock past them if they are all, else clear them for the next try.
      this.#watch.see(key, found.queue);
      const dead = this.#watch.deadPrefix(key, found.queue);
      if (dead.length === found.queue.length) outcome = await this.#grant(key, attempt, leaseMs, options.data, { kind: "free", skip: dead });
      else if (dead.length > 0) await this.store.prune(key, dead);
    }
    if (outcome.granted) return this.#lockFrom(name, key, outcome.record, sentAt, leaseMs, stopBy);
    return undefined;
  }

  /**
   * Runs `fn` holding the lock and releases it afterwards, whatever happens. Rejects with
   * LockLostError if the lock was lost while `fn` ran (its work may have overlapped a
   * newer holder's; fenced writes will have been rejected).
   */
  async withLock<T>(name: string, fn: (lock: Lock) => Promise<T> | T, options: AcquireOptions = {}): Promise<T> {
    const lock = await this.acquire(name, options);
    let result: T;
    try {
      result = await fn(lock);
    } finally {
      const lostWhileRunning = lock.signal.aborted ? (lock.signal.reason as unknown) : undefined;
      await lock.release();
      if (lostWhileRunning instanceof LockLostError) throw lostWhileRunning;
    }
    return result;
  }

  /** The lock's current state (one consistent read), or undefined if it has no item. */
  async inspect(name: string): Promise<LockState | undefined> {
    validateName("name", name);
    if (this.#remote) return (await this.#remote.call({ action: "inspect", name })) ?? undefined;
    return stateOf(await this.store.read(`lock#${name}`));
  }

  /**
   * Releases `name` if this client's owner holds it with `fencingToken` (for callers that
   * hold a token but no Lock object, such as the Lambda API). Idempotent for the owner;
   * NotLockOwnerError for anyone else.
   */
  async release(name: string, fencingToken: number): Promise<void> {
    validateName("name", name);
    const outcome = await this.#keeper.release(`lock#${name}`, this.ownerId, fencingToken, randomUUID());
    if (!outcome.released) throw new NotLockOwnerError(name, this.ownerId, "found" in outcome ? (outcome.found as LeaseRecord | undefined)?.holder : undefined);
  }

  /** Campaigns for leadership of `name` until elected; see election.ts. */
  elect(name: string, options: ElectOptions = {}): Promise<Leadership> {
    return elect(this, name, options);
  }

  /** The current leader of `name`, or undefined. */
  async leader(name: string): Promise<Leader | undefined> {
    if (this.#remote) {
      validateName("name", name);
      return (await this.#remote.call({ action: "leader", name })) ?? undefined;
    }
    return leader(this, name);
  }

  /** Yields the leader of `name` now and at every change seen, until `signal` aborts. */
  observe(name: string, options: { signal?: AbortSignal; pollMs?: number } = {}): AsyncGenerator<Leader | undefined> {
    return observe(this, name, options);
  }

  /**
   * Deletes lock items released more than `idleMs` ago (wall clock; only storage depends
   * on it) with nobody waiting. Tokens of swept names continue above the table's floor.
   * Needs dynamodb:Scan; meant for a scheduled job. Resolves to the number deleted.
   */
  async sweep(options: { idleMs?: number } = {}): Promise<number> {
    const store = this.store;
    const idleMs = options.idleMs ?? 24 * 3600_000;
    const before = Date.now() - idleMs;
    return (await store.sweep("lock#", before)) + (await store.sweep("election#", before));
  }

  /** @internal The acquire loop shared by locks and elections. */
  async acquireKey(key: string, name: string, options: AcquireOptions): Promise<Lock> {
    positive("waitMs", options.waitMs);
    if (this.#remote) return this.#acquireRemote(this.#remote, key, name, options);
    const clock = this.#clock;
    const { leaseMs, waitMs, stopBy } = this.#bounds(options);
    const maxPollMs = this.#options.maxPollMs ?? Math.max(this.#pollMs, Math.min(leaseMs / 4, 1000));
    const waiterLeaseMs = this.#waiterLeaseMs(maxPollMs);
    const maxWaiters = this.#options.maxWaiters ?? DEFAULT_MAX_WAITERS;
    const watch = this.#watch;
    const waiter = `${this.ownerId}#${randomUUID().slice(0, 8)}`;
    const placeOf = (r: LeaseRecord | undefined) => (r ? r.queue.findIndex((place) => parsePlace(place).waiter === waiter) : -1);
    const started = clock.now();
    const deadline = started + waitMs;
    // Every grant attempt's id and when it was first sent: an item stamped with one of
    // these is ours, even if the answer to that attempt never arrived.
    const attempts = new Map<string, number>();
    let record: LeaseRecord | undefined;
    let known = false;
    // Since when (receipt time of the answer that first showed it) the lock's version has
    // been seen unchanged.
    let seen = { version: "", since: started };
    let pollMs = this.#pollMs;
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
        pollMs = this.#pollMs;
      } else pollMs = Math.min(maxPollMs, pollMs * 1.5);
    };
    const ours = (r: LeaseRecord | undefined) => r !== undefined && r.holder === this.ownerId && attempts.has(r.version);
    const granted = (found: LeaseRecord, sentAt: number) => {
      const lock = this.#lockFrom(name, key, found, sentAt, leaseMs, stopBy);
      void this.#dropStalePlaces(key, waiter, found); // in the background: the lease is already running
      return lock;
    };

    let pollNext = false; // a waiter whose turn it is polls with a grant attempt, whose failure returns the item
    try {
      for (;;) {
        options.signal?.throwIfAborted();
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
            const outcome = await this.#grant(key, attempt, leaseMs, options.data, {
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
          await sleep(Math.max(0, Math.min(pollMs, deadline - clock.now(), renewDue - clock.now())), options.signal);
          if (myTurn) pollNext = true;
          else observe(await this.store.read(key));
        } catch (err) {
          // Throttled, or an outcome we could not learn: wait a poll and look again. Attempt
          // ids stay in `attempts`, so a grant that landed unseen is recognised later.
          if (err instanceof FencepostError || (certainlyNotApplied(err) && !isThrottling(err)) || options.signal?.aborted) throw err;
          await sleep(pollMs, options.signal);
          observe(await this.store.read(key).catch(() => record));
        }
      }
    } catch (err) {
      await this.#abandon(key, waiter, attempts, record);
      throw err;
    }
  }

  /**
   * Remote acquire: the function waits (a slice at a time, within its invocation) and
   * hands over the lease; the lease is measured from before each invoke was sent.
   */
  async #acquireRemote(fn: LockFunction, key: string, name: string, options: AcquireOptions): Promise<Lock> {
    const clock = this.#clock;
    const { leaseMs, waitMs, stopBy } = this.#bounds(options);
    const { kind } = kindAndName(key);
    const deadline = clock.now() + waitMs;
    for (;;) {
      options.signal?.throwIfAborted();
      const sentAt = clock.now();
      const slice = Math.floor(Math.max(0, Math.min(deadline - sentAt, REMOTE_WAIT_SLICE_MS)));
      const common = { name, owner: this.ownerId, waitMs: slice, leaseMs: Math.round(leaseMs) };
      try {
        const grant = await fn.call(kind === "election" ? { action: "elect", ...common, value: options.data } : { action: "acquire", ...common, data: options.data });
        return this.#lockFrom(name, key, grant, sentAt, grant.leaseMs, stopBy);
      } catch (err) {
        if (!(err instanceof LockTimeoutError) || clock.now() >= deadline) throw err;
      }
    }
  }

  /** Leaving without the lock: give back a grant whose answer we never saw, and our queue place. */
  async #abandon(key: string, waiter: string, attempts: Map<string, number>, last: LeaseRecord | undefined): Promise<void> {
    try {
      const found = await this.store.read(key);
      if (found && found.holder === this.ownerId && attempts.has(found.version)) {
        await this.store.release(key, this.ownerId, found.fencingToken, randomUUID());
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
    return declared ?? Math.min(MAX_WAITER_LEASE_MS, Math.max(5000, 4 * maxPollMs));
  }

  #grant(key: string, attempt: string, leaseMs: number, data: string | undefined, expect: GrantExpectation) {
    return this.store.grant({ key, owner: this.ownerId, attempt, leaseMs, data, expect }).then(async (outcome) =>
      !outcome.granted && outcome.record === undefined ? this.#grantMissing(key, attempt, leaseMs, data) : outcome,
    );
  }

  async #grantMissing(key: string, attempt: string, leaseMs: number, data: string | undefined) {
    for (;;) {
      const outcome = await this.store.grantMissing({ key, owner: this.ownerId, attempt, leaseMs, data, expect: { kind: "free" } }, this.#floorGuess);
      if (!("floor" in outcome)) return outcome;
      this.#floorGuess = outcome.floor;
    }
  }

  #bounds(options: AcquireOptions): { leaseMs: number; waitMs: number; stopBy: number | undefined } {
    positive("leaseMs", options.leaseMs);
    if (options.data !== undefined) {
      const bytes = typeof options.data === "string" ? Buffer.byteLength(options.data, "utf8") : Number.NaN;
      if (!(bytes <= MAX_DATA_BYTES)) throw new InvalidArgumentError("data", `must be a string of at most ${MAX_DATA_BYTES} bytes as UTF-8, got ${typeof options.data === "string" ? `${bytes} bytes` : typeof options.data}`);
    }
    let leaseMs = options.leaseMs ?? this.#leaseMs;
    let waitMs = options.waitMs ?? this.#waitMs;
    let stopBy: number | undefined;
    if (options.context) {
      const remaining = options.context.getRemainingTimeInMillis() - INVOCATION_RESERVE_MS;
      if (remaining <= 0) throw new InvalidArgumentError("context", "the Lambda invocation has no time left to hold a lock");
      leaseMs = Math.min(leaseMs, remaining);
      waitMs = Math.min(waitMs, remaining);
      stopBy = this.#clock.now() + remaining;
    }
    return { leaseMs, waitMs, stopBy };
  }

  #lockFrom(name: string, key: string, grant: { fencingToken: number; version: string; data?: string | undefined; leaseMs: number }, sentAt: number, leaseMs: number, stopBy: number | undefined): Lock {
    const safetyMarginMs = this.#options.safetyMarginMs ?? Math.max(leaseMs * 0.02, 50);
    const record = { fencingToken: grant.fencingToken, version: grant.version, data: grant.data, leaseMs: grant.leaseMs };
    return new Lock({ store: this.#keeper, clock: this.#clock, name, key, owner: this.ownerId, record, sentAt, leaseMs: record.leaseMs || leaseMs, safetyMarginMs, stopBy });
  }
}

export function stateOf(record: LeaseRecord | undefined): LockState | undefined {
  if (!record) return undefined;
  return {
    holder: record.holder,
    fencingToken: record.fencingToken,
    leaseMs: record.leaseMs,
    released: record.holder === undefined,
    waiters: record.queue.length,
    data: record.data,
    ...expiry(record),
  };
}

function expiry(record: LeaseRecord): { expiresAt: number | undefined; expired: boolean } {
  if (record.holder === undefined || record.renewedAt === undefined) return { expiresAt: undefined, expired: false };
  const expiresAt = record.renewedAt + record.leaseMs;
  return { expiresAt, expired: Date.now() > expiresAt };
}
