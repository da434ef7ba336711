/**
 * Recovery: no transaction stays in doubt for good, whatever step its coordinator died at.
 *
 * `recover` walks the in-doubt index (unfinished transactions past their deadline, oldest
 * first). An undecided one is aborted (presumed abort: nobody can have committed without
 * the logged decision); a decided one has its decision driven to every participant
 * again (phase two is idempotent), and is marked done once all acknowledge. Running it
 * concurrently with a live coordinator, another recovery or itself is safe: the decision
 * is one conditional write, and everything after it is idempotent.
 *
 * `override` is the operator's hand: abort an undecided transaction now, or forget one
 * whose participant is gone for good (mark it done without that acknowledgement). Both
 * append an audit entry (who, why, when) to the record. There is deliberately no way to
 * force a commit: only a full set of yes votes may commit.
 *
 * Guarantees: after `recover`, no transaction it examined is undecided, and a decided one
 * is done or reported with the participants still pending.
 * Assumes: the phase two it is given can resolve every logged participant id (its
 * registry knows the custom participants; built-in ones are made from their ids).
 */
import { DecisionConflictError, InvalidArgumentError } from "../errors.js";
import { validateNonNegativeMs, validatePositiveMs } from "../internal/validation.js";
import type { DecisionLog, TransactionRecord } from "./log.js";
import type { PhaseTwo } from "./phase-two.js";

export interface RecoverOptions {
  /** Only transactions whose deadline passed at least this long ago. Default 0. */
  readonly graceMs?: number;
  /** Stop after this many transactions. Default: all. */
  readonly limit?: number;
  /** Only transaction ids starting with this. */
  readonly prefix?: string;
  /**
   * Stop starting transactions after this long (ms) and report `truncated`: a scheduled run
   * must end before the next one starts. Default: no budget.
   */
  readonly budgetMs?: number;
  /** Called after each transaction. */
  readonly onProgress?: (done: number, txId: string, outcome: RecoveredTransaction["action"]) => void;
}

export interface RecoveredTransaction {
  readonly txId: string;
  /** `aborted`: recovery made the decision; `redriven`: the logged decision was carried out again. */
  readonly action: "aborted" | "redriven";
  readonly decision: "committed" | "aborted";
  /** Participants that still did not acknowledge (the transaction stays in doubt). */
  readonly pending: readonly string[];
  /** Why a participant could not be reached, if it could not. */
  readonly error?: string;
}

export interface RecoveryReport {
  readonly examined: number;
  readonly aborted: number;
  readonly redriven: number;
  readonly completed: number;
  readonly stillInDoubt: number;
  readonly transactions: readonly RecoveredTransaction[];
  /** True when the run stopped at its budget with transactions left to look at (the next run goes on). */
  readonly truncated: boolean;
}

export interface OverrideRequest {
  /** `abort`: decide abort now (refused if committed) and drive it. `forget`: mark a decided transaction done. */
  readonly action: "abort" | "forget";
  /** Who: recorded in the audit trail. */
  readonly operator: string;
  /** Why: recorded in the audit trail. */
  readonly reason: string;
}

/** Finishes transactions whose coordinator is gone, and carries out operators' overrides (see the module comment). */
export class Recovery {
  readonly #log: DecisionLog;
  readonly #phaseTwo: PhaseTwo;

  /**
   * @param parts.log the decision log: where stuck transactions are found and decided.
   * @param parts.phaseTwo drives decisions to the participants (and resolves them by id).
   */
  constructor(parts: { readonly log: DecisionLog; readonly phaseTwo: PhaseTwo }) {
    this.#log = parts.log;
    this.#phaseTwo = parts.phaseTwo;
  }

  /** Finishes every transaction stuck past its deadline: aborts the undecided, re-drives the decided. */
  async recover(options: RecoverOptions = {}): Promise<RecoveryReport> {
    const query = { staleAt: Date.now() - (options.graceMs ?? 0), ...(options.prefix ? { prefix: options.prefix } : {}) };
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    validatePositiveMs("budgetMs", options.budgetMs);
    validateNonNegativeMs("graceMs", options.graceMs);
    const stopAt = performance.now() + (options.budgetMs ?? Number.POSITIVE_INFINITY);
    let truncated = false;
    const transactions: RecoveredTransaction[] = [];
    // One pass over the index, page by page (a page may be empty when a prefix filters it).
    let startAfter: { deadline: number; txId: string } | undefined;
    do {
      const page = await this.#log.listInDoubt({ ...query, limit: 100, ...(startAfter ? { startAfter } : {}) });
      for (const record of page.records) {
        if (transactions.length >= limit) break;
        if (performance.now() >= stopAt) {
          truncated = true;
          break;
        }
        const done = await this.#recoverOne(record);
        transactions.push(done);
        options.onProgress?.(transactions.length, record.txId, done.action);
      }
      startAfter = page.next;
    } while (startAfter && transactions.length < limit && !truncated);
    const count = (test: (t: RecoveredTransaction) => boolean) => transactions.filter(test).length;
    return {
      examined: transactions.length,
      aborted: count((t) => t.action === "aborted"),
      redriven: count((t) => t.action === "redriven"),
      completed: count((t) => t.pending.length === 0),
      stillInDoubt: count((t) => t.pending.length > 0),
      transactions,
      truncated,
    };
  }

  async #recoverOne(record: TransactionRecord): Promise<RecoveredTransaction> {
    const undecided = record.status === "preparing";
    const decision = undecided ? await this.#log.decide(record.txId, "aborted", "recovery: no decision was logged before the deadline (presumed abort)") : record.status;
    const action = undecided && decision === "aborted" ? "aborted" : "redriven";
    try {
      const { pending } = await this.#phaseTwo.drive(record, decision);
      return { txId: record.txId, action, decision, pending };
    } catch (err) {
      return { txId: record.txId, action, decision, pending: record.branches.map((b) => b.participant), error: (err as Error).message };
    }
  }

  /** An operator's abort or forget of transaction `txId`, with an audit entry; returns the record afterwards. */
  async override(txId: string, request: OverrideRequest): Promise<TransactionRecord> {
    if (request.action !== "abort" && request.action !== "forget") throw new InvalidArgumentError("action", "must be abort or forget");
    if (!request.operator?.trim()) throw new InvalidArgumentError("operator", "must name who is acting (it goes in the audit trail)");
    if (!request.reason?.trim()) throw new InvalidArgumentError("reason", "must say why (it goes in the audit trail)");
    const entry = { at: Date.now(), operator: request.operator, action: request.action, reason: request.reason };
    if (request.action === "abort") {
      // An operator's abort names a transaction that exists (a typo must not write a record).
      if (!(await this.#log.get(txId))) throw new InvalidArgumentError("txId", `no transaction '${txId}' is recorded: there is nothing to abort (check the id with 'fencepost tx list --all')`);
      const decision = await this.#log.decide(txId, "aborted", `operator ${request.operator}: ${request.reason}`);
      if (decision === "committed") throw new DecisionConflictError(txId, "committed", "aborted");
      await this.#log.audit(txId, entry); // recorded even if someone else aborted it first
      const record = (await this.#log.get(txId))!;
      if (!record.done) await this.#phaseTwo.drive(record, "aborted");
    } else {
      const record = await this.#log.get(txId);
      if (!record) throw new InvalidArgumentError("txId", `no transaction '${txId}' is recorded`);
      if (record.status === "preparing") throw new InvalidArgumentError("action", `'${txId}' has no decision yet: abort it first (override action abort)`);
      await this.#log.complete(txId, entry);
    }
    return (await this.#log.get(txId))!;
  }
}
