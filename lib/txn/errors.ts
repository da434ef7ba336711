/**
 * Typed errors of two-phase commit. Each says what happened and what to do; callers
 * branch with `instanceof`. (Bad input is the shared InvalidArgumentError.)
 */
import { FencepostError } from "../locks/errors.js";
import { registerErrorClasses } from "../locks/remote.js";

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
  ) {
    super(`Transaction '${txId}' at participant '${participant}': ${problem}. Nothing was changed here; this breaks the protocol's rules, so report it with the transaction record (fencepost tx show ${txId}).`);
  }
}

/** A decision was requested that contradicts the one already logged (decisions are final). */
export class DecisionConflictError extends FencepostError {
  override name = "DecisionConflictError";
  constructor(
    readonly txId: string,
    readonly logged: "committed" | "aborted",
    readonly requested: string,
  ) {
    super(`Transaction '${txId}' is already ${logged}; it cannot be ${requested}. A logged decision is final: participants may already have applied it.`);
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
  ) {
    super(
      `Transaction '${txId}' names participant '${participant}', which this process does not know. Pass it in the coordinator's 'participants' option (built-in 'dynamodb:', 'outbox:' and 'lambda:' participants are known everywhere), or run recovery where it is registered.`,
    );
  }
}

/** Thrown inside the coordinator by a test's crash hook: the coordinator process "died" here. */
export class CoordinatorCrashedError extends FencepostError {
  override name = "CoordinatorCrashedError";
  constructor(
    readonly txId: string,
    readonly point: string,
  ) {
    super(`Coordinator of '${txId}' crashed (injected) at ${point}: recovery finishes the transaction.`);
  }
}

registerErrorClasses({ ProtocolViolationError, DecisionConflictError, UnknownParticipantError, TransactionTimeoutError });
