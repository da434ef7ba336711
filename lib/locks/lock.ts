/**
 * Lock: a granted lease on one lock item, kept alive by heartbeats until released.
 * (Guarantees and assumptions: see the TSDoc of Lock below.)
 */
import { randomUUID } from "node:crypto";
import type { MonotonicClock } from "./clock.js";
import { LockLostError, OutcomeUnknownError, type FencepostError } from "../errors.js";
import type { LeaseKeeper } from "./backend.js";
import { HEARTBEAT_FRACTION } from "./defaults.js";
import type { LockKind } from "./protocol.js";

export interface LockParams {
  /** Where heartbeats and the release go (the client's backend). */
  readonly backend: LeaseKeeper;
  readonly clock: MonotonicClock;
  /** A lock's or an election's. */
  readonly kind: LockKind;
  readonly name: string;
  readonly owner: string;
  /** The grant: its token, the lease version to heartbeat from, and the attached data. */
  readonly record: { readonly fencingToken: number; readonly version: string; readonly data?: string | undefined; readonly adopted?: boolean | undefined };
  /** Monotonic time at which the granting write was first sent. */
  readonly sentAt: number;
  readonly leaseMs: number;
  /** The grant's own lease from `sentAt`, if not `leaseMs` (a handover not yet written by its holder); heartbeats ask for `leaseMs`. */
  readonly firstLeaseMs?: number | undefined;
  readonly safetyMarginMs: number;
  /**
   * A heartbeat sent for this grant before it reached the Lock (by the lock service) whose
   * outcome is unknown: the version it would have written. Counted from `sentAt` if it landed.
   */
  readonly unsettledVersion?: string | undefined;
  /** Monotonic time after which no heartbeat may be sent (end of a Lambda invocation). */
  readonly stopBy?: number;
  /**
   * The error `signal` aborts with, given why the lease ended. Default: LockLostError.
   * (A coordination session is a lease too, and ends with SessionExpiredError.)
   */
  readonly lostError?: (reason: string) => FencepostError;
}

/**
 * Lock: a granted lease on one lock item, kept alive by heartbeats until released.
 *
 * Guarantees:
 * - `signal` aborts before any other client can be granted the lock, as long as this
 *   process is not paused and its monotonic clock runs within `safetyMarginMs / leaseMs`
 *   of the waiters' clocks. The holder's lease is measured from the moment it *sent* the
 *   write that granted or extended it; a waiter measures a full lease from the moment it
 *   *received* an answer showing that same write. Since the send precedes the write and
 *   the write precedes the answer, the holder's deadline (send + lease - margin) falls
 *   before the earliest takeover (receipt + lease), with `margin` to spare for drift and
 *   timer lateness.
 * - A paused holder can outlive that guarantee (GC, a frozen Lambda). That is what the
 *   fencing token is for: writes fenced with it are rejected once a newer holder writes.
 * - Heartbeats run every leaseMs / 3, survive lost responses (attempt ids), retry on
 *   throttling until the deadline, and stop for good on release, loss, or the end of
 *   a Lambda invocation. Timers never keep the process alive.
 * Assumes: created only by LockClient from a grant it has confirmed.
 */
export class Lock {
  /** The lock's name. */
  readonly name: string;
  /** Fencing token: strictly greater than the token of every earlier grant of this name. */
  readonly fencingToken: number;
  /** Data the holder attached at acquire time. */
  readonly data: string | undefined;
  readonly #params: LockParams;
  readonly #controller = new AbortController();
  #version: string;
  #deadline: number;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #deadlineTimer: NodeJS.Timeout | undefined;
  #released = false;
  /** The last release could not reach DynamoDB: a second release() sends it again. */
  #releaseFailed = false;
  /** Heartbeats whose outcome we never learned, by version, with when each was sent. */
  readonly #unsettled = new Map<string, number>();
  /** When the grant reached this Lock (its holder's clock): release reports the hold from here, for the waiters' pace hint. */
  readonly #grantedAt: number;
  /** A heartbeat has extended the grant (to `leaseMs`, from the grant's own lease). */
  #extendedOnce = false;

  constructor(params: LockParams) {
    this.#params = params;
    this.name = params.name;
    this.fencingToken = params.record.fencingToken;
    this.data = params.record.data;
    this.#version = params.record.version;
    this.#grantedAt = params.clock.now();
    if (params.unsettledVersion !== undefined) this.#unsettled.set(params.unsettledVersion, params.sentAt);
    const firstLeaseMs = params.firstLeaseMs ?? params.leaseMs;
    this.#deadline = params.sentAt + firstLeaseMs - params.safetyMarginMs;
    this.#armDeadline();
    // A third of the lease after the grant was sent, not after it was answered: a slow grant
    // (the first of a new name takes two requests) must not eat the heartbeat's slack.
    this.#scheduleHeartbeat(Math.max(0, params.sentAt + firstLeaseMs * HEARTBEAT_FRACTION - params.clock.now()));
  }

  /** Aborts (with a LockLostError reason) before any other client could be granted this lock. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** True while the lease is believed held: not released, not lost, deadline not passed. */
  get held(): boolean {
    return !this.#released && !this.signal.aborted && this.#params.clock.now() < this.#deadline;
  }

  /** Milliseconds the current lease is still believed to last (0 once lost or released). */
  remainingMs(): number {
    return this.held ? Math.max(0, this.#deadline - this.#params.clock.now()) : 0;
  }

  /** Throws the LockLostError if the lock is no longer held. Call before irreversible work. */
  assertHeld(): void {
    if (this.held) return;
    if (this.signal.aborted) throw this.signal.reason;
    throw this.#lost(this.#released ? "it was released" : "its lease ran out");
  }

  /**
   * Releases the lock: owner-only, idempotent, one request when DynamoDB answers. Stops
   * heartbeats first. A release that does not reach the item is sent again (the item
   * says whether it arrived); if DynamoDB stays unreachable it throws, and calling
   * release again tries again. Resolves to true if this call released it, false if it had
   * already been released (by an earlier call) or taken over by another holder. Rejects
   * with OutcomeUnknownError when an answer was lost and the item, having moved on, proves
   * neither (the lock is not held by this owner any more either way; calling release again
   * resolves false).
   */
  async release(): Promise<boolean> {
    if (this.#released && !this.#releaseFailed) return false;
    this.#released = true;
    this.#releaseFailed = false;
    this.#stopTimers();
    const { backend, owner } = this.#params;
    let outcome: Awaited<ReturnType<typeof backend.release>>;
    try {
      // Sent again while the item shows it never arrived; settled from the item, never guessed.
      outcome = await backend.release(this.#params, owner, this.fencingToken, this.#params.clock.now() - this.#grantedAt);
    } catch (err) {
      // Unreachable throughout: the lock is not believed held any more, but calling release again tries again.
      // (Unless the outcome is unknown for good: the lock has moved on, and sending it again proves nothing.)
      this.#releaseFailed = !(err instanceof OutcomeUnknownError);
      if (!this.signal.aborted) this.#controller.abort(this.#lost("it was being released"));
      throw err;
    }
    if (!this.signal.aborted) {
      this.#controller.abort(
        outcome.released
          ? this.#lost("it was released")
          : this.#lost("another holder had taken it over before release"),
      );
    }
    return outcome.released;
  }

  /**
   * @internal Stops heartbeats without releasing, for a service that hands the lease to
   * its caller: returns what the caller needs to keep it.
   */
  detach(): { version: string; fencingToken: number; leaseMs: number; data: string | undefined; adopted: boolean } {
    this.#released = true;
    this.#stopTimers();
    // Before its first heartbeat, a handover runs on its own short lease: the caller keeps that one.
    const leaseMs = this.#extendedOnce ? this.#params.leaseMs : (this.#params.firstLeaseMs ?? this.#params.leaseMs);
    // Adopted: made by another copy of the service's request (backend.ts Grant), the caller measures it from its first send.
    return { version: this.#version, fencingToken: this.fencingToken, leaseMs, data: this.data, adopted: this.#params.record.adopted === true };
  }

  #lost(reason: string): FencepostError {
    return this.#params.lostError?.(reason) ?? new LockLostError(this.name, this.fencingToken, reason);
  }

  #lose(reason: string): void {
    this.#stopTimers();
    if (!this.signal.aborted) this.#controller.abort(this.#lost(reason));
  }

  #stopTimers(): void {
    clearTimeout(this.#heartbeatTimer);
    clearTimeout(this.#deadlineTimer);
  }

  #armDeadline(): void {
    clearTimeout(this.#deadlineTimer);
    const { clock, stopBy } = this.#params;
    const at = Math.min(this.#deadline, stopBy ?? Infinity);
    this.#deadlineTimer = setTimeout(
      () => this.#lose(at === this.#deadline ? "its lease ran out before a heartbeat succeeded" : "the Lambda invocation is ending"),
      Math.max(0, at - clock.now()),
    );
    this.#deadlineTimer.unref();
  }

  #scheduleHeartbeat(delayMs = this.#params.leaseMs * HEARTBEAT_FRACTION): void {
    clearTimeout(this.#heartbeatTimer);
    this.#heartbeatTimer = setTimeout(() => void this.#heartbeat(), delayMs);
    this.#heartbeatTimer.unref();
  }

  async #heartbeat(): Promise<void> {
    const { backend, clock, owner, leaseMs, stopBy } = this.#params;
    if (!this.held || (stopBy !== undefined && clock.now() >= stopBy)) return;
    const next = randomUUID();
    const sentAt = clock.now();
    try {
      const outcome = await backend.heartbeat(this.#params, owner, this.#version, next, leaseMs);
      if (this.#released || this.signal.aborted) return;
      if (outcome.ok) return this.#extended(next, sentAt);
      const found = outcome.found;
      const unsettledAt = found && found.holder === owner ? this.#unsettled.get(found.version) : undefined;
      // An earlier heartbeat whose answer we never saw did land: the lease runs from its send.
      if (unsettledAt !== undefined) return this.#extended(found!.version, unsettledAt, 0);
      // Still ours at the version we hold: this heartbeat never reached the item (its
      // attempts failed in the network or with 5xx). Nothing was superseded; try again soon.
      if (found && found.holder === owner && found.version === this.#version) return this.#retryHeartbeatSoon(next, sentAt);
      this.#lose(found?.holder ? `'${found.holder}' holds it now` : "its lease was taken over or released");
    } catch {
      // Throttled or unreachable: remember this attempt (it may have landed) and try again soon.
      this.#retryHeartbeatSoon(next, sentAt);
    }
  }

  /**
   * A heartbeat that did not go through: remember it (it may still have landed) and try
   * again soon. Only a write we know was superseded, or the deadline timer (the lease ran
   * out on our clock), ends the lock.
   */
  #retryHeartbeatSoon(attempt: string, sentAt: number): void {
    this.#unsettled.set(attempt, sentAt);
    if (!this.#released && !this.signal.aborted) this.#scheduleHeartbeat(Math.min(this.#params.leaseMs / 10, 250));
  }

  #extended(version: string, sentAt: number, nextHeartbeatMs?: number): void {
    const { leaseMs, safetyMarginMs } = this.#params;
    this.#extendedOnce = true;
    this.#unsettled.clear();
    this.#version = version;
    this.#deadline = Math.max(this.#deadline, sentAt + leaseMs - safetyMarginMs);
    this.#armDeadline();
    this.#scheduleHeartbeat(nextHeartbeatMs);
  }
}
