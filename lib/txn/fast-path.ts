/**
 * The fast path: when every branch is a DynamoDbParticipant in the coordinator's database,
 * one TransactWriteItems applies all writes and records the decision, decided and done at
 * once; no locks, no phase two.
 *
 * Guarantees: the writes apply together or not at all, each under its own condition and
 * only on items no protocol transaction holds; the decision record's `attribute_not_exists`
 * condition makes the request apply at most once per transaction id, however often it is
 * sent (SDK retries, a second run, a late delivery), and a client request token lets a
 * retry learn that it applied. An abort is recorded too, so the id keeps its outcome. A
 * run that meets an earlier run of its id reports that run's logged outcome (joining it on
 * the protocol path while it is still preparing). Outcomes it cannot know are
 * TransactionTimeoutError (step `fast path`).
 * Assumes: the participants' tables and the transaction table are in one account and
 * region (database.ts decides it from the clients' configuration); the writes fit one
 * request (at most 99 besides the decision record); the branches passed recordBranches.
 */
import { InvalidArgumentError } from "../errors.js";
import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  IdempotentParameterMismatchException,
  PutItemCommand,
  TransactionCanceledException,
  TransactWriteItemsCommand,
} from "@aws-sdk/client-dynamodb";
import { sha256Hex } from "../internal/ids.js";
import { jitter, sleep } from "../internal/time.js";
import { sameTransaction } from "./branches.js";
import { sameDatabase } from "./database.js";
import { DynamoDbParticipant, type DynamoWrite } from "./dynamodb.js";
import type { BranchRecord, DecisionLog, TransactionRecord } from "./log.js";
import type { Branch } from "./participant.js";
import type { TransactionResult } from "./result.js";
import { runStep } from "./unknown-outcome.js";

export interface FastPathOptions {
  /** The decision log, whose record goes into the same TransactWriteItems. */
  readonly log: DecisionLog;
  /** The coordinator's client: the request goes through it, and the participants must reach the same database. */
  readonly dynamodb: DynamoDBClient;
}

/**
 * Carries on an earlier run of the same id that the fast path found unfinished: joins it
 * on the protocol path while it is preparing, or finishes its phase two once decided.
 */
export type ResumeEarlierRun = (record: TransactionRecord) => Promise<TransactionResult>;

/** Runs a transaction over DynamoDB participants as one TransactWriteItems. */
export class FastPath {
  readonly #log: DecisionLog;
  readonly #dynamodb: DynamoDBClient;

  constructor(options: FastPathOptions) {
    this.#log = options.log;
    this.#dynamodb = options.dynamodb;
  }

  /** Whether these branches can take the fast path: all DynamoDB participants, in this database, in one request. */
  async applies(branches: readonly Branch[], records: readonly BranchRecord[]): Promise<boolean> {
    if (!branches.every((b) => b.participant instanceof DynamoDbParticipant)) return false;
    if (records.reduce((sum, r) => sum + (r.input as unknown[]).length, 0) >= 100) return false;
    return sameDatabase(this.#dynamodb, branches.map((b) => (b.participant as DynamoDbParticipant).dynamodb));
  }

  /** Runs transaction `txId` (see the module comment); `resume` takes over when an unfinished earlier run of the id is found. */
  async run(txId: string, branches: readonly Branch<DynamoWrite[]>[], records: readonly BranchRecord[], resume: ResumeEarlierRun): Promise<TransactionResult> {
    const writes = branches.flatMap((b) => b.input.map((w) => (b.participant as DynamoDbParticipant).directWrite(w)));
    const base = { txId, path: "fast" as const, acknowledged: true, pending: [] };
    /**
     * The outcome of an earlier run of this id, if it has one: decided (finished first if a
     * protocol run left phase two open), or a protocol run still preparing, which this run
     * then joins on the protocol path, so both report the one logged decision.
     */
    const existing = async (): Promise<TransactionResult | undefined> => {
      const record = await this.#log.get(txId);
      if (!record) return undefined;
      sameTransaction(record, records);
      if (record.status === "preparing" || !record.done) return resume(record);
      return { ...base, path: record.path, outcome: record.status, duplicate: true, ...(record.reason ? { reason: record.reason } : {}) };
    };
    return runStep(txId, "fast path", this.#log.requestTimeoutMs, async () => {
      const transactItems = [...writes, { Put: this.#log.fastPathPut(txId, records, "committed") }];
      let token: string | undefined = sha256Hex(txId).slice(0, 36);
      let reason = "the transaction was cancelled";
      for (let conflicts = 0; ; ) {
        try {
          await this.#dynamodb.send(new TransactWriteItemsCommand({ TransactItems: transactItems, ...(token ? { ClientRequestToken: token } : {}) }));
          return { ...base, outcome: "committed" as const, duplicate: false };
        } catch (err) {
          if (err instanceof IdempotentParameterMismatchException || (err as Error).name === "TransactionInProgressException") {
            // Another run of this id sent its own request under the same token.
            const found = await existing();
            if (found) return found;
            token = undefined; // without it, the record's condition still applies the writes at most once
            await sleep(50);
            continue;
          }
          if (!(err instanceof TransactionCanceledException)) {
            // DynamoDB refused the request itself (a missing table, a wrong key attribute, a
            // condition it cannot parse): nothing was applied, and the input is what to fix.
            if (err instanceof Error && (err.name === "ValidationException" || err.name === "ResourceNotFoundException")) {
              throw new InvalidArgumentError("branches", `DynamoDB refused the transaction's writes (${err.name}: ${err.message}); nothing was written`, { cause: err });
            }
            throw err;
          }
          const reasons = err.CancellationReasons ?? [];
          if (reasons[writes.length]?.Code === "ConditionalCheckFailed") {
            const found = await existing(); // this id ran before
            if (found) return found;
          }
          if (reasons.some((r) => r.Code === "TransactionConflict") && ++conflicts <= 3) {
            await sleep(jitter(10 * 2 ** conflicts));
            continue;
          }
          const failed = reasons.findIndex((r, i) => i < writes.length && r.Code && r.Code !== "None");
          if (failed >= 0) reason = `write ${failed} failed: ${reasons[failed]!.Code === "ConditionalCheckFailed" ? "its condition does not hold, or a transaction holds the item" : reasons[failed]!.Code}`;
          break;
        }
      }
      // Record the abort, so this id keeps its outcome (unless a concurrent run of it committed).
      try {
        await this.#dynamodb.send(new PutItemCommand(this.#log.fastPathPut(txId, records, "aborted", reason)));
      } catch (err) {
        if (!(err instanceof ConditionalCheckFailedException)) throw err;
        const found = await existing();
        if (found) return found;
      }
      return { ...base, outcome: "aborted" as const, reason, duplicate: false };
    });
  }
}
