/**
 * Coordinator: two-phase commit with its state in the decision log (DDIA's atomic commit
 * made serverless: the coordinator is any process, its memory is a DynamoDB item).
 *
 * run(txId, branches):
 * 1. begin: the transaction record (status `preparing`, the branches, a deadline) is
 *    written before any participant hears of it, so recovery can always find it. A
 *    transaction id that was used before returns that transaction's outcome (run is
 *    idempotent by id), finishing it first if it is unfinished.
 * 2. prepare every branch in parallel, until the deadline; an error, a timeout or a no is
 *    a no vote.
 * 3. decide: one conditional write of `committed` (every vote yes) or `aborted`. If
 *    someone decided first (recovery after the deadline, an operator, a second run),
 *    their decision stands and is the one carried out.
 * 4. phase two: commit or abort is sent to every branch and retried until acknowledged,
 *    for up to `phaseTwoTimeoutMs`; then the record is marked done. Whatever is not
 *    acknowledged by then is left to recovery (the result says `acknowledged: false`):
 *    the decision is final either way.
 * Presumed abort: no record means aborted; a crash anywhere before step 3 ends in abort.
 * Timeouts: prepare has the deadline, phase two `phaseTwoTimeoutMs` (a hung participant
 * call counts as unacknowledged), and each decision-log request `requestTimeoutMs`
 * (TransactionTimeoutError: the outcome is unknown to the caller, who may run again).
 *
 * Fast path: if every branch is a DynamoDbParticipant on this coordinator's DynamoDB
 * client, one TransactWriteItems (idempotent by a client request token derived from the
 * id) applies all writes and records the decision; no locks, no phase two.
 *
 * Assumes: participants follow the protocol in participant.ts; clocks matter for
 * deadlines only (liveness), never for what is decided.
 */
import {
  DynamoDBClient,
  IdempotentParameterMismatchException,
  PutItemCommand,
  TransactionCanceledException,
  TransactWriteItemsCommand,
  ConditionalCheckFailedException,
} from "@aws-sdk/client-dynamodb";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { SQSClient } from "@aws-sdk/client-sqs";
import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { validateName } from "../locks/client.js";
import { FencepostError, InvalidArgumentError } from "../locks/errors.js";
import { DynamoDbParticipant, validateWrites, type DynamoWrite } from "./dynamodb.js";
import { CoordinatorCrashedError, ProtocolViolationError, TransactionTimeoutError, UnknownParticipantError } from "./errors.js";
import { sameDatabase } from "./database.js";
import { LambdaParticipant } from "./lambda-participant.js";
import { DecisionLog, type BranchRecord, type Decision, type InDoubtQuery, type TransactionRecord } from "./log.js";
import { outboxParticipant } from "./outbox.js";
import type { Branch, Participant, TxContext, Vote } from "./participant.js";
import { override, recover, type OverrideRequest, type RecoverOptions, type RecoveryReport } from "./recovery.js";
import { jitter, persistently } from "./retry.js";

/** Where a coordinator can be made to "die" in tests: before a step, or before message i of a phase. */
export type CrashPoint = "begin" | `prepare:${number}` | "decide" | `phase2:${number}` | "complete";

/** Every crash point of a transaction over `participants` branches, in protocol order. */
export function crashPoints(participants: number): CrashPoint[] {
  const each = (phase: "prepare" | "phase2") => Array.from({ length: participants + 1 }, (_, i) => `${phase}:${i}` as CrashPoint);
  return ["begin", ...each("prepare"), "decide", ...each("phase2"), "complete"];
}

export interface CoordinatorOptions {
  /** The transaction table (the Fencepost construct's `txnTable`). */
  readonly tableName: string;
  readonly dynamodb?: DynamoDBClient;
  /** Used by built-in outbox participants that recovery re-creates. */
  readonly sqs?: SQSClient;
  /** Used by built-in Lambda participants that recovery re-creates. */
  readonly lambda?: LambdaClient;
  /** Custom participants recovery must be able to reach (built-in ones are found by id). */
  readonly participants?: readonly Participant[];
  /** Prepare deadline, from the start of run. Default 10 000 ms. */
  readonly timeoutMs?: number;
  /** How long run drives phase two before leaving the rest to recovery. Default 30 000 ms. */
  readonly phaseTwoTimeoutMs?: number;
  /**
   * The fast path: one TransactWriteItems instead of the protocol. `"auto"` takes it when
   * every branch is a DynamoDbParticipant whose client reaches the same database as the
   * coordinator's (same region, endpoint and access key id; see database.ts) and the writes
   * fit one request (at most 99); `false` never takes it. Both paths give the same outcome.
   * @default "auto"
   */
  readonly fastPath?: "auto" | boolean;
  /** How long finished records are kept (and run stays idempotent by id). Default 7 days. */
  readonly retainMs?: number;
  /** Each request to the decision log (begin, decide, complete), retries included, gives up after this long. Default 5 000 ms. */
  readonly requestTimeoutMs?: number;
  /** Test seam: return true to make the coordinator stop dead at `point` (CoordinatorCrashedError). */
  readonly crashAt?: (point: CrashPoint, txId: string) => boolean;
  /**
   * NEGATIVE CONTROL, never in production: send commit before the decision is logged.
   * Exists so verification can prove it catches the bug.
   */
  readonly unsafeCommitBeforeDecision?: boolean;
  /**
   * NEGATIVE CONTROL, never in production: log this run's own decision unconditionally,
   * overwriting another run's. Exists so verification can prove that duplicate runs of one
   * id expose a decision that is not a single conditional write.
   */
  readonly unsafeBlindDecision?: boolean;
}

export interface RunOptions {
  /** This transaction's prepare deadline. Default: the coordinator's timeoutMs. */
  readonly timeoutMs?: number;
}

export interface TransactionResult {
  readonly txId: string;
  readonly outcome: Decision;
  readonly path: "fast" | "protocol";
  /** Why it aborted: the first no vote, a timeout, or who decided. */
  readonly reason?: string;
  /** Every participant acknowledged the decision; if false, recovery finishes phase two. */
  readonly acknowledged: boolean;
  /** Participants that had not acknowledged when run returned. */
  readonly pending: readonly string[];
  /** An earlier run of this transaction id decided it. */
  readonly duplicate: boolean;
}

/** Largest logged branch list, as JSON (the record must fit a DynamoDB item). */
export const MAX_BRANCHES_BYTES = 300 * 1024;

/** A transaction id names one transaction: a second run of it must ask for the same work. */
function sameTransaction(record: TransactionRecord, branches: readonly BranchRecord[]): void {
  if (JSON.stringify(record.branches) !== JSON.stringify(branches)) {
    throw new InvalidArgumentError("txId", `'${record.txId}' was already used for a different transaction; transaction ids must be unique`);
  }
}

/**
 * Whether an error from a request leaves its outcome open: a timeout, a dropped
 * connection, throttling or a server error after the SDK's retries (an earlier attempt may
 * have applied). A definite refusal (bad input, a missing table, access denied) and the
 * library's own errors are not.
 */
export function outcomeUnknown(err: unknown): boolean {
  if (err instanceof FencepostError || err instanceof TypeError || err instanceof RangeError) return false;
  const e = err as { name?: string; $fault?: string; $metadata?: { httpStatusCode?: number } };
  if (e?.name === "AbortError" || e?.name === "TimeoutError") return true;
  if (/Throttl|ProvisionedThroughputExceeded|RequestLimitExceeded|TransactionInProgress/.test(e?.name ?? "")) return true;
  return e?.$fault !== "client";
}

/** A phase-two call still running when the phase ended. */
class PhaseTwoHung extends Error {}

/** Waits for `work` until epoch ms `until`; "timeout" if it has not settled by then. */
async function raceUntil(work: Promise<unknown>, until: number): Promise<"done" | "timeout"> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), Math.max(0, until - Date.now()))));
  try {
    return await Promise.race([work.then(() => "done" as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export class Coordinator {
  readonly log: DecisionLog;
  readonly dynamodb: DynamoDBClient;
  readonly #options: CoordinatorOptions;
  readonly #registry = new Map<string, Participant>();
  readonly #sqs: SQSClient;
  readonly #lambda: LambdaClient;

  constructor(options: CoordinatorOptions) {
    validateName("tableName", options.tableName);
    this.#options = options;
    this.dynamodb = options.dynamodb ?? new DynamoDBClient({});
    this.#sqs = options.sqs ?? new SQSClient({});
    this.#lambda = options.lambda ?? new LambdaClient({});
    this.log = new DecisionLog(this.dynamodb, options.tableName, options.retainMs, Date.now, options.requestTimeoutMs);
    for (const p of options.participants ?? []) this.#registry.set(p.id, p);
  }

  /** Runs transaction `txId` over `branches` to a decision; see the module comment. */
  async run(txId: string, branches: readonly Branch[], options: RunOptions = {}): Promise<TransactionResult> {
    const records = this.#validate(txId, branches);
    if (await this.#fastPathApplies(branches, records)) return this.#fastPath(txId, branches as Branch<DynamoWrite[]>[], records);
    return this.#protocol(txId, branches, records, options);
  }

  /** The two-phase protocol (steps 1 to 4 of the module comment). */
  async #protocol(txId: string, branches: readonly Branch[], records: BranchRecord[], options: RunOptions): Promise<TransactionResult> {
    this.#crash("begin", txId);
    const deadline = Date.now() + (options.timeoutMs ?? this.#options.timeoutMs ?? 10_000);
    const { created, record } = await this.#step(txId, "begin", () => this.log.begin(txId, records, deadline));
    if (!created) {
      sameTransaction(record, records);
      if (record.status !== "preparing") return this.#finish(record, record.status, true);
    }
    const tx = this.#context(txId, record.deadline);
    const votes = await this.#prepareAll(tx, branches);
    this.#crash("decide", txId);
    const no = votes.find((v): v is Extract<Vote, { vote: "no" }> => v.vote === "no");
    const wanted: Decision = no ? "aborted" : "committed";
    if (this.#options.unsafeCommitBeforeDecision && wanted === "committed") {
      await this.#phaseTwo(tx, record.branches, "committed"); // the bug the negative control must expose
    }
    const decided = await this.#step(txId, "decide", () => (this.#options.unsafeBlindDecision ? this.log.unsafeOverwriteDecision(txId, wanted, no?.reason) : this.log.decide(txId, wanted, no?.reason)));
    return this.#finish({ ...record, status: decided, ...(decided === "aborted" ? { reason: no?.reason ?? "decided by another party before this coordinator" } : {}) }, decided, !created);
  }

  /** The record of a transaction, or undefined if it is unknown (presumed aborted). */
  status(txId: string): Promise<TransactionRecord | undefined> {
    validateName("txId", txId);
    return this.log.get(txId);
  }

  /** Finishes every transaction stuck past its deadline (see recovery.ts). */
  recover(options: RecoverOptions = {}): Promise<RecoveryReport> {
    return recover(this, options);
  }

  /**
   * Unfinished transactions past their deadline (default) or, with `staleAt: Infinity`,
   * all unfinished ones; oldest first, up to `limit` (default 100).
   */
  async listInDoubt(options: InDoubtQuery & { limit?: number } = {}): Promise<TransactionRecord[]> {
    const limit = options.limit ?? 100;
    const records: TransactionRecord[] = [];
    let startAfter: { deadline: number; txId: string } | undefined;
    do {
      const page = await this.log.listInDoubt({ ...options, limit: limit - records.length, ...(startAfter ? { startAfter } : {}) });
      records.push(...page.records);
      startAfter = page.next;
    } while (startAfter && records.length < limit);
    return records;
  }

  /** An operator's abort or forget, with an audit entry (see recovery.ts). */
  override(txId: string, request: OverrideRequest): Promise<TransactionRecord> {
    validateName("txId", txId);
    return override(this, txId, request);
  }

  /**
   * Drives a logged decision to every branch (phase two) and marks the record done when
   * all acknowledge. Returns the participants that did not acknowledge in time.
   */
  async drive(record: TransactionRecord, decision: Decision): Promise<{ acknowledged: boolean; pending: string[] }> {
    const pending = await this.#phaseTwo(this.#context(record.txId, record.deadline), record.branches, decision);
    if (pending.length > 0) return { acknowledged: false, pending };
    this.#crash("complete", record.txId);
    await this.#step(record.txId, "complete", () => this.log.complete(record.txId));
    return { acknowledged: true, pending: [] };
  }

  /** The participant with this id: registered, seen in a run, or a built-in one made from its id. */
  participant(id: string, txId = "(unknown)"): Participant {
    const known = this.#registry.get(id);
    if (known) return known;
    const [, kind, rest] = /^(dynamodb|outbox|lambda):(.+)$/.exec(id) ?? [];
    let made: Participant;
    if (kind === "dynamodb") {
      const cut = rest!.indexOf("#");
      const [tableName, label] = cut < 0 ? [rest!, undefined] : [rest!.slice(0, cut), rest!.slice(cut + 1)];
      made = new DynamoDbParticipant({ tableName, dynamodb: this.dynamodb, ...(label ? { label } : {}) });
    } else if (kind === "outbox") made = outboxParticipant({ queueUrl: rest!, sqs: this.#sqs, tableName: this.log.tableName, dynamodb: this.dynamodb });
    else if (kind === "lambda") made = new LambdaParticipant(rest!, { lambda: this.#lambda });
    else throw new UnknownParticipantError(id, txId);
    this.#registry.set(id, made);
    return made;
  }

  #validate(txId: string, branches: readonly Branch[]): BranchRecord[] {
    validateName("txId", txId);
    if (!Array.isArray(branches) || branches.length === 0) throw new InvalidArgumentError("branches", "must list at least one participant");
    const ids = new Set<string>();
    const records = branches.map((b, i) => {
      if (!b?.participant?.id) throw new InvalidArgumentError(`branches[${i}].participant`, "must be a Participant (with an id)");
      if (ids.has(b.participant.id)) throw new InvalidArgumentError(`branches[${i}].participant`, `'${b.participant.id}' appears twice; give it all its work in one branch`);
      ids.add(b.participant.id);
      if (b.participant instanceof DynamoDbParticipant) validateWrites(`branches[${i}].input`, b.input);
      this.#registry.set(b.participant.id, b.participant);
      return { participant: b.participant.id, input: b.input ?? null };
    });
    const bytes = Buffer.byteLength(JSON.stringify(records), "utf8");
    if (bytes > MAX_BRANCHES_BYTES) throw new InvalidArgumentError("branches", `are ${bytes} bytes as JSON; at most ${MAX_BRANCHES_BYTES} fit the decision log. Pass references to large data.`);
    return records;
  }

  /** A step's request; an answer that does not settle its outcome is reported as TransactionTimeoutError. */
  async #step<T>(txId: string, step: TransactionTimeoutError["step"], body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (err) {
      if (outcomeUnknown(err)) throw new TransactionTimeoutError(txId, step, this.log.requestTimeoutMs, { cause: err });
      throw err;
    }
  }

  #context(txId: string, deadline: number): TxContext {
    return { txId, deadline, decisions: this.log };
  }

  #crash(point: CrashPoint, txId: string): void {
    if (this.#options.crashAt?.(point, txId)) throw new CoordinatorCrashedError(txId, point);
  }

  /** Prepares every branch in parallel until the deadline; anything but a yes in time is a no. */
  async #prepareAll(tx: TxContext, branches: readonly Branch[]): Promise<Vote[]> {
    const votes: Promise<Vote>[] = [];
    for (const [i, b] of branches.entries()) {
      this.#crash(`prepare:${i}`, tx.txId);
      votes.push(b.participant.prepare(tx, b.input).catch((err: unknown) => ({ vote: "no" as const, reason: `${b.participant.id} failed to prepare: ${(err as Error).message}` })));
    }
    this.#crash(`prepare:${branches.length}`, tx.txId);
    const late: Vote = { vote: "no", reason: "not every participant voted before the deadline" };
    return Promise.all(votes.map(async (v) => ((await raceUntil(v, tx.deadline)) === "done" ? v : late)));
  }

  /** Sends the decision to every branch, retrying each until it acknowledges or time runs out. Returns the ones that did not. */
  async #phaseTwo(tx: TxContext, branches: readonly BranchRecord[], decision: Decision): Promise<string[]> {
    const until = Date.now() + (this.#options.phaseTwoTimeoutMs ?? 30_000);
    const deliveries: Promise<string | undefined>[] = [];
    for (const [i, b] of branches.entries()) {
      this.#crash(`phase2:${i}`, tx.txId);
      deliveries.push(this.#deliver(tx, b, decision, until));
    }
    this.#crash(`phase2:${branches.length}`, tx.txId);
    return (await Promise.all(deliveries)).filter((id): id is string => id !== undefined);
  }

  async #deliver(tx: TxContext, b: BranchRecord, decision: Decision, until: number): Promise<string | undefined> {
    try {
      const participant = this.participant(b.participant, tx.txId);
      await persistently(
        async () => {
          // An attempt that hangs past the phase's end counts as unacknowledged: recovery takes over.
          const attempt = decision === "committed" ? participant.commit(tx, b.input) : participant.abort(tx, b.input);
          attempt.catch(() => undefined);
          if ((await raceUntil(attempt, until)) === "timeout") throw new PhaseTwoHung();
        },
        // A protocol violation or a hang will not go away by asking again; anything else may.
        { until, retryIf: (err) => !(err instanceof ProtocolViolationError || err instanceof PhaseTwoHung) },
      );
      return undefined;
    } catch {
      return b.participant;
    }
  }

  async #finish(record: TransactionRecord, decision: Decision, duplicate: boolean): Promise<TransactionResult> {
    const base = { txId: record.txId, outcome: decision, path: record.path, duplicate, ...(decision === "aborted" && record.reason ? { reason: record.reason } : {}) };
    if (record.done) return { ...base, acknowledged: true, pending: [] };
    return { ...base, ...(await this.drive(record, decision)) };
  }

  async #fastPathApplies(branches: readonly Branch[], records: BranchRecord[]): Promise<boolean> {
    if (this.#options.fastPath === false || this.#options.unsafeCommitBeforeDecision || this.#options.unsafeBlindDecision) return false;
    if (!branches.every((b) => b.participant instanceof DynamoDbParticipant)) return false;
    if (records.reduce((sum, r) => sum + (r.input as unknown[]).length, 0) >= 100) return false;
    return sameDatabase(this.dynamodb, branches.map((b) => (b.participant as DynamoDbParticipant).dynamodb));
  }

  /**
   * One TransactWriteItems: every write under its lock check, plus the decided-and-done
   * record, whose `attribute_not_exists` condition makes it apply at most once per id
   * however often it is sent (SDK retries, a second run, a late delivery). The client
   * request token lets a retry of the same request learn that it applied.
   */
  async #fastPath(txId: string, branches: readonly Branch<DynamoWrite[]>[], records: BranchRecord[]): Promise<TransactionResult> {
    const writes = branches.flatMap((b) => b.input.map((w) => (b.participant as DynamoDbParticipant).directWrite(w)));
    const base = { txId, path: "fast" as const, acknowledged: true, pending: [] };
    /**
     * The outcome of an earlier run of this id, if it has one: decided (finished first if a
     * protocol run left phase two open), or a protocol run still preparing, which this run
     * then joins on the protocol path, so both report the one logged decision.
     */
    const existing = async (): Promise<TransactionResult | undefined> => {
      const record = await this.log.get(txId);
      if (!record) return undefined;
      sameTransaction(record, records);
      if (record.status === "preparing") return this.#protocol(txId, branches, records, {});
      if (!record.done) return this.#finish(record, record.status, true);
      return { ...base, path: record.path, outcome: record.status, duplicate: true, ...(record.reason ? { reason: record.reason } : {}) };
    };
    return this.#step(txId, "fast path", async () => {
      const transactItems = [...writes, { Put: this.log.fastPathPut(txId, records, "committed") }];
      let token: string | undefined = createHash("sha256").update(txId).digest("hex").slice(0, 36);
      let reason = "the transaction was cancelled";
      for (let conflicts = 0; ; ) {
        try {
          await this.dynamodb.send(new TransactWriteItemsCommand({ TransactItems: transactItems, ...(token ? { ClientRequestToken: token } : {}) }));
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
          if (!(err instanceof TransactionCanceledException)) throw err;
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
        await this.dynamodb.send(new PutItemCommand(this.log.fastPathPut(txId, records, "aborted", reason)));
      } catch (err) {
        if (!(err instanceof ConditionalCheckFailedException)) throw err;
        const found = await existing();
        if (found) return found;
      }
      return { ...base, outcome: "aborted" as const, reason, duplicate: false };
    });
  }
}
