/**
 * Phase two: carry a logged decision to every participant, then mark the transaction
 * complete in the decision log.
 *
 * Guarantees: commit or abort is sent to every branch in parallel and retried until
 * acknowledged, for up to `timeoutMs` (a participant call that hangs past it counts as
 * unacknowledged; a ProtocolViolationError is not retried); the record is marked done
 * only when every branch acknowledged. Whatever is left unacknowledged is returned as
 * `pending`, for recovery to carry on: the decision is final either way.
 * Assumes: the decision is already logged (never drive a decision that is not: a crash
 * would leave participants ahead of the log); participants apply commit and abort
 * idempotently and out of order (participant.ts), so driving a decision again is safe.
 */
import { targetMissing } from "../internal/outcomes.js";
import { DEFAULT_PHASE_TWO_TIMEOUT_MS } from "./defaults.js";
import { crashIfAsked, type CrashSeam } from "./crash-points.js";
import { raceUntil } from "../internal/time.js";
import { ParticipantCallHungError, ProtocolViolationError } from "../errors.js";
import type { BranchRecord, Decision, DecisionLog, TransactionRecord } from "./log.js";
import type { TxContext } from "./participant.js";
import type { ParticipantRegistry } from "./registry.js";
import { retryUntilDone } from "./retry.js";
import { runStep } from "./unknown-outcome.js";

export interface PhaseTwoOptions {
  /** The decision log the decision is read from and the completion written to. */
  readonly log: DecisionLog;
  /** Where the participant ids of the logged branches are resolved. */
  readonly registry: ParticipantRegistry;
  /**
   * How long a decision is driven before the rest is left to recovery.
   * @default DEFAULT_PHASE_TWO_TIMEOUT_MS (30 s)
   */
  readonly timeoutMs?: number;
}

/** Test seams for the verification harness (lib/check); never set in production. */
export interface PhaseTwoHooks {
  /** Return true to stop dead at `phase2:<i>` (before message i) or `complete` (CoordinatorCrashedError). */
  readonly crashAt?: CrashSeam;
}

/** What driving a decision came to. */
export interface PhaseTwoOutcome {
  /** Every participant acknowledged, and the record is marked done. */
  readonly acknowledged: boolean;
  /** Participants that did not acknowledge in time. */
  readonly pending: string[];
}


/** Drives logged decisions to participants (a coordinator's step 4, and recovery's re-drive). */
export class PhaseTwo {
  readonly #log: DecisionLog;
  readonly #registry: ParticipantRegistry;
  readonly #timeoutMs: number;
  readonly #hooks: PhaseTwoHooks;

  constructor(options: PhaseTwoOptions, hooks: PhaseTwoHooks = {}) {
    this.#log = options.log;
    this.#registry = options.registry;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_PHASE_TWO_TIMEOUT_MS;
    this.#hooks = hooks;
  }

  /**
   * Drives the logged `decision` of `record` to every branch and marks the record done when
   * all acknowledge. Returns the participants that did not acknowledge in time.
   */
  async drive(record: TransactionRecord, decision: Decision): Promise<PhaseTwoOutcome> {
    const pending = await this.send({ txId: record.txId, deadline: record.deadline, decisions: this.#log }, record.branches, decision);
    if (pending.length > 0) return { acknowledged: false, pending };
    crashIfAsked(this.#hooks.crashAt, "complete", record.txId);
    await runStep(record.txId, "complete", this.#log.requestTimeoutMs, () => this.#log.complete(record.txId));
    return { acknowledged: true, pending: [] };
  }

  /**
   * Sends the decision to every branch, retrying each until it acknowledges or time runs
   * out, without marking the record done. Returns the ones that did not acknowledge.
   * (Only the negative control `unsafeCommitBeforeDecision` calls it before the decision is logged.)
   */
  async send(tx: TxContext, branches: readonly BranchRecord[], decision: Decision): Promise<string[]> {
    const until = Date.now() + this.#timeoutMs;
    const deliveries: Promise<string | undefined>[] = [];
    for (const [i, b] of branches.entries()) {
      crashIfAsked(this.#hooks.crashAt, `phase2:${i}`, tx.txId);
      deliveries.push(this.#deliver(tx, b, decision, until));
    }
    crashIfAsked(this.#hooks.crashAt, `phase2:${branches.length}`, tx.txId);
    return (await Promise.all(deliveries)).filter((id): id is string => id !== undefined);
  }

  /** One branch's delivery: undefined once acknowledged, else the participant's id. */
  async #deliver(tx: TxContext, b: BranchRecord, decision: Decision, until: number): Promise<string | undefined> {
    try {
      const participant = this.#registry.resolve(b.participant, tx.txId);
      await retryUntilDone(
        async () => {
          // An attempt that hangs past the phase's end counts as unacknowledged: recovery takes over.
          const attempt = decision === "committed" ? participant.commit(tx, b.input) : participant.abort(tx, b.input);
          attempt.catch(() => undefined);
          try {
            if ((await raceUntil(attempt, until)) === "timeout") throw new ParticipantCallHungError();
          } catch (err) {
            // Aborting at a participant whose table, queue or function does not exist: nothing
            // can be held there, so there is nothing to release. (A commit there stays pending.)
            if (decision === "aborted" && targetMissing(err)) return;
            throw err;
          }
        },
        // A protocol violation or a hang will not go away by asking again; anything else may.
        { until, retryIf: (err) => !(err instanceof ProtocolViolationError || err instanceof ParticipantCallHungError) },
      );
      return undefined;
    } catch {
      return b.participant;
    }
  }
}
