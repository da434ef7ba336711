/**
 * LockClient: acquire, tryAcquire, withLock, inspect, release, list and sweep of named
 * locks with fencing tokens. A client is an owner (its `ownerId`) over one backend, chosen
 * once: the lock table itself (`tableName`, DynamoDbLockBackend) or the lock function
 * (`functionName`, LambdaLockBackend). Same API, same semantics, same guarantees; the
 * protocol, its fairness and its request counts are described in dynamodb-backend.ts, the
 * life of a held lease in lock.ts. Elections build on a client (election.ts).
 * (Guarantees and assumptions: see the TSDoc of LockClient below.)
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Grant, LockBackend } from "./backend.js";
import { systemClock, type MonotonicClock } from "./clock.js";
import { DynamoDbLockBackend } from "./dynamodb-backend.js";
import { InvalidArgumentError, LockLostError, NotLockOwnerError } from "../errors.js";
import { LambdaLockBackend } from "./lambda-backend.js";
import { DEFAULT_LEASE_MS, DEFAULT_LIST_LIMIT, DEFAULT_POLL_MS, DEFAULT_SWEEP_IDLE_MS, DEFAULT_WAIT_MS, INVOCATION_RESERVE_MS, MIN_SAFETY_MARGIN_MS, SAFETY_MARGIN_FRACTION } from "./defaults.js";
import { Lock } from "./lock.js";
import { validateFencingToken, validateName, validateNonNegativeMs, validatePositiveMs } from "../internal/validation.js";
import type { LockKind, LockPage, LockState } from "./protocol.js";

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
  /**
   * Lease of each grant, unless the acquire names one.
   * @default DEFAULT_LEASE_MS (10 s)
   */
  leaseMs?: number;
  /**
   * Identifies this client as a holder (at most 256 UTF-8 bytes).
   * @default `${hostname}/${pid}/${random}`
   */
  ownerId?: string;
  /**
   * How long `acquire` waits, unless the acquire says.
   * @default DEFAULT_WAIT_MS (60 s)
   */
  waitMs?: number;
  /**
   * Shortest gap between two looks of a waiter at the lock (after one that came before its
   * turn). Looks are timed by the lock's pace (see pace.ts), not every pollMs; and a waiter
   * looks before a handover to it could lapse (its handover lease, at least 1 s), whatever pollMs.
   * @default DEFAULT_POLL_MS (2 ms)
   */
  pollMs?: number;
  /**
   * Longest gap between two looks of a waiter while the holder is alive (direct mode). Two
   * exceptions, each one look: on a lock never released yet (no pace known) the first look
   * comes when the holder's first heartbeat is due (at most 500 ms); and a waiter at the head
   * that has seen the holder miss its heartbeat waits for its lease to end, then takes over.
   * @default min(leaseMs / 4, MAX_DEFAULT_POLL_MS) (at most 1 s)
   */
  maxPollMs?: number;
  /**
   * How long a waiter's place near the head of the queue lasts unless the waiter renews
   * it (it does, every half of this, while it waits): a crashed waiter holds others up
   * about this long, plus one second. From 1000 ms (and twice maxPollMs) to 60 000 ms
   * (direct mode).
   * @default max(MIN_DEFAULT_WAITER_LEASE_MS, 4 × maxPollMs) (at least 5 s)
   */
  waiterLeaseMs?: number;
  /**
   * Most waiters queued on one lock, at most 1000; an acquire beyond it fails with
   * LockQueueFullError (direct mode).
   * @default DEFAULT_MAX_WAITERS (64)
   */
  maxWaiters?: number;
  /**
   * Holder-side margin for clock drift and timer lateness: a Lock stops believing it holds
   * this long before its lease ends.
   * @default max(SAFETY_MARGIN_FRACTION × leaseMs, MIN_SAFETY_MARGIN_MS) (2%, at least 50 ms)
   */
  safetyMarginMs?: number;
  /**
   * Monotonic clock every lease is measured on; injectable for tests.
   * @default systemClock (performance.now)
   */
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
  /** Inside Lambda: bound the wait and the lease by the remaining invocation time, less INVOCATION_RESERVE_MS. */
  context?: InvocationContext;
  /**
   * @internal For the lock service only: the remote caller's id of this invocation (see
   * AcquireRequest). A grant an earlier copy of the invocation left is returned again.
   */
  requestId?: string;
}

/** Owner ids are stored in every queue place, so they are shorter than names. */
const MAX_OWNER_ID_BYTES = 256;
/** Data attached to a grant (a leader's address, say). */
const MAX_DATA_BYTES = 16 * 1024;

/**
 * LockClient: acquire, tryAcquire, withLock, inspect, release, list and sweep of named
 * locks with fencing tokens. A client is an owner (its `ownerId`) over one backend, chosen
 * once: the lock table itself (`tableName`, DynamoDbLockBackend) or the lock function
 * (`functionName`, LambdaLockBackend). Same API, same semantics, same guarantees; the
 * protocol, its fairness and its request counts are described in dynamodb-backend.ts, the
 * life of a held lease in lock.ts. Elections build on a client (election.ts).
 *
 * Guarantees: every name, owner id, option and attached value is validated before a
 * request is sent (InvalidArgumentError names the field). Inside Lambda (`context`), the
 * wait and the lease end before the invocation does, with a reserve for release.
 * Assumes: one LockClient per process or ownerId (two clients sharing an ownerId are one
 * owner).
 */
export class LockClient {
  readonly ownerId: string;
  /** The lock table when this client talks to it directly; undefined through the lock function. */
  readonly tableName: string | undefined;
  /** The lock function when this client talks through it; undefined in direct mode. */
  readonly functionName: string | undefined;
  readonly #backend: LockBackend;
  readonly #clock: MonotonicClock;
  readonly #leaseMs: number;
  readonly #waitMs: number;
  readonly #safetyMarginMs: number | undefined;

  constructor(options: LockClientOptions | RemoteLockClientOptions) {
    validatePositiveMs("leaseMs", options.leaseMs);
    validatePositiveMs("waitMs", options.waitMs, { orForever: true });
    validatePositiveMs("pollMs", options.pollMs);
    validateNonNegativeMs("safetyMarginMs", options.safetyMarginMs);
    this.#clock = options.clock ?? systemClock;
    if ("functionName" in options) {
      validateName("functionName", options.functionName);
      this.functionName = options.functionName;
      this.#backend = new LambdaLockBackend(options.lambda ?? new LambdaClient({}), options.functionName, this.#clock);
    } else {
      validateName("tableName", options.tableName);
      this.tableName = options.tableName;
      const { maxPollMs, waiterLeaseMs, maxWaiters } = options;
      const dynamodb = options.dynamodb ?? new DynamoDBClient({});
      this.#backend = new DynamoDbLockBackend({ dynamodb, tableName: options.tableName, clock: this.#clock, pollMs: options.pollMs ?? DEFAULT_POLL_MS, maxPollMs, waiterLeaseMs, maxWaiters });
    }
    this.ownerId = options.ownerId ?? `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`;
    validateName("ownerId", this.ownerId);
    const ownerBytes = Buffer.byteLength(this.ownerId, "utf8");
    if (ownerBytes > MAX_OWNER_ID_BYTES) throw new InvalidArgumentError("ownerId", `must be at most ${MAX_OWNER_ID_BYTES} bytes as UTF-8, got ${ownerBytes}`);
    this.#leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    this.#waitMs = options.waitMs ?? DEFAULT_WAIT_MS;
    this.#safetyMarginMs = options.safetyMarginMs;
  }

  /** Waits for the lock and returns it; LockTimeoutError after waitMs. */
  async acquire(name: string, options: AcquireOptions = {}): Promise<Lock> {
    return this.acquireIn("lock", name, options);
  }

  /** One attempt: the lock if it is free and nobody is queued for it, else undefined. Usually one request. */
  async tryAcquire(name: string, options: Omit<AcquireOptions, "waitMs" | "signal"> = {}): Promise<Lock | undefined> {
    validateName("name", name);
    const { leaseMs, stopBy } = this.#bounds(options);
    const grant = await this.#backend.tryAcquire({ name, owner: this.ownerId, leaseMs, data: options.data, requestId: options.requestId });
    return grant && this.#lockFrom("lock", name, grant, stopBy);
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
    return this.readIn("lock", name);
  }

  /**
   * Releases `name` if this client's owner holds it with `fencingToken` (for callers that
   * hold a token but no Lock object, such as the Lambda API). Idempotent for the owner;
   * NotLockOwnerError for anyone else.
   */
  async release(name: string, fencingToken: number): Promise<void> {
    validateName("name", name);
    validateFencingToken(fencingToken);
    const outcome = await this.#backend.release({ kind: "lock", name }, this.ownerId, fencingToken);
    if (!outcome.released) throw new NotLockOwnerError(name, this.ownerId, outcome.holder);
  }

  /**
   * A page of locks in table order (a scan: needs dynamodb:Scan in direct mode). Pass the
   * page's `next` as `startAfter` for the following one; a page may hold fewer than
   * `limit` locks (up to `limit` items are examined).
   */
  async list(options: { limit?: number; startAfter?: string } = {}): Promise<LockPage> {
    const limit = options.limit ?? DEFAULT_LIST_LIMIT;
    if (!(Number.isSafeInteger(limit) && limit >= 1 && limit <= 1000)) throw new InvalidArgumentError("limit", `must be an integer from 1 to 1000, got ${limit}`);
    return this.#backend.list(limit, options.startAfter);
  }

  /**
   * Deletes lock and election items released more than `idleMs` ago (wall clock; only
   * storage depends on it) with nobody waiting. Tokens of swept names continue above the
   * table's floor. Direct mode only; needs dynamodb:Scan; meant for a scheduled job.
   * Resolves to the number deleted.
   */
  async sweep(options: { idleMs?: number } = {}): Promise<number> {
    validateNonNegativeMs("idleMs", options.idleMs);
    return this.#backend.sweep(Date.now() - (options.idleMs ?? DEFAULT_SWEEP_IDLE_MS));
  }

  /** @internal Waits for the lease of `kind`/`name` (locks and elections share this loop). */
  async acquireIn(kind: LockKind, name: string, options: AcquireOptions): Promise<Lock> {
    validateName("name", name);
    validatePositiveMs("waitMs", options.waitMs, { orForever: true });
    const { leaseMs, waitMs, stopBy } = this.#bounds(options);
    const grant = await this.#backend.acquire({ kind, name, owner: this.ownerId, leaseMs, waitMs, data: options.data, signal: options.signal, requestId: options.requestId });
    return this.#lockFrom(kind, name, grant, stopBy);
  }

  /** @internal The state of the lease of `kind`/`name` (one consistent read). */
  async readIn(kind: LockKind, name: string): Promise<LockState | undefined> {
    validateName("name", name);
    return this.#backend.read({ kind, name });
  }

  #bounds(options: AcquireOptions): { leaseMs: number; waitMs: number; stopBy: number | undefined } {
    validatePositiveMs("leaseMs", options.leaseMs);
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

  #lockFrom(kind: LockKind, name: string, grant: Grant, stopBy: number | undefined): Lock {
    const safetyMarginMs = this.#safetyMarginMs ?? Math.max(grant.leaseMs * SAFETY_MARGIN_FRACTION, MIN_SAFETY_MARGIN_MS);
    return new Lock({ backend: this.#backend, clock: this.#clock, kind, name, owner: this.ownerId, record: grant, sentAt: grant.sentAt, leaseMs: grant.leaseMs, firstLeaseMs: grant.firstLeaseMs, unsettledVersion: grant.unsettledVersion, safetyMarginMs, stopBy });
  }
}

