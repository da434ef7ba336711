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
 * id) applies all writes and records the decision; no locks, no phase two (fast-path.ts).
 *
 * Built from: the decision log (log.ts), the participant registry (registry.ts), phase
 * two (phase-two.ts), the fast path (fast-path.ts) and recovery (recovery.ts), none of
 * which imports this file.
 *
 * Assumes: participants follow the protocol in participant.ts; clocks matter for
 * deadlines only (liveness), never for what is decided.
 */
import { DEFAULT_LIST_LIMIT, DEFAULT_TIMEOUT_MS } from "./defaults.js";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { SQSClient } from "@aws-sdk/client-sqs";
import { validateName } from "../internal/validation.js";
import { recordBranches, sameTransaction } from "./branches.js";
import { crashIfAsked, type CrashPoint, type CrashSeam } from "./crash-points.js";
import { raceUntil } from "../internal/time.js";
import type { DynamoWrite } from "./dynamodb.js";
import { FastPath } from "./fast-path.js";
import { DecisionLog, type BranchRecord, type Decision, type InDoubtQuery, type TransactionRecord } from "./log.js";
import type { Branch, Participant, TxContext, Vote } from "./participant.js";
import { PhaseTwo } from "./phase-two.js";
import { Recovery, type OverrideRequest, type RecoverOptions, type RecoveryReport } from "./recovery.js";
import { ParticipantRegistry } from "./registry.js";
import type { TransactionResult } from "./result.js";
import { runStep } from "./unknown-outcome.js";

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
  /** Prepare deadline, from the start of run. @default DEFAULT_TIMEOUT_MS (10 s) */
  readonly timeoutMs?: number;
  /** How long run drives phase two before leaving the rest to recovery. @default DEFAULT_PHASE_TWO_TIMEOUT_MS (30 s) */
  readonly phaseTwoTimeoutMs?: number;
  /**
   * The fast path: one TransactWriteItems instead of the protocol. `"auto"` takes it when
   * every branch is a DynamoDbParticipant whose client reaches the same database as the
   * coordinator's (same region, endpoint and access key id; see database.ts) and the writes
   * fit one request (at most 99); `false` never takes it. Both paths give the same outcome.
   * @default "auto"
   */
  readonly fastPath?: "auto" | boolean;
  /** How long finished records are kept (and run stays idempotent by id). @default DEFAULT_RETAIN_MS (7 days) */
  readonly retainMs?: number;
  /** Each request to the decision log (begin, decide, complete), retries included, gives up after this long. @default DEFAULT_REQUEST_TIMEOUT_MS (5 s) */
  readonly requestTimeoutMs?: number;
}

/**
 * Test seams for the verification harness (lib/check); never set in production. Crash
 * seams stop the coordinator at a named step; the `unsafe*` switches are negative
 * controls: deliberately broken variants that verification must catch. Either switch
 * turns the fast path off.
 */
export interface CoordinatorHooks {
  /** Return true to make the coordinator stop dead at `point` (CoordinatorCrashedError). See crash-points.ts. */
  readonly crashAt?: CrashSeam;
  /**
   * NEGATIVE CONTROL: send commit before the decision is logged. Exists so verification
   * can prove it catches the bug.
   */
  readonly unsafeCommitBeforeDecision?: boolean;
  /**
   * NEGATIVE CONTROL: log this run's own decision unconditionally, overwriting another
   * run's. Exists so verification can prove that duplicate runs of one id expose a
   * decision that is not a single conditional write.
   */
  readonly unsafeBlindDecision?: boolean;
}

export interface RunOptions {
  /** This transaction's prepare deadline. Default: the coordinator's timeoutMs. */
  readonly timeoutMs?: number;
}

/**
 * Runs two-phase commit with its state in the decision log (see the module comment):
 * `run` a transaction, look at its `status`, `listInDoubt`, `recover` stuck ones, and
 * `override` one as an operator.
 */
export class Coordinator {
  readonly #options: CoordinatorOptions;
  readonly #hooks: CoordinatorHooks;
  readonly #log: DecisionLog;
  readonly #registry: ParticipantRegistry;
  readonly #phaseTwo: PhaseTwo;
  readonly #fastPath: FastPath;
  readonly #recovery: Recovery;

  /**
   * @param options what the coordinator works on and how long it waits.
   * @param hooks test seams for the verification harness (lib/check); never set in production.
   */
  constructor(options: CoordinatorOptions, hooks: CoordinatorHooks = {}) {
    validateName("tableName", options.tableName);
    this.#options = options;
    this.#hooks = hooks;
    const dynamodb = options.dynamodb ?? new DynamoDBClient({});
    this.#log = new DecisionLog(dynamodb, options.tableName, options.retainMs, Date.now, options.requestTimeoutMs);
    this.#registry = new ParticipantRegistry({
      tableName: options.tableName,
      dynamodb,
      sqs: options.sqs ?? new SQSClient({}),
      lambda: options.lambda ?? new LambdaClient({}),
      participants: options.participants,
    });
    this.#phaseTwo = new PhaseTwo({ log: this.#log, registry: this.#registry, timeoutMs: options.phaseTwoTimeoutMs }, { crashAt: hooks.crashAt });
    this.#fastPath = new FastPath({ log: this.#log, dynamodb });
    this.#recovery = new Recovery({ log: this.#log, phaseTwo: this.#phaseTwo });
  }

  /** Runs transaction `txId` over `branches` to a decision; see the module comment. */
  async run(txId: string, branches: readonly Branch[], options: RunOptions = {}): Promise<TransactionResult> {
    const records = recordBranches(txId, branches);
    for (const b of branches) this.#registry.register(b.participant);
    if (await this.#fastPathApplies(branches, records)) {
      return this.#fastPath.run(txId, branches as Branch<DynamoWrite[]>[], records, (record) =>
        record.status === "preparing" ? this.#protocol(txId, branches, records, {}) : this.#finish(record, record.status, true),
      );
    }
    return this.#protocol(txId, branches, records, options);
  }

  /** The two-phase protocol (steps 1 to 4 of the module comment). */
  async #protocol(txId: string, branches: readonly Branch[], records: BranchRecord[], options: RunOptions): Promise<TransactionResult> {
    this.#crash("begin", txId);
    const deadline = Date.now() + (options.timeoutMs ?? this.#options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const { created, record } = await this.#step(txId, "begin", () => this.#log.begin(txId, records, deadline));
    if (!created) {
      sameTransaction(record, records);
      if (record.status !== "preparing") return this.#finish(record, record.status, true);
    }
    const tx: TxContext = { txId, deadline: record.deadline, decisions: this.#log };
    const votes = await this.#prepareAll(tx, branches);
    this.#crash("decide", txId);
    const no = votes.find((v): v is Extract<Vote, { vote: "no" }> => v.vote === "no");
    const wanted: Decision = no ? "aborted" : "committed";
    if (this.#hooks.unsafeCommitBeforeDecision && wanted === "committed") {
      await this.#phaseTwo.send(tx, record.branches, "committed"); // the bug the negative control must expose
    }
    const decided = await this.#step(txId, "decide", () => (this.#hooks.unsafeBlindDecision ? this.#log.unsafeOverwriteDecision(txId, wanted, no?.reason) : this.#log.decide(txId, wanted, no?.reason)));
    return this.#finish({ ...record, status: decided, ...(decided === "aborted" ? { reason: no?.reason ?? "decided by another party before this coordinator" } : {}) }, decided, !created);
  }

  /** The record of a transaction, or undefined if it is unknown (presumed aborted). */
  status(txId: string): Promise<TransactionRecord | undefined> {
    validateName("txId", txId);
    return this.#log.get(txId);
  }

  /** Finishes every transaction stuck past its deadline (see recovery.ts). */
  recover(options: RecoverOptions = {}): Promise<RecoveryReport> {
    return this.#recovery.recover(options);
  }

  /**
   * Unfinished transactions past their deadline (default) or, with `staleAt: Infinity`,
   * all unfinished ones; oldest first, up to `limit` (default 100).
   */
  async listInDoubt(options: InDoubtQuery & { limit?: number } = {}): Promise<TransactionRecord[]> {
    const limit = options.limit ?? DEFAULT_LIST_LIMIT;
    const records: TransactionRecord[] = [];
    let startAfter: { deadline: number; txId: string } | undefined;
    do {
      const page = await this.#log.listInDoubt({ ...options, limit: limit - records.length, ...(startAfter ? { startAfter } : {}) });
      records.push(...page.records);
      startAfter = page.next;
    } while (startAfter && records.length < limit);
    return records;
  }

  /** An operator's abort or forget, with an audit entry (see recovery.ts). */
  override(txId: string, request: OverrideRequest): Promise<TransactionRecord> {
    validateName("txId", txId);
    return this.#recovery.override(txId, request);
  }

  /** A step's request; an answer that does not settle its outcome is reported as TransactionTimeoutError. */
  #step<T>(txId: string, step: "begin" | "decide", body: () => Promise<T>): Promise<T> {
    return runStep(txId, step, this.#log.requestTimeoutMs, body);
  }

  #crash(point: CrashPoint, txId: string): void {
    crashIfAsked(this.#hooks.crashAt, point, txId);
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

  /** The result of a decided transaction, after phase two unless the record is done already. */
  async #finish(record: TransactionRecord, decision: Decision, duplicate: boolean): Promise<TransactionResult> {
    const base = { txId: record.txId, outcome: decision, path: record.path, duplicate, ...(decision === "aborted" && record.reason ? { reason: record.reason } : {}) };
    if (record.done) return { ...base, acknowledged: true, pending: [] };
    return { ...base, ...(await this.#phaseTwo.drive(record, decision)) };
  }

  async #fastPathApplies(branches: readonly Branch[], records: BranchRecord[]): Promise<boolean> {
    if (this.#options.fastPath === false || this.#hooks.unsafeCommitBeforeDecision || this.#hooks.unsafeBlindDecision) return false;
    return this.#fastPath.applies(branches, records);
  }
}
