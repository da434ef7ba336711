/**
 * A transaction's branches as the decision log records them: checked, turned into
 * `BranchRecord`s (participant id and JSON input), and compared when an id is run again.
 *
 * Guarantees: a transaction that passes `recordBranches` names each participant once,
 * gives DynamoDB participants writes that survive the log's JSON, and fits the decision
 * log's item; `sameTransaction` refuses a second run of an id that asks for other work.
 * Assumes: inputs are plain JSON (phase two and recovery apply them from the log).
 */
import { validateName } from "../internal/validation.js";
import { InvalidArgumentError } from "../errors.js";
import type { BranchRecord, TransactionRecord } from "./log.js";
import type { Branch } from "./participant.js";

/** Largest logged branch list, as JSON (the record must fit a DynamoDB item). */
export const MAX_BRANCHES_BYTES = 300 * 1024;

/** Checks transaction `txId` over `branches` and returns the branches as the log records them. */
export function recordBranches(txId: string, branches: readonly Branch[]): BranchRecord[] {
  validateName("txId", txId);
  if (!Array.isArray(branches) || branches.length === 0) throw new InvalidArgumentError("branches", "must list at least one participant");
  const ids = new Set<string>();
  const records = branches.map((b, i) => {
    if (!b?.participant?.id) throw new InvalidArgumentError(`branches[${i}].participant`, "must be a Participant (with an id)");
    if (ids.has(b.participant.id)) throw new InvalidArgumentError(`branches[${i}].participant`, `'${b.participant.id}' appears twice; give it all its work in one branch`);
    ids.add(b.participant.id);
    b.participant.validateInput?.(b.input, `branches[${i}].input`);
    return { participant: b.participant.id, input: b.input ?? null };
  });
  const bytes = Buffer.byteLength(JSON.stringify(records), "utf8");
  if (bytes > MAX_BRANCHES_BYTES) throw new InvalidArgumentError("branches", `are ${bytes} bytes as JSON; at most ${MAX_BRANCHES_BYTES} fit the decision log. Pass references to large data.`);
  return records;
}

/** A transaction id names one transaction: a second run of it must ask for the same work. */
export function sameTransaction(record: TransactionRecord, branches: readonly BranchRecord[]): void {
  if (JSON.stringify(record.branches) !== JSON.stringify(branches)) {
    throw new InvalidArgumentError("txId", `'${record.txId}' was already used for a different transaction; transaction ids must be unique`);
  }
}
