/**
 * Every error Fencepost throws on purpose, in one place: one base class (FencepostError),
 * every constructor ending in `options?: ErrorOptions` so the underlying failure travels as
 * `cause`, and each message saying what happened and what to do. Callers branch with
 * `instanceof`.
 *
 * Across the Lambda boundary: `toWire` turns an error into what a function reports
 * (`errorType`, the class name; `errorMessage`, the message, then its details as a last
 * line of JSON), and `fromWire` rebuilds the same class on the caller's side, with the
 * same message and the same fields (a lock's name, an invalid argument's `field`, an
 * unknown claim's handle). The classes that cross are the fixed map ERROR_CLASSES; an
 * error of any other type comes back as RemoteFunctionError.
 */

/**
 * Base class: every error Fencepost throws on purpose. Each says what happened and what to
 * do; `cause` (ErrorOptions) carries the underlying failure where there is one. Its own
 * fields (a lock's name, the field of an invalid argument, ...) are its details, and cross
 * the Lambda boundary with it (see toWire/fromWire).
 */
export class FencepostError extends Error {
  override name = "FencepostError";
  constructor(message?: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** `acquire` waited `waitMs` without being granted the lock. */
export class LockTimeoutError extends FencepostError {
  override name = "LockTimeoutError";
  constructor(
    readonly lockName: string,
    readonly waitedMs: number,
    readonly holder: string | undefined,
    options?: ErrorOptions,
  ) {
    super(
      `Lock '${lockName}' was not granted within ${Math.round(waitedMs)} ms` +
        (holder ? ` (held by '${holder}')` : "") +
        `: raise waitMs, or check the holder with inspect('${lockName}').`,
      options,
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
    options?: ErrorOptions,
  ) {
    super(`Lock '${lockName}' (fencing token ${fencingToken}) was lost: ${reason}. Stop the guarded work; acquire again to continue.`, options);
  }
}

/** A fenced write carried a token lower than one that already wrote. */
export class StaleTokenError extends FencepostError {
  override name = "StaleTokenError";
  constructor(
    readonly key: string,
    readonly fencingToken: number,
    readonly currentToken: number,
    options?: ErrorOptions,
  ) {
    super(
      `Write to '${key}' with fencing token ${fencingToken} rejected: token ${currentToken} already wrote. ` +
        `A newer lock holder exists; this holder must stop.`,
      options,
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
  constructor(readonly itemKey: string, options?: ErrorOptions) {
    super(`Item '${itemKey}' exists and was not written by a FencedStore; refusing to overwrite it. Give the FencedStore a keyPrefix no other item of this table uses.`, options);
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
    options?: ErrorOptions,
  ) {
    super(`Lock '${lockName}' already has ${waiters} waiters queued, the most its item allows; not waiting. Back off and retry later, or raise the client's maxWaiters (up to 1000).`, options);
  }
}

/** A release (or other owner-only operation) by a client that does not hold the lock. */
export class NotLockOwnerError extends FencepostError {
  override name = "NotLockOwnerError";
  constructor(
    readonly lockName: string,
    readonly ownerId: string,
    readonly holder: string | undefined,
    options?: ErrorOptions,
  ) {
    super(
      `'${ownerId}' cannot release lock '${lockName}': ` +
        (holder ? `it is held by '${holder}'` : "it is not held by this owner with that token") +
        `. Only the holder named by its fencing token may release it.`,
      options,
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
    options?: ErrorOptions,
  ) {
    super(`'${value}' in '${namespace}' is already claimed${owner ? ` by '${owner}'` : ""}: choose another value, or release the claim first.`, options);
  }
}

/** Input that can never succeed (empty name, negative lease, ...). Names the field. */
export class InvalidArgumentError extends FencepostError {
  override name = "InvalidArgumentError";
  constructor(
    readonly field: string,
    problem: string,
    options?: ErrorOptions,
  ) {
    super(`Invalid ${field}: ${problem}`, options);
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
    options?: ErrorOptions,
  ) {
    super(namespace, value, owner, options);
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
    options?: ErrorOptions,
  ) {
    super(
      `Increment '${requestId}' of counter '${counterName}' was first issued ${Math.round(ageMs / 1000)} s ago, past its ` +
        `${Math.round(retryWindowMs / 1000)} s retry window: whether it was applied can no longer be proven, so it was not applied again. ` +
        `Read the counter and reconcile; a new increment needs a new request id.`,
      options,
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
    options?: ErrorOptions,
  ) {
    super(
      `The increment '${requestId}' of counter '${counterName}' was not applied: its ${attempts} attempts in ${Math.round(elapsedMs)} ms were all refused ` +
        `(other increments of this counter, transaction conflicts or throttling). Back off and call incrementAndGet again` +
        (retryBefore === undefined
          ? `, as a new increment (without this requestId: its retry window has closed).`
          : ` (with { requestId: '${requestId}' } before ${new Date(retryBefore).toISOString()}, or as a new increment); if this persists, spread increments over several counter names.`),
      options,
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
        `Call claim again with { incarnation: '${claim.incarnation}' } to learn or complete it, or release this claim to give it up.`,
      options,
    );
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
    options?: ErrorOptions,
  ) {
    super(`The claim '${incarnation}' of '${value}' in '${namespace}' was already made and released; it was not made again. Claim with a new incarnation to claim the value anew.`, options);
  }
}

/** Where a published message went (Broadcast.publish's result). */
export interface PublishResult {
  /** The message's place in the stream. */
  readonly seq: number;
  /** True if an earlier publish with the same dedupId already placed it. */
  readonly duplicate: boolean;
  /** Numbers this publish took and lost to hole filling before it succeeded. */
  readonly lostSlots: readonly number[];
  /** Whether the queue accepted the notification (false: consumers will find it in the log). */
  queued: boolean;
}

/** A payload larger than a message can carry (MAX_PAYLOAD_BYTES); nothing was written. */
export class PayloadTooLargeError extends InvalidArgumentError {
  override name = "PayloadTooLargeError";
  constructor(
    readonly bytes: number,
    readonly maxBytes: number,
    options?: ErrorOptions,
  ) {
    super("payload", `is ${bytes} bytes as JSON; at most ${maxBytes} fit a message. Store large data elsewhere and publish a reference.`, options);
  }
}

/**
 * A batch was published only in part: `published[i]` is the result of message i if it is
 * durable, undefined if it was not published (or, when `cause` is an unknown-outcome
 * error, may still land: only a dedupId makes publishing it again safe).
 */
export class PublishIncompleteError extends FencepostError {
  override name = "PublishIncompleteError";
  /** True when the messages not listed as durable may still be in the log (their outcome is unknown), false when they were not published. */
  readonly outcomeUnknown: boolean;
  constructor(
    readonly stream: string,
    readonly published: readonly (PublishResult | undefined)[],
    options?: ErrorOptions,
  ) {
    const done = published.flatMap((r, i) => (r ? [`${i}→${r.seq}`] : []));
    const unknown = options?.cause instanceof PublishOutcomeUnknownError;
    super(
      `Publishing to '${stream}' stopped part-way: ${done.length} of ${published.length} messages are durable (${done.join(", ")}); ` +
        (unknown ? "whether the others were published could not be learned (they may still appear in the log)" : "the others were not published") +
        `${options?.cause instanceof Error ? ` (${options.cause.name}: ${options.cause.message})` : ""}. Publish the others again, with dedupIds so that a retry cannot duplicate them.`,
      options,
    );
    this.outcomeUnknown = unknown;
  }
}

/**
 * A publish whose outcome could not be learned: its transaction got no definite answer and
 * its slot could not be read or filled to settle it (DynamoDB unreachable or throttling
 * throughout). Its messages may be in the log, or may never be. Publishing again is safe
 * only with the same dedupIds (listed here); without one, a retry may publish it twice.
 */
export class PublishOutcomeUnknownError extends FencepostError {
  override name = "PublishOutcomeUnknownError";
  constructor(
    readonly stream: string,
    /** The dedupIds of the messages whose outcome is unknown (empty if they had none). */
    readonly dedupIds: readonly string[],
    options?: ErrorOptions,
  ) {
    super(
      `Publishing to '${stream}' got no definite answer${options?.cause instanceof Error ? ` (${options.cause.name}: ${options.cause.message})` : ""}: the message may or may not be in the log. ` +
        (dedupIds.length > 0 ? `Publish it again with the same dedupId (${dedupIds.join(", ")}): it is placed at most once.` : "Only a dedupId makes publishing it again safe; without one, read the stream before deciding."),
      options,
    );
  }
}

/**
 * Every attempt was cancelled by another publish of the same dedupId in progress (a twin):
 * nothing was published by this call, and the twin's outcome was not known yet.
 */
export class PublishConflictError extends FencepostError {
  override name = "PublishConflictError";
  constructor(
    readonly stream: string,
    readonly dedupIds: readonly string[],
    options?: ErrorOptions,
  ) {
    super(
      `Publishing to '${stream}' was cancelled on every attempt by a concurrent publish of the same dedupId (${dedupIds.join(", ")}); this call published nothing. Publish again with the same dedupIds: the message is published once, by whichever publish wins.`,
      options,
    );
  }
}

/** The producer lost its slots to hole filling on every attempt. */
export class SlotLostError extends FencepostError {
  override name = "SlotLostError";
  constructor(
    readonly stream: string,
    readonly lostSlots: readonly number[],
    options?: ErrorOptions,
  ) {
    super(
      `Publishing to '${stream}' lost its slots (${lostSlots.join(", ")}) to hole filling (or to its own fill after an unknown outcome or a conflicting transaction) on every attempt: this producer is slower than the consumers' hole timeout, or DynamoDB keeps failing. These messages were not published; raise holeTimeoutMs or find the stall.`,
      options,
    );
  }
}

/**
 * A participant was told something the protocol forbids: commit without a yes vote on
 * record, or abort after it committed. Nothing was changed at the participant. It means
 * two coordinators disagree about a decision, which the decision log rules out; report it.
 */
export class ProtocolViolationError extends FencepostError {
  override name = "ProtocolViolationError";
  constructor(
    readonly txId: string,
    readonly participant: string,
    problem: string,
    options?: ErrorOptions,
  ) {
    super(`Transaction '${txId}' at participant '${participant}': ${problem}. Nothing was changed here; this breaks the protocol's rules, so report it with the transaction record (fencepost tx show ${txId}).`, options);
  }
}

/** A decision was requested that contradicts the one already logged (decisions are final). */
export class DecisionConflictError extends FencepostError {
  override name = "DecisionConflictError";
  constructor(
    readonly txId: string,
    readonly logged: "committed" | "aborted",
    readonly requested: string,
    options?: ErrorOptions,
  ) {
    super(`Transaction '${txId}' is already ${logged}; it cannot be ${requested}. A logged decision is final: participants may already have applied it.`, options);
  }
}

/**
 * A step's request got no definite answer (a timeout, a dropped connection, throttling or
 * a server error after retries): it may or may not have applied, so this call cannot tell
 * the outcome. Every path of `run` reports an unknown outcome with this one error: run
 * again with the same id, which is idempotent.
 */
export class TransactionTimeoutError extends FencepostError {
  override name = "TransactionTimeoutError";
  constructor(
    readonly txId: string,
    readonly step: "begin" | "decide" | "complete" | "fast path",
    readonly timeoutMs: number,
    options?: ErrorOptions,
  ) {
    super(
      `Transaction '${txId}': the '${step}' request got no definite answer (within ${timeoutMs} ms${options?.cause instanceof Error ? `: ${options.cause.name}: ${options.cause.message}` : ""}), so this call cannot tell the outcome. Run it again with the same id (run is idempotent), or look with 'fencepost tx show ${txId}'; recovery finishes it either way.`,
      options,
    );
  }
}

/** Recovery met a participant id it cannot build a client for. */
export class UnknownParticipantError extends FencepostError {
  override name = "UnknownParticipantError";
  constructor(
    readonly participant: string,
    readonly txId: string,
    options?: ErrorOptions,
  ) {
    super(
      `Transaction '${txId}' names participant '${participant}', which this process does not know. Pass it in the coordinator's 'participants' option (built-in 'dynamodb:', 'outbox:' and 'lambda:' participants are known everywhere), or run recovery where it is registered.`,
      options,
    );
  }
}

/** Thrown inside the coordinator by a test's crash hook: the coordinator process "died" here. */
export class CoordinatorCrashedError extends FencepostError {
  override name = "CoordinatorCrashedError";
  constructor(
    readonly txId: string,
    readonly point: string,
    options?: ErrorOptions,
  ) {
    super(`Coordinator of '${txId}' crashed (injected) at ${point}: recovery finishes the transaction.`, options);
  }
}

/** A transaction was to be marked complete before any decision was logged: a coordinator bug; report it. */
export class UndecidedTransactionError extends FencepostError {
  override name = "UndecidedTransactionError";
  constructor(
    readonly txId: string,
    options?: ErrorOptions,
  ) {
    super(`Transaction '${txId}' has no decision logged, so it cannot be marked complete. This is a coordinator bug: report it with the record (fencepost tx show ${txId}).`, options);
  }
}

/**
 * @internal A call to a participant still running when phase two's time ran out: the
 * participant is left to recovery. Never leaves the coordinator.
 */
export class ParticipantCallHungError extends FencepostError {
  override name = "ParticipantCallHungError";
}

/** The local cloud could not start, or a local resource is missing or misconfigured (fencepost/local). */
export class LocalCloudError extends FencepostError {
  override name = "LocalCloudError";
}

/** A synthesized CloudFormation template the local cloud cannot serve (fencepost/local). */
export class TemplateError extends FencepostError {
  override name = "TemplateError";
}

/**
 * A change to a coordination namespace was not applied: for its whole time budget, other
 * changes took every revision first, or DynamoDB throttled. Nothing was written by this
 * call (no attempt went unanswered). Back off and try again; if it persists, spread the
 * load over several namespaces (one namespace takes about 1,000 changes/s).
 */
export class CoordinationBusyError extends FencepostError {
  override name = "CoordinationBusyError";
  constructor(
    readonly namespace: string,
    readonly attempts: number,
    options?: ErrorOptions,
  ) {
    super(`Namespace '${namespace}' was too busy to take this change (${attempts} attempts lost to other changes or throttling); nothing was applied. Back off and try again, or spread the load over several namespaces.`, options);
  }
}

/** A conditional write of a coordination key found another revision than the one it was conditioned on; nothing was written. */
export class RevisionMismatchError extends FencepostError {
  override name = "RevisionMismatchError";
  constructor(
    readonly key: string,
    readonly expectedRevision: number,
    readonly currentRevision: number | undefined,
    options?: ErrorOptions,
  ) {
    super(
      `'${key}' is ${currentRevision === undefined ? "absent" : `at revision ${currentRevision}`}, not ${expectedRevision === 0 ? "absent" : `at revision ${expectedRevision}`} as the write required; nothing was written. Read it again and decide.`,
      options,
    );
  }
}

/** A watch asked to resume from a revision whose changes are no longer kept (past the retention of the change log). */
export class CompactedError extends FencepostError {
  override name = "CompactedError";
  constructor(
    readonly namespace: string,
    readonly fromRevision: number,
    readonly oldestRetained: number | undefined,
    options?: ErrorOptions,
  ) {
    super(
      `Namespace '${namespace}' no longer keeps the changes after revision ${fromRevision}` +
        (oldestRetained !== undefined ? ` (the oldest kept is ${oldestRetained})` : "") +
        `: read the current state with list(), then watch from its revision.`,
      options,
    );
  }
}

/**
 * The session is no longer live: it was closed, or an observer declared it expired after
 * seeing no keepalive for its ttl. Its ephemeral keys are (being) deleted; it can never
 * write again. Open a new session (and, in a group, join again: as a new member).
 */
export class SessionExpiredError extends FencepostError {
  override name = "SessionExpiredError";
  constructor(
    readonly sessionId: string,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`Session '${sessionId}' is no longer live: ${reason}. Open a new session to continue.`, options);
  }
}

/** A function's error that is not one of Fencepost's own (a bug, a runtime failure, a timeout). */
export class RemoteFunctionError extends FencepostError {
  override name = "RemoteFunctionError";
  constructor(
    readonly errorType: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`The Fencepost function failed with ${errorType}: ${message}`, options);
  }
}

/** Every error class that crosses the Lambda boundary as itself, by its `name`. */
export const ERROR_CLASSES: Readonly<Record<string, new (...args: never[]) => FencepostError>> = Object.freeze({
  FencepostError,
  LockTimeoutError,
  LockLostError,
  StaleTokenError,
  OutcomeUnknownError,
  KeyInUseError,
  LockQueueFullError,
  NotLockOwnerError,
  ClaimTakenError,
  InvalidArgumentError,
  ReleaseIncompleteError,
  ClaimHeldByOtherIncarnationError,
  RetryWindowExceededError,
  IncrementOutcomeUnknownError,
  CounterContentionError,
  ClaimOutcomeUnknownError,
  ClaimAlreadyReleasedError,
  PayloadTooLargeError,
  PublishIncompleteError,
  PublishConflictError,
  PublishOutcomeUnknownError,
  SlotLostError,
  ProtocolViolationError,
  DecisionConflictError,
  TransactionTimeoutError,
  UnknownParticipantError,
  CoordinatorCrashedError,
  UndecidedTransactionError,
  CoordinationBusyError,
  RevisionMismatchError,
  CompactedError,
  SessionExpiredError,
  RemoteFunctionError,
});

/** An error as a Lambda function reports it. */
export interface WireError {
  readonly errorType: string;
  readonly errorMessage: string;
}

/** Fields a wire message's details may never set on a rebuilt error. */
const RESERVED_FIELDS = new Set(["__proto__", "constructor", "prototype", "name", "message", "stack", "cause", "toString", "toJSON", "valueOf"]);

/** Starts the last line of a wire message: the error's own fields, as JSON. */
const DETAILS_LINE = "\nDetails: ";

/** An error's details: its own enumerable fields that JSON can carry (not name, message, stack or cause). */
function detailsOf(err: Error): Record<string, unknown> {
  const details: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(err)) {
    if (key === "name" || value === undefined || typeof value === "function") continue;
    details[key] = value;
  }
  return details;
}

/** What a function reports for `err`: its class name, and its message followed by its details. */
export function toWire(err: Error): WireError {
  const details = detailsOf(err);
  const json = Object.keys(details).length > 0 ? JSON.stringify(details) : undefined;
  return { errorType: err.name, errorMessage: json === undefined ? err.message : `${err.message}${DETAILS_LINE}${json}` };
}

/**
 * What a Lambda handler throws so that `err` reaches the caller as `toWire` describes:
 * an Error named after err's class whose message carries its details (the Lambda runtime
 * reports only a thrown error's name and message). `cause` keeps the original.
 */
export function wireError(err: FencepostError): Error {
  const wire = toWire(err);
  const onWire = new Error(wire.errorMessage, { cause: err });
  onWire.name = wire.errorType;
  if (err.stack !== undefined) onWire.stack = err.stack;
  return onWire;
}

/**
 * The error a function reported, rebuilt: the same class (so `instanceof` works), message
 * and fields. Types outside ERROR_CLASSES (a runtime failure, say) become RemoteFunctionError.
 */
export function fromWire(wire: WireError, where = "the Fencepost function"): Error {
  const errorType = String(wire.errorType);
  let message = typeof wire.errorMessage === "string" ? wire.errorMessage : JSON.stringify(wire.errorMessage) ?? "";
  let details: Record<string, unknown> = {};
  const at = message.lastIndexOf(DETAILS_LINE);
  if (at >= 0) {
    try {
      const parsed = JSON.parse(message.slice(at + DETAILS_LINE.length)) as unknown;
      if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) {
        details = parsed as Record<string, unknown>;
        message = message.slice(0, at);
      }
    } catch {
      details = {}; // not a details line after all: the message is the whole text
    }
  }
  const cls = Object.hasOwn(ERROR_CLASSES, errorType) ? ERROR_CLASSES[errorType] : undefined;
  if (!cls) return new RemoteFunctionError(errorType, message);
  const err = Object.create(cls.prototype as object) as FencepostError;
  // Only plain data fields: nothing that could replace the prototype, methods or the standard properties.
  for (const [key, value] of Object.entries(details)) {
    if (RESERVED_FIELDS.has(key) || typeof value === "function") continue;
    Object.defineProperty(err, key, { value, enumerable: true, writable: true, configurable: true });
  }
  for (const [key, value] of Object.entries({ name: errorType, message, stack: `${errorType}: ${message}\n    at <${where}>` })) {
    Object.defineProperty(err, key, { value, enumerable: key === "name", writable: true, configurable: true });
  }
  return err;
}
