/**
 * Typed errors of the lock family. Each says what happened and what to do; callers
 * branch with `instanceof`.
 */

/** Base class: every error Fencepost's lock family throws on purpose. */
export class FencepostError extends Error {
  override name = "FencepostError";
}

/** `acquire` waited `waitMs` without being granted the lock. */
export class LockTimeoutError extends FencepostError {
  override name = "LockTimeoutError";
  constructor(
    readonly lockName: string,
    readonly waitedMs: number,
    readonly holder: string | undefined,
  ) {
    super(
      `Lock '${lockName}' was not granted within ${Math.round(waitedMs)} ms` +
        (holder ? ` (held by '${holder}')` : "") +
        `: raise waitMs, or check the holder with inspect('${lockName}').`,
    );
  }
}

/**
 * The lock is no longer held: a heartbeat found another holder, or heartbeats failed until
 * the lease ran out. Work guarded by the lock must stop; writes fenced with its token will be
 * rejected once a newer holder writes.
 */
export class LockLostError extends FencepostError {
  override name = "LockLostError";
  constructor(
    readonly lockName: string,
    readonly fencingToken: number,
    readonly reason: string,
  ) {
    super(`Lock '${lockName}' (fencing token ${fencingToken}) was lost: ${reason}. Stop the guarded work; acquire again to continue.`);
  }
}

/** A fenced write carried a token lower than one that already wrote. */
export class StaleTokenError extends FencepostError {
  override name = "StaleTokenError";
  constructor(
    readonly key: string,
    readonly fencingToken: number,
    readonly currentToken: number,
  ) {
    super(
      `Write to '${key}' with fencing token ${fencingToken} rejected: token ${currentToken} already wrote. ` +
        `A newer lock holder exists; this holder must stop.`,
    );
  }
}

/**
 * A write whose response was lost, and whose effect can no longer be determined: the item
 * has moved on (another writer, a newer token) and keeps no trace of it. It may have been
 * applied and then superseded, or never applied. Read the current state before acting.
 */
export class OutcomeUnknownError extends FencepostError {
  override name = "OutcomeUnknownError";
}

/**
 * A fenced store's key names an item that some other part of the table owns (a lock, the
 * token floor, a counter, your own data): writing it would destroy that item. Choose a
 * `keyPrefix` that no other user of the table uses.
 */
export class KeyInUseError extends FencepostError {
  override name = "KeyInUseError";
  constructor(readonly itemKey: string) {
    super(`Item '${itemKey}' exists and was not written by a FencedStore; refusing to overwrite it. Give the FencedStore a keyPrefix no other item of this table uses.`);
  }
}

/**
 * The lock's waiter queue is full (`maxWaiters` live waiters): the acquire did not wait.
 * Back off and try again, or raise `maxWaiters` (at most 1000).
 */
export class LockQueueFullError extends FencepostError {
  override name = "LockQueueFullError";
  constructor(
    readonly lockName: string,
    readonly waiters: number,
  ) {
    super(`Lock '${lockName}' already has ${waiters} waiters queued, the most its item allows; not waiting. Back off and retry later, or raise the client's maxWaiters (up to 1000).`);
  }
}

/** A release (or other owner-only operation) by a client that does not hold the lock. */
export class NotLockOwnerError extends FencepostError {
  override name = "NotLockOwnerError";
  constructor(
    readonly lockName: string,
    readonly ownerId: string,
    readonly holder: string | undefined,
  ) {
    super(
      `'${ownerId}' cannot release lock '${lockName}': ` +
        (holder ? `it is held by '${holder}'` : "it is not held by this owner with that token") +
        `. Only the holder named by its fencing token may release it.`,
    );
  }
}

/** A uniqueness claim is held by another owner. */
export class ClaimTakenError extends FencepostError {
  override name = "ClaimTakenError";
  constructor(
    readonly namespace: string,
    readonly value: string,
    readonly owner: string | undefined,
  ) {
    super(`'${value}' in '${namespace}' is already claimed${owner ? ` by '${owner}'` : ""}: choose another value, or release the claim first.`);
  }
}

/** Input that can never succeed (empty name, negative lease, ...). Names the field. */
export class InvalidArgumentError extends FencepostError {
  override name = "InvalidArgumentError";
  constructor(
    readonly field: string,
    problem: string,
  ) {
    super(`Invalid ${field}: ${problem}`);
  }
}

/**
 * A release could not reach DynamoDB (every try lost, throttled or failed with 5xx): the
 * item still names this holder. Nothing is lost: the lock ends by itself when its lease
 * runs out, and calling `release()` again tries again.
 */
export class ReleaseIncompleteError extends FencepostError {
  override name = "ReleaseIncompleteError";
  constructor(
    readonly lockName: string,
    readonly fencingToken: number,
    readonly tries: number,
    options?: ErrorOptions,
  ) {
    super(`The release of lock '${lockName}' (token ${fencingToken}) could not be confirmed in ${tries} tries (DynamoDB unreachable); the lock stays held until its lease runs out. Call release() again to retry.`, options);
  }
}

/**
 * A uniqueness claim is held by the same owner under another incarnation: an earlier
 * `claim()` of this owner (another process, or a call whose answer was lost and that
 * did not pass its own `incarnation`). This call did not take it over: a release of that
 * other incarnation would end it under this caller's feet.
 */
export class ClaimHeldByOtherIncarnationError extends ClaimTakenError {
  override name = "ClaimHeldByOtherIncarnationError";
  constructor(
    namespace: string,
    value: string,
    owner: string,
    readonly incarnation: string,
  ) {
    super(namespace, value, owner);
    this.message =
      `'${value}' in '${namespace}' is already claimed by '${owner}' under incarnation '${incarnation}', not this claim's: ` +
      `to keep that claim, use its handle (claims.current(namespace, value)) or claim again passing { incarnation: '${incarnation}' }; ` +
      `to start over, release it first.`;
  }
}

/**
 * An increment retried after its retry window: the record that would prove whether its
 * first attempt was applied may be gone (DynamoDB TTL), so the retry was refused rather
 * than risk counting it twice. The refused attempt wrote nothing; an earlier attempt of
 * the same request id may have applied (read the counter to reconcile).
 */
export class RetryWindowExceededError extends FencepostError {
  override name = "RetryWindowExceededError";
  constructor(
    readonly counterName: string,
    readonly requestId: string,
    /** How long ago (ms, wall clock) the request id was minted. */
    readonly ageMs: number,
    readonly retryWindowMs: number,
  ) {
    super(
      `Increment '${requestId}' of counter '${counterName}' was first issued ${Math.round(ageMs / 1000)} s ago, past its ` +
        `${Math.round(retryWindowMs / 1000)} s retry window: whether it was applied can no longer be proven, so it was not applied again. ` +
        `Read the counter and reconcile; a new increment needs a new request id.`,
    );
  }
}

/**
 * An increment whose outcome could not be learned (DynamoDB did not answer, or answered
 * only after an attempt whose answer was lost). It was applied at most once. Retrying
 * with the same `requestId` within the retry window returns its value if it was applied
 * and applies it otherwise.
 */
export class IncrementOutcomeUnknownError extends FencepostError {
  override name = "IncrementOutcomeUnknownError";
  constructor(
    readonly counterName: string,
    readonly requestId: string,
    /** Wall-clock time (epoch ms) until which a retry with `requestId` is accepted. */
    readonly retryBefore: number,
    options?: ErrorOptions,
  ) {
    super(
      `The increment '${requestId}' of counter '${counterName}' could not be confirmed (DynamoDB did not answer); it was applied at most once. ` +
        `Call incrementAndGet again with { requestId: '${requestId}' } before ${new Date(retryBefore).toISOString()} to learn its value.`,
      options,
    );
  }
}

/**
 * Every attempt of one increment call was refused by contention: other increments moved
 * the counter first, transactions conflicted, or DynamoDB throttled. This call applied
 * nothing (no attempt went unanswered). Back off and call again: with the same
 * `requestId` while its window is open (`retryBefore`), or as a new increment.
 */
export class CounterContentionError extends FencepostError {
  override name = "CounterContentionError";
  constructor(
    readonly counterName: string,
    readonly requestId: string,
    readonly attempts: number,
    readonly elapsedMs: number,
    /** Until when (epoch ms) a retry with `requestId` is accepted; undefined once its window has closed. */
    readonly retryBefore: number | undefined,
  ) {
    super(
      `The increment '${requestId}' of counter '${counterName}' was not applied: its ${attempts} attempts in ${Math.round(elapsedMs)} ms were all refused ` +
        `(other increments of this counter, transaction conflicts or throttling). Back off and call incrementAndGet again` +
        (retryBefore === undefined
          ? `, as a new increment (without this requestId: its retry window has closed).`
          : ` (with { requestId: '${requestId}' } before ${new Date(retryBefore).toISOString()}, or as a new increment); if this persists, spread increments over several counter names.`),
    );
  }
}

/** A claim's handle, as the claim errors carry it (the same shape as Claims' `Claim`). */
export interface ClaimHandle {
  readonly namespace: string;
  readonly value: string;
  readonly owner: string;
  readonly incarnation: string;
}

const CLAIM_MARKER = " The claim: ";

/**
 * A claim whose outcome could not be learned: DynamoDB did not answer, and the value was
 * still free when read, so an attempt may yet land. `claim` names the incarnation this
 * call used (a fresh one, unless you passed yours). Call `claim` again passing
 * `{ incarnation: err.claim.incarnation }`: it returns the claim if an attempt landed
 * and claims it otherwise; or release `err.claim` to be sure it does not hold.
 */
export class ClaimOutcomeUnknownError extends FencepostError {
  override name = "ClaimOutcomeUnknownError";
  constructor(
    readonly claim: ClaimHandle,
    options?: ErrorOptions,
  ) {
    super(
      `The claim of '${claim.value}' in '${claim.namespace}' for '${claim.owner}' could not be confirmed (DynamoDB did not answer); it may still land. ` +
        `Call claim again with { incarnation: '${claim.incarnation}' } to learn or complete it, or release this claim to give it up.` +
        CLAIM_MARKER +
        JSON.stringify(claim),
      options,
    );
  }

  /** The claim a message of this class names (how the error's `claim` is rebuilt across the Lambda boundary). */
  static claimIn(message: string): ClaimHandle | undefined {
    const at = message.lastIndexOf(CLAIM_MARKER);
    if (at < 0) return undefined;
    try {
      return JSON.parse(message.slice(at + CLAIM_MARKER.length)) as ClaimHandle;
    } catch {
      return undefined;
    }
  }
}

/**
 * The claim's incarnation was already claimed and then released: a call retried after its
 * claim ended (a redelivered message, say). It is not claimed again, since nobody would
 * hold its handle to release it. To claim the value anew, use a new incarnation.
 */
export class ClaimAlreadyReleasedError extends FencepostError {
  override name = "ClaimAlreadyReleasedError";
  constructor(
    readonly namespace: string,
    readonly value: string,
    readonly incarnation: string,
  ) {
    super(`The claim '${incarnation}' of '${value}' in '${namespace}' was already made and released; it was not made again. Claim with a new incarnation to claim the value anew.`);
  }
}
