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
 */
import { InvalidArgumentError } from "../locks/errors.js";
import type { Coordinator } from "./coordinator.js";
import { DecisionConflictError } from "./errors.js";
import type { TransactionRecord } from "./log.js";

export interface RecoverOptions {
  /** Only transactions whose deadline passed at least this long ago. Default 0. */
  readonly graceMs?: number;
  /** Stop after this many transactions. Default: all. */
  readonly limit?: number;
  /** Only transaction ids starting with this. */
  readonly prefix?: string;
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
}

export async function recover(coordinator: Coordinator, options: RecoverOptions = {}): Promise<RecoveryReport> {
  const query = { staleAt: Date.now() - (options.graceMs ?? 0), ...(options.prefix ? { prefix: options.prefix } : {}) };
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  const transactions: RecoveredTransaction[] = [];
  // One pass over the index, page by page (a page may be empty when a prefix filters it).
  let startAfter: { deadline: number; txId: string } | undefined;
  do {
    const page = await coordinator.log.listInDoubt({ ...query, limit: 100, ...(startAfter ? { startAfter } : {}) });
    for (const record of page.records) {
      if (transactions.length >= limit) break;
      const done = await recoverOne(coordinator, record);
      transactions.push(done);
      options.onProgress?.(transactions.length, record.txId, done.action);
    }
    startAfter = page.next;
  } while (startAfter && transactions.length < limit);
  const count = (test: (t: RecoveredTransaction) => boolean) => transactions.filter(test).length;
  return {
    examined: transactions.length,
    aborted: count((t) => t.action === "aborted"),
    redriven: count((t) => t.action === "redriven"),
    completed: count((t) => t.pending.length === 0),
    stillInDoubt: count((t) => t.pending.length > 0),
    transactions,
  };
}

async function recoverOne(coordinator: Coordinator, record: TransactionRecord): Promise<RecoveredTransaction> {
  const undecided = record.status === "preparing";
  const decision = undecided ? await coordinator.log.decide(record.txId, "aborted", "recovery: no decision was logged before the deadline (presumed abort)") : record.status;
  const action = undecided && decision === "aborted" ? "aborted" : "redriven";
  try {
    const { pending } = await coordinator.drive(record, decision);
    return { txId: record.txId, action, decision, pending };
  } catch (err) {
    return { txId: record.txId, action, decision, pending: record.branches.map((b) => b.participant), error: (err as Error).message };
  }
}

export interface OverrideRequest {
  /** `abort`: decide abort now (refused if committed) and drive it. `forget`: mark a decided transaction done. */
  readonly action: "abort" | "forget";
  /** Who: recorded in the audit trail. */
  readonly operator: string;
  /** Why: recorded in the audit trail. */
  readonly reason: string;
}

export async function override(coordinator: Coordinator, txId: string, request: OverrideRequest): Promise<TransactionRecord> {
  if (request.action !== "abort" && request.action !== "forget") throw new InvalidArgumentError("action", "must be abort or forget");
  if (!request.operator?.trim()) throw new InvalidArgumentError("operator", "must name who is acting (it goes in the audit trail)");
  if (!request.reason?.trim()) throw new InvalidArgumentError("reason", "must say why (it goes in the audit trail)");
  const entry = { at: Date.now(), operator: request.operator, action: request.action, reason: request.reason };
  if (request.action === "abort") {
    const decision = await coordinator.log.decide(txId, "aborted", `operator ${request.operator}: ${request.reason}`);
    if (decision === "committed") throw new DecisionConflictError(txId, "committed", "aborted");
    await coordinator.log.audit(txId, entry); // recorded even if someone else aborted it first
    const record = (await coordinator.log.get(txId))!;
    if (!record.done) await coordinator.drive(record, "aborted");
  } else {
    const record = await coordinator.log.get(txId);
    if (!record) throw new InvalidArgumentError("txId", `no transaction '${txId}' is recorded`);
    if (record.status === "preparing") throw new InvalidArgumentError("action", `'${txId}' has no decision yet: abort it first (override action abort)`);
    await coordinator.log.complete(txId, entry);
  }
  return (await coordinator.log.get(txId))!;
}
