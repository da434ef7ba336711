/**
 * LockBackend: what LockClient needs from wherever lease items live. Two implementations
 * tell the same protocol: DynamoDbLockBackend (dynamodb-backend.ts) writes the lock table
 * itself; LambdaLockBackend (lambda-backend.ts) asks the lock function, which runs a
 * DynamoDbLockBackend. LockClient picks one when it is constructed and never asks which.
 *
 * Guarantees every implementation gives:
 * - `acquire` resolves only with a grant this owner holds, and `sentAt` is a time on the
 *   client's monotonic clock no later than the first send of the write that granted it
 *   (the holder's lease is measured from there; see lock.ts). It rejects with
 *   LockTimeoutError after `waitMs`, and with the signal's reason once `signal` aborts,
 *   leaving no grant of its own behind that outlives one lease.
 * - `heartbeat` and `release` settle lost responses from the item, never by guessing.
 * Assumes: owners are distinct per holder (two clients sharing an owner id are one owner).
 */
import type { LockKind, LockPage, LockState } from "./protocol.js";

/** One lease item: a lock or an election, by name. */
export interface LeaseName {
  readonly kind: LockKind;
  readonly name: string;
}

/** A request for a lease, with every default already applied by LockClient. */
export interface AcquireRequest extends LeaseName {
  readonly owner: string;
  readonly leaseMs: number;
  /** How long to wait for the grant (may be Infinity). */
  readonly waitMs: number;
  readonly data?: string;
  readonly signal?: AbortSignal;
  /**
   * The lock service's remote caller's id of one invocation, the same in every copy of it
   * (an SDK retry after a lost answer, a duplicate run at once). Every grant write of this
   * request carries it in its version (`<requestId>.<uuid>`), so a grant another copy
   * made is this request's, returned again (`adopted`) instead of waited behind; and once
   * that grant has moved on, a late copy grants nothing. An adopted grant's `sentAt` is
   * unknown here (-Infinity): only a caller that measures the lease from its own first
   * send of the id, before any copy ran (LambdaLockBackend), may hold it.
   */
  readonly requestId?: string;
}

/** A confirmed grant: enough for a Lock to heartbeat and release it. */
export interface Grant {
  readonly fencingToken: number;
  /** The lease version the first heartbeat must present. */
  readonly version: string;
  readonly leaseMs: number;
  readonly data?: string | undefined;
  /** Monotonic time (the client's clock) at or before which the granting write was first sent. */
  readonly sentAt: number;
  /**
   * How long the grant as it stands lasts from `sentAt`, when that is not `leaseMs`: a lock
   * handed over by a release and not yet written by its new holder runs on the handover's
   * short lease until the first heartbeat asks for `leaseMs` (see lease.ts).
   */
  readonly firstLeaseMs?: number;
  /** A heartbeat sent for this grant whose outcome is unknown: the version it would have written (see LockGrant). */
  readonly unsettledVersion?: string | undefined;
  /** Made by another copy of the request (AcquireRequest.requestId): `sentAt` is then -Infinity. */
  readonly adopted?: boolean;
}

/** What a held lease needs from its backend: heartbeats and release. */
export interface LeaseKeeper {
  /** Extends `owner`'s lease from version `current` to `next`; `found` is the item when the condition failed. */
  heartbeat(lease: LeaseName, owner: string, current: string, next: string, leaseMs: number): Promise<{ ok: true } | { ok: false; found: { holder?: string; version: string } | undefined }>;
  /**
   * Ends `owner`'s lease granted with `fencingToken`; `released: false` when it was not (or
   * no longer) theirs, with the holder found. `heldMs`: how long the holder held it (its own
   * clock), for the waiters' pace hint; backends may ignore it.
   */
  release(lease: LeaseName, owner: string, fencingToken: number, heldMs?: number): Promise<{ released: boolean; holder?: string | undefined }>;
}

/** Where lease items live, behind the five operations of the lock protocol (and two for operators). */
export interface LockBackend extends LeaseKeeper {
  /** Waits for the lease (queueing fairly) and returns the grant; see the module header. */
  acquire(request: AcquireRequest): Promise<Grant>;
  /** One attempt at a free lock nobody is queued for: the grant, or undefined. */
  tryAcquire(request: Omit<AcquireRequest, "kind" | "waitMs" | "signal">): Promise<Grant | undefined>;
  /** The item's current state (one consistent read), or undefined if it has no item. */
  read(lease: LeaseName): Promise<LockState | undefined>;
  /** A page of lock items (a table scan). */
  list(limit: number, startAfter?: string): Promise<LockPage>;
  /** Deletes items released before `releasedBefore` (epoch ms) with nobody waiting; resolves to the number deleted. */
  sweep(releasedBefore: number): Promise<number>;
}
