/**
 * The bank workload: transfers between accounts held by different participants, through
 * two-phase commit, with its coordinators killed at every step of the protocol in turn.
 *
 * Participants: `accounts` (a DynamoDbParticipant: balances on items, each transfer also
 * puts a receipt item), `ledger` (a defineParticipant that reserves by escrow: a pending
 * entry per transaction and an `available` balance) and `outbox` (an SQS FIFO outbox
 * participant: one message per committed transfer). A transfer debits one account and
 * credits another, at the same or different participants, and half the time announces
 * itself through the outbox. Transfers that touch only `accounts` take the fast path.
 *
 * Faults: the coordinator of protocol transfer k (over b branches) crashes at
 * `crashPoints(b)[k mod (2b + 6)]` or not at all, cycling through every point
 * deterministically; participants "crash" after voting yes (the vote is lost); every
 * DynamoDB and SQS client injects lost requests, lost responses after the write applied,
 * throttling, slow responses and requests delivered late (after the client gave up and
 * retried); phase-two messages are delivered again after a transaction finished, and
 * stale prepares arrive late. A third of the protocol transfers are run by two
 * coordinators at once under one id (the second starting up to a deadline later, as a
 * Lambda retry would). One lane runs its coordinators in child processes and kills them
 * with SIGKILL at random moments. A recovery loop runs alongside.
 *
 * After the run (faults off), recovery finishes everything, and then:
 * - `in-doubt`: a transaction of this run is undecided or unfinished;
 * - `atomicity`: a transaction's effect is present at one participant and absent at
 *   another, or disagrees with the logged decision;
 * - `reservation-left`: an item still locked, or a ledger entry still pending;
 * - `duplicate-effect`: an outbox message sent more than once;
 * - `conservation`: the total balance changed; `negative-balance`: an account below zero;
 * - `outcome-mismatch`: run reported an outcome the log does not hold;
 * - `path-disagreement`: the same transfers, sequentially, give different outcomes or
 *   balances on the fast path and through the protocol.
 * Negative controls, each a broken variant and the fault that exposes it:
 * - `commit-before-log`: commit is sent before the decision is logged, so a crash seam in
 *   phase two leaves committed participants behind an abort;
 * - `ledger-unchecked`: the DynamoDB participant creates its ledger without checking for
 *   one, so a prepare delivered late locks again after the commit (stale prepares sent by
 *   the workload itself are off: only late delivery exposes it);
 * - `blind-decision`: coordinators overwrite the logged decision, so two runs of one id
 *   carry out different decisions (exposed by the duplicate runs);
 * - `killed-before-log`: the child processes commit before logging, and only SIGKILL
 *   interrupts them (their coordinators have no crash seams).
 */
import { numberValue, stringValue } from "../../internal/attributes.js";
import { DynamoDBClient, paginateScan, PutItemCommand, QueryCommand, UpdateItemCommand, type AttributeValue, type DynamoDBClientConfig } from "@aws-sdk/client-dynamodb";
import { CreateQueueCommand, DeleteMessageBatchCommand, ReceiveMessageCommand, SQSClient, type SQSClientConfig } from "@aws-sdk/client-sqs";
import { Coordinator } from "../../txn/coordinator.js";
import { crashPoints, type CrashPoint } from "../../txn/crash-points.js";
import { DynamoDbParticipant, type DynamoDbParticipantHooks, type DynamoWrite } from "../../txn/dynamodb.js";
import { CoordinatorCrashedError, InvalidArgumentError } from "../../errors.js";
import { injectedFailure } from "../middleware.js";
import { DecisionLog } from "../../txn/log.js";
import { outboxParticipant, type OutboxMessage } from "../../txn/outbox.js";
import { branch, defineParticipant, type Branch, type Participant } from "../../txn/participant.js";
import type { TransactionResult } from "../../txn/result.js";
import type { FaultRates } from "../faults.js";
import type { Anomaly } from "../invariants.js";
import type { Operation } from "../history.js";
import { pauseFor, startWorkerChild, startWorkload, type Worker, type WorkloadEnvironment, type WorkloadResult } from "./workers.js";

/** A deliberately broken variant (see the module comment). */
export type BankControl = "commit-before-log" | "ledger-unchecked" | "blind-decision" | "killed-before-log";
export const BANK_CONTROLS: readonly BankControl[] = ["commit-before-log", "ledger-unchecked", "blind-decision", "killed-before-log"];

export interface BankWorkloadOptions {
  workers?: number;
  /** Run a negative control instead of the correct system. */
  control?: BankControl;
}

const ACCOUNTS_PER_PARTICIPANT = 4;
const OPENING_BALANCE = 100;
const TIMEOUT_MS = 400;
/** Share of protocol transfers run by a second coordinator at once. */
const DUPLICATE_RUNS = 0.35;

type Holder = "accounts" | "ledger";
export interface Account {
  readonly holder: Holder;
  readonly key: string;
}
export interface Transfer {
  readonly txId: string;
  readonly from: Account;
  readonly to: Account;
  readonly amount: number;
  readonly announce: boolean;
  readonly crash?: CrashPoint;
}
export type LedgerInput = { account: string; delta: number };

/** What a coordinator in a child process needs to build the bank's participants (JSON). */
export interface BankProcessConfig {
  readonly dynamodb: DynamoDBClientConfig;
  readonly sqs: SQSClientConfig;
  readonly tableName: string;
  readonly txnTable: string;
  readonly queueUrl: string;
  readonly ledgerId: string;
  readonly prefix: string;
  readonly timeoutMs: number;
  readonly unsafeCommitBeforeDecision: boolean;
}

/** The bank's three participants, on the given clients. */
export interface BankParticipants {
  readonly accounts: DynamoDbParticipant;
  readonly ledger: Participant<LedgerInput>;
  readonly outbox: Participant<OutboxMessage>;
}

export function bankParticipants(db: DynamoDBClient, sqs: SQSClient, c: Pick<BankProcessConfig, "tableName" | "txnTable" | "queueUrl" | "ledgerId">, accountsHooks: DynamoDbParticipantHooks = {}): BankParticipants {
  return {
    accounts: new DynamoDbParticipant({ tableName: c.tableName, dynamodb: db }, accountsHooks),
    ledger: ledgerParticipant(db, c.tableName, c.txnTable, c.ledgerId),
    outbox: outboxParticipant({ queueUrl: c.queueUrl, sqs, tableName: c.txnTable, dynamodb: db }),
  };
}

const writesOf = (t: Transfer, holder: Holder, prefix: string): DynamoWrite[] => [
  ...(t.from.holder === holder ? [{ type: "update" as const, key: { pk: t.from.key }, add: { balance: -t.amount }, condition: { expression: "balance >= :amount", values: { ":amount": t.amount } } }] : []),
  ...(t.to.holder === holder ? [{ type: "update" as const, key: { pk: t.to.key }, add: { balance: t.amount } }] : []),
  { type: "put" as const, key: { pk: `${prefix}#receipt#${t.txId}` }, item: { amount: t.amount }, ifAbsent: true },
];

const ledgerInputs = (t: Transfer): LedgerInput[] => [
  ...(t.from.holder === "ledger" ? [{ account: t.from.key, delta: -t.amount }] : []),
  ...(t.to.holder === "ledger" ? [{ account: t.to.key, delta: t.amount }] : []),
];

/** A transfer's branches: the same for every coordinator that runs it (the participants' ids and inputs). */
export function bankBranches(t: Transfer, p: BankParticipants, prefix: string): Branch[] {
  const out: Branch[] = [];
  if (t.from.holder === "accounts" || t.to.holder === "accounts") out.push(branch(p.accounts, writesOf(t, "accounts", prefix)));
  // A same-ledger transfer is one branch with a net delta of zero: model it as one debit-and-credit entry.
  const entries = ledgerInputs(t);
  if (entries.length === 2) out.push(branch(p.ledger, { account: entries[0]!.account, delta: 0 }));
  else if (entries.length === 1) out.push(branch(p.ledger, entries[0]!));
  if (t.announce) out.push(branch(p.outbox, { body: { txId: t.txId, amount: t.amount }, groupId: "bank" }));
  return out;
}


/**
 * The ledger: an escrow participant. prepare moves a debit out of `available` into
 * `pending.<tx>`; commit applies it; abort gives it back. `done.<tx>` marks a transaction
 * finished here (written by commit, and by abort before it releases), and a reservation
 * requires its absence: so a reservation request that reaches the item late, after the
 * decision, reserves nothing. That is the rule for any participant whose reservation can
 * be delivered late.
 */
function ledgerParticipant(db: DynamoDBClient, table: string, txnTable: string, id: string): Participant<LedgerInput> {
  const update = async (key: string, expression: string, condition: string | undefined, values: Record<string, AttributeValue>, tx: string) =>
    db
      .send(
        new UpdateItemCommand({
          TableName: table,
          Key: { pk: stringValue(key) },
          UpdateExpression: expression,
          ...(condition ? { ConditionExpression: condition } : {}),
          ExpressionAttributeNames: { "#tx": tx },
          ...(Object.keys(values).length ? { ExpressionAttributeValues: values } : {}),
        }),
      )
      .then(() => true)
      .catch((err: unknown) => {
        if ((err as Error).name === "ConditionalCheckFailedException") return false;
        throw err;
      });
  return defineParticipant<LedgerInput>({
    id,
    tableName: txnTable,
    dynamodb: db,
    async prepare(tx, { account, delta }) {
      const need = Math.max(0, -delta);
      const reserved = await update(account, "SET pending.#tx = :delta, available = available - :need", "attribute_not_exists(pending.#tx) AND attribute_not_exists(done.#tx) AND available >= :need", { ":delta": numberValue(delta), ":need": numberValue(need) }, tx.txId);
      if (reserved) return true;
      return (await update(account, "SET pending.#tx = pending.#tx", "attribute_exists(pending.#tx)", {}, tx.txId)) || "insufficient funds (or the transaction already finished here)";
    },
    async commit(tx, { account, delta }) {
      await update(account, "SET balance = balance + :delta, available = available + :credit, applied = list_append(applied, :tx), done.#tx = :c REMOVE pending.#tx", "attribute_exists(pending.#tx)", { ":delta": numberValue(delta), ":credit": numberValue(Math.max(0, delta)), ":tx": { L: [stringValue(tx.txId)] }, ":c": stringValue("committed") }, tx.txId);
    },
    async abort(tx, { account, delta }) {
      await update(account, "SET done.#tx = if_not_exists(done.#tx, :a)", undefined, { ":a": stringValue("aborted") }, tx.txId);
      await update(account, "SET available = available + :need REMOVE pending.#tx", "attribute_exists(pending.#tx)", { ":need": numberValue(Math.max(0, -delta)) }, tx.txId);
    },
  });
}

/** Which faults a run injects beyond the SDK faults (and, for controls, which one exposes the bug). */
interface FaultPlan {
  readonly processLanes: number;
  /** Crash seams of in-process coordinators: the points used. */
  readonly crashAt: (point: CrashPoint) => boolean;
  /** Crash at every protocol transfer instead of every other one. */
  readonly alwaysCrash?: boolean;
  readonly duplicates: { readonly share: number; readonly maxDelayMs: number; readonly lostVotes: number };
  /** Phase-two messages and prepares sent again after a transaction finished. */
  readonly staleMessages: boolean;
  readonly faults?: FaultRates;
  /** Prepare deadline of a transfer: short in the full run (deadlines are a fault too), longer in controls so their bug's precondition (all yes votes) is common. */
  readonly timeoutMs: number;
  /** Where in a child's transfer its SIGKILL lands, as fractions of the transfer's measured duration. */
  readonly killWindow: readonly [number, number];
}

const FULL_PLAN: FaultPlan = { processLanes: 1, crashAt: () => true, duplicates: { share: DUPLICATE_RUNS, maxDelayMs: TIMEOUT_MS + 300, lostVotes: 0.05 }, staleMessages: true, timeoutMs: TIMEOUT_MS, killWindow: [0, 1] };
const CONTROL_TIMEOUT_MS = 2000;
const NO_DUPLICATES = { share: 0, maxDelayMs: 0, lostVotes: 0.05 };
/** Each control: its bug's fault, the others off (they would only mask it or slow it down). */
const CONTROL_PLANS: Record<BankControl, FaultPlan> = {
  "commit-before-log": { processLanes: 0, crashAt: (p) => /^phase2:[1-9]/.test(p), alwaysCrash: true, duplicates: NO_DUPLICATES, staleMessages: false, timeoutMs: CONTROL_TIMEOUT_MS, killWindow: [0, 1] },
  "ledger-unchecked": { processLanes: 0, crashAt: () => false, duplicates: { ...NO_DUPLICATES, lostVotes: 0.3 }, staleMessages: false, faults: { rate: 0.8, kinds: ["late-delivery"], maxLateMs: 5000, requests: (r) => r.commandName === "TransactWriteItemsCommand" }, timeoutMs: CONTROL_TIMEOUT_MS, killWindow: [0, 1] },
  "blind-decision": { processLanes: 0, crashAt: () => false, duplicates: { share: 0.8, maxDelayMs: 50, lostVotes: 0.5 }, staleMessages: false, timeoutMs: CONTROL_TIMEOUT_MS, killWindow: [0, 1] },
  "killed-before-log": { processLanes: 4, crashAt: () => false, duplicates: NO_DUPLICATES, staleMessages: false, timeoutMs: CONTROL_TIMEOUT_MS, killWindow: [0.3, 0.8] },
};

const CONTROL_NAMES: Record<BankControl, string> = {
  "commit-before-log": "bank, commit before log",
  "ledger-unchecked": "bank, ledger unchecked (late delivery)",
  "blind-decision": "bank, blind decision (duplicate runs)",
  "killed-before-log": "bank, commit before log (SIGKILL)",
};

export async function runBankWorkload(env: WorkloadEnvironment, options: BankWorkloadOptions = {}): Promise<WorkloadResult> {
  const setup = env.txn;
  if (!setup) throw new InvalidArgumentError("env.txn", "is required by the bank workload (transaction table, SQS configuration)");
  const control = options.control;
  const name = control ? CONTROL_NAMES[control] : "bank";
  const tag = control ? `#${control}` : "";
  const plan = control ? CONTROL_PLANS[control] : FULL_PLAN;
  // Lanes: recovery, the child-process coordinators, then the in-process coordinators.
  const processLanes = plan.processLanes;
  const run = startWorkload(plan.faults ? { ...env, faults: { ...env.faults, ...plan.faults } } : env, name, (options.workers ?? 4) + 1 + processLanes);
  const duplicates = plan.duplicates;
  const prefix = `bank#${env.runId}${tag}`;
  const { recorder } = run;
  const admin = new DynamoDBClient(env.dynamodb); // no faults: set-up and the final observation
  const sqsAdmin = new SQSClient(setup.sqs);
  const queueUrl = (await sqsAdmin.send(new CreateQueueCommand({ QueueName: `bank-${env.runId}${control ? `-${control}` : ""}.fifo`.replace(/[^A-Za-z0-9_.-]/g, "-").slice(-80), Attributes: { FifoQueue: "true" } }))).QueueUrl!;
  const ledgerId = `ledger-${env.runId}${control ? `-${control}` : ""}`;
  const accounts: Account[] = (["accounts", "ledger"] as const).flatMap((holder) => Array.from({ length: ACCOUNTS_PER_PARTICIPANT }, (_, i) => ({ holder, key: `${prefix}#${holder}#${i}` })));
  for (const a of accounts) {
    await admin.send(
      new PutItemCommand({ TableName: env.tableName, Item: { pk: stringValue(a.key), balance: numberValue(OPENING_BALANCE), ...(a.holder === "ledger" ? { available: numberValue(OPENING_BALANCE), pending: { M: {} }, done: { M: {} }, applied: { L: [] } } : {}) } }),
    );
  }
  const processConfig: BankProcessConfig = {
    dynamodb: env.dynamodb,
    sqs: setup.sqs,
    tableName: env.tableName,
    txnTable: setup.tableName,
    queueUrl,
    ledgerId,
    prefix,
    timeoutMs: plan.timeoutMs,
    unsafeCommitBeforeDecision: control === "killed-before-log",
  };

  /** A worker's participants, on its own faulty clients. */
  const participantsOf = (w: Worker) => {
    const sqs = new SQSClient(setup.sqs);
    w.schedule.attach(sqs);
    return { ...bankParticipants(w.dynamodb, sqs, processConfig, { unsafeUnconditionalLedger: control === "ledger-unchecked" }), sqs };
  };
  /** The ledger as seen through a flaky network: sometimes a yes vote is lost on its way back. */
  const lossyLedger = (w: Worker, ledger: Participant<LedgerInput>): Participant<LedgerInput> => ({
    id: ledger.id,
    prepare: async (tx, input) => {
      const vote = await ledger.prepare(tx, input);
      if (vote.vote === "yes" && w.random.chance(duplicates.lostVotes)) {
        stats.lostVotes++;
        throw injectedFailure("ParticipantCrashed", "participant crashed after voting yes (injected)");
      }
      return vote;
    },
    commit: (tx, input) => ledger.commit(tx, input),
    abort: (tx, input) => ledger.abort(tx, input),
  });

  const transfers = new Map<string, Transfer>();
  const crashPlan = new Map<string, CrashPoint>();
  /** Which (branch count, crash point) pairs a coordinator actually died at. */
  const crashedAt = new Set<string>();
  /** The (branch count, crash point) pairs the full run crashes at: it goes on past its duration until it has died at each (see `loop`); controls do not wait. */
  const crashPointsPlanned = [1, 2, 3].reduce((sum, b) => sum + crashPoints(b).filter(plan.crashAt).length, 0);
  let counter = 0;
  const cycle = new Map<number, number>();
  const crashTurn = new Map<number, number>();
  const stats = { crashed: 0, duplicatePhaseTwo: 0, stalePrepares: 0, lostVotes: 0, recoveredAborted: 0, recoveredRedriven: 0, childTransfers: 0, killedInFlight: 0 };
  const recoveryWorker = run.workers[0]!;
  const processWorkers = new Set(run.workers.slice(1, 1 + processLanes));
  const lanes = run.workers.slice(1 + processLanes);
  const recoveryCoordinator = (db: DynamoDBClient, p: ReturnType<typeof participantsOf>) => new Coordinator({ tableName: setup.tableName, dynamodb: db, sqs: p.sqs, participants: [p.ledger, p.outbox, p.accounts], phaseTwoTimeoutMs: 2000 });

  const roles = new Map(
    run.workers.map((w) => {
      const p = participantsOf(w);
      const common = { tableName: setup.tableName, dynamodb: w.dynamodb, sqs: p.sqs, participants: [p.ledger, p.outbox, p.accounts], timeoutMs: plan.timeoutMs, phaseTwoTimeoutMs: 2000 };
      const blindDecision = { unsafeBlindDecision: control === "blind-decision" };
      const coordinator = new Coordinator(common, { ...blindDecision, crashAt: (point, txId) => crashPlan.get(txId) === point, unsafeCommitBeforeDecision: control === "commit-before-log" });
      /** Runs a transfer a second time, at once, as Lambda's at-least-once invoke may. */
      const duplicate = new Coordinator(common, blindDecision);
      /** The decision log as the coordinators see it, for the stale messages sent after the fact. */
      const decisions = new DecisionLog(w.dynamodb, setup.tableName);
      return [w.id, { p, ledger: lossyLedger(w, p.ledger), coordinator, duplicate, decisions }] as const;
    }),
  );

  const draft = (w: Worker): Transfer => {
    const from = w.random.pick(accounts);
    let to = w.random.pick(accounts);
    while (to === from) to = w.random.pick(accounts);
    return { txId: `${prefix}#tx${counter++}`, from, to, amount: w.random.int(1, 40), announce: w.random.chance(0.5) };
  };
  const transferSpec = (w: Worker, t: Transfer, lane = w.id) => ({ process: lane, key: "bank", f: "transfer", input: { txId: t.txId, from: t.from.key, to: t.to.key, amount: t.amount, crash: t.crash } });

  /**
   * One child process: transfers fed to it one at a time until it is killed. Committed
   * transfers measure how long one takes; the kill comes inside the second or third, at a
   * uniformly random moment of the plan's kill window of that duration (all of it in the
   * full run; its middle in the SIGKILL control, where commit-before-log is exposed), so
   * every kill interrupts a transaction somewhere in the protocol.
   */
  const childLifecycle = async (w: Worker) => {
    const child = startBankProcess(processConfig);
    if (!(await child.ready)) return;
    const victim = w.random.int(1, 2);
    let killer: NodeJS.Timeout | undefined;
    let lastMs = 100;
    for (let k = 0; child.alive; k++) {
      const t = draft(w);
      transfers.set(t.txId, t);
      stats.childTransfers++;
      if (k === victim) {
        const [from, to] = plan.killWindow;
        killer = setTimeout(() => {
          if (child.kill()) run.faults.sigkill++;
        }, w.random.int(Math.round(from * lastMs), Math.max(1, Math.round(to * lastMs))));
      }
      const sent = performance.now();
      const result = await recorder.record(transferSpec(w, t, `${w.id}/child`), () => child.run(t));
      // The duration of a committed transfer: the longest path through the protocol.
      if (result.outcome === "ok" && (result.output as TransactionResult).outcome === "committed") lastMs = performance.now() - sent;
      if (result.outcome !== "ok" && !child.alive) stats.killedInFlight++;
    }
    clearTimeout(killer);
    await child.exited;
  };

  await run.loop(async (w) => {
    if (w === recoveryWorker) {
      // Recovery alongside the live coordinators, as the scheduled function would.
      const { p } = roles.get(w.id)!;
      const report = await recoveryCoordinator(w.dynamodb, p).recover({ prefix: `${prefix}#` }).catch(() => undefined);
      stats.recoveredAborted += report?.aborted ?? 0;
      stats.recoveredRedriven += report?.redriven ?? 0;
      await pauseFor(300);
      return;
    }
    if (processWorkers.has(w)) return childLifecycle(w);
    const { p, ledger, coordinator, decisions } = roles.get(w.id)!;
    const t0 = draft(w);
    const branches = bankBranches(t0, { ...p, ledger }, prefix);
    const protocol = branches.some((b) => b.participant !== p.accounts);
    let crash: CrashPoint | undefined;
    if (protocol) {
      // Cycle deterministically through every crash point for this many branches (in the
      // commit-before-log control, the phase-two points, where its bug is).
      // Two transfers in three crash (all of them in a control that needs crashes), each at the next point in turn.
      const points = crashPoints(branches.length).filter(plan.crashAt);
      const k = cycle.get(branches.length) ?? 0;
      cycle.set(branches.length, k + 1);
      if (points.length > 0 && (k % 3 !== 2 || plan.alwaysCrash)) {
        const next = crashTurn.get(branches.length) ?? 0;
        crashTurn.set(branches.length, next + 1);
        crash = points[next % points.length];
      }
      if (crash) crashPlan.set(t0.txId, crash);
    }
    const transfer: Transfer = { ...t0, ...(crash ? { crash } : {}) };
    transfers.set(transfer.txId, transfer);
    // The same id run by a second coordinator (another worker's), starting up to a deadline later.
    const twin = protocol && w.random.chance(duplicates.share) ? w.random.pick(lanes.filter((l) => l !== w)) : undefined;
    const duplicateRun = async () => {
      if (!twin) return;
      run.faults["duplicate-run"]++;
      await pauseFor(w.random.int(0, duplicates.maxDelayMs));
      const other = roles.get(twin.id)!;
      await recorder.record({ ...transferSpec(w, transfer, `${twin.id}/dup`), f: "transfer-duplicate" }, () => other.duplicate.run(transfer.txId, bankBranches(transfer, other.p, prefix)));
    };
    const [result] = await Promise.all([recorder.record(transferSpec(w, transfer), () => coordinator.run(transfer.txId, branches)), duplicateRun()]);
    if (result.outcome !== "ok") {
      if (result.error instanceof CoordinatorCrashedError) {
        stats.crashed++;
        crashedAt.add(`${branches.length}/${result.error.point}`);
      }
      return;
    }
    const outcome = (result.output as TransactionResult).outcome;
    // Duplicate and late messages after the fact: they must change nothing. (Off in the
    // ledger control, which late delivery alone must expose.)
    if (protocol && plan.staleMessages && w.random.chance(0.15)) {
      const b = w.random.pick(branches);
      // As the coordinator would send them: with the decision log at hand.
      const tx = { txId: transfer.txId, deadline: Date.now() + plan.timeoutMs, decisions };
      stats.duplicatePhaseTwo++;
      await (outcome === "committed" ? b.participant.commit(tx, b.input) : b.participant.abort(tx, b.input)).catch(() => undefined);
      if (w.random.chance(0.3)) {
        stats.stalePrepares++;
        await b.participant.prepare(tx, b.input).catch(() => undefined);
      }
    }
    await pauseFor(w.random.int(0, 10));
  }, control ? undefined : () => crashedAt.size >= crashPointsPlanned);

  // Quiesce (run.loop turned faults off and let late requests land), then recover until nothing is in doubt.
  const cleanup = recoveryCoordinator(admin, roles.get(recoveryWorker.id)!.p);
  // Let prepares still in flight (SDK retries after a coordinator gave up on them) land.
  await pauseFor(plan.timeoutMs + 2000);
  for (let round = 0; round < 5; round++) {
    const report = await cleanup.recover({ prefix: `${prefix}#` });
    stats.recoveredAborted += report.aborted;
    stats.recoveredRedriven += report.redriven;
    if (report.stillInDoubt === 0) break;
  }
  const observed = await observe(admin, sqsAdmin, env.tableName, setup.tableName, prefix, queueUrl, ledgerId);
  const differential = control ? [] : await pathsAgree(admin, env.tableName, setup.tableName, `${prefix}#diff`);
  sqsAdmin.destroy();
  admin.destroy();
  for (const r of roles.values()) r.p.sqs.destroy();

  return run.finish({
    control: control !== undefined,
    invariants: (history) => [...bankAnomalies(history, transfers, observed, accounts.length * OPENING_BALANCE), ...differential],
    stats: (history) => {
      const ok = history.filter((op) => op.outcome === "ok" && op.f === "transfer").map((op) => op.output as TransactionResult);
      return {
        transfers: history.filter((op) => op.f === "transfer").length,
        committed: ok.filter((r) => r.outcome === "committed").length,
        aborted: ok.filter((r) => r.outcome === "aborted").length,
        fastPath: ok.filter((r) => r.path === "fast").length,
        duplicateRuns: history.filter((op) => op.f === "transfer-duplicate").length,
        ...stats,
        // Exhaustiveness: protocol transfers have 1 to 3 branches, with 2b + 5 crash points each.
        crashPointsHit: crashedAt.size,
        crashPointsTotal: [1, 2, 3].reduce((sum, b) => sum + crashPoints(b).length, 0),
      };
    },
  });
}

/** A coordinator in a child process (bank-process.ts), driven over its stdin and stdout. */
interface BankProcess {
  /** True once it is ready; false if it died first. */
  readonly ready: Promise<boolean>;
  readonly exited: Promise<void>;
  readonly alive: boolean;
  /** Runs one transfer in the child; rejects if the child dies first (the outcome is unknown). */
  run(t: Transfer): Promise<TransactionResult>;
  /** SIGKILL; false if it had already exited. */
  kill(): boolean;
}

function startBankProcess(config: BankProcessConfig): BankProcess {
  const waiting = new Map<string, { resolve: (r: TransactionResult) => void; reject: (e: Error) => void }>();
  type Message = { ready?: true; txId?: string; result?: TransactionResult; error?: { name: string; message: string } };
  const child = startWorkerChild<Message>(
    "bank-process",
    config,
    (m) => m.ready === true,
    (m) => {
      const w = waiting.get(m.txId ?? "");
      waiting.delete(m.txId ?? "");
      if (m.result) w?.resolve(m.result);
      else if (m.error) w?.reject(Object.assign(new Error(m.error.message), { name: m.error.name }));
    },
    () => {
      for (const w of waiting.values()) w.reject(Object.assign(new Error("the coordinator process was killed"), { name: "ProcessKilled" }));
      waiting.clear();
    },
  );
  return {
    ready: child.ready,
    exited: child.closed,
    get alive() {
      return child.alive;
    },
    run: (t) =>
      new Promise((resolve, reject) => {
        waiting.set(t.txId, { resolve, reject });
        if (child.send(t)) return;
        waiting.delete(t.txId);
        reject(new Error("the coordinator process is gone"));
      }),
    kill: () => child.kill(),
  };
}

interface Observed {
  /** Decision per transaction id (absent: no record, presumed abort). */
  readonly decisions: Map<string, { status: string; done: boolean }>;
  readonly balances: Map<string, number>;
  /** Items still locked by a transaction, ledger entries still pending. */
  readonly reservations: string[];
  readonly receipts: Set<string>;
  readonly ledgerApplied: Map<string, number>;
  readonly messages: Map<string, number>;
}

async function scanAll(db: DynamoDBClient, table: string, prefix: string): Promise<Record<string, AttributeValue>[]> {
  const items: Record<string, AttributeValue>[] = [];
  for await (const page of paginateScan({ client: db }, { TableName: table, FilterExpression: "begins_with(pk, :p)", ExpressionAttributeValues: { ":p": stringValue(prefix) }, ConsistentRead: true })) {
    items.push(...(page.Items ?? []));
  }
  return items;
}

async function observe(db: DynamoDBClient, sqs: SQSClient, table: string, txnTable: string, prefix: string, queueUrl: string, ledgerId: string): Promise<Observed> {
  const decisions = new Map<string, { status: string; done: boolean }>();
  for (const item of await scanAll(db, txnTable, `tx#${prefix}#`)) decisions.set(item["pk"]!.S!.slice(3), { status: item["status"]?.S ?? "", done: item["done"]?.BOOL ?? false });
  const balances = new Map<string, number>();
  const reservations: string[] = [];
  const receipts = new Set<string>();
  const ledgerApplied = new Map<string, number>();
  for (const item of await scanAll(db, table, prefix)) {
    const pk = item["pk"]!.S!;
    if (item["fp_tx"]) reservations.push(`${pk} locked by ${item["fp_tx"].S}`);
    if (pk.includes("#receipt#")) receipts.add(pk.slice(pk.indexOf("#receipt#") + "#receipt#".length));
    else if (item["balance"]) balances.set(pk, Number(item["balance"].N));
    for (const tx of Object.keys(item["pending"]?.M ?? {})) reservations.push(`${pk} pending ${tx}`);
    if (item["available"] && item["available"].N !== item["balance"]?.N) reservations.push(`${pk} available ${item["available"].N} ≠ balance ${item["balance"]?.N}`);
    for (const tx of item["applied"]?.L ?? []) ledgerApplied.set(tx.S!, (ledgerApplied.get(tx.S!) ?? 0) + 1);
  }
  for (const item of await scanAll(db, txnTable, `vote#${ledgerId}#`)) {
    if (item["state"]?.S === "preparing" || item["state"]?.S === "prepared") reservations.push(`${item["pk"]!.S} is ${item["state"].S}`);
  }
  // The DynamoDB participant's ledgers: after recovery, none may still be prepared.
  for (const item of await scanAll(db, txnTable, `part#dynamodb:${table}#${prefix}#`)) {
    if (item["state"]?.S === "prepared") reservations.push(`${item["pk"]!.S} is still prepared`);
  }
  const messages = new Map<string, number>();
  for (let empty = 0; empty < 2; ) {
    const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, VisibilityTimeout: 60 }));
    if (!out.Messages?.length) {
      empty++;
      continue;
    }
    for (const m of out.Messages) {
      const txId = (JSON.parse(m.Body ?? "{}") as { txId?: string }).txId ?? "?";
      messages.set(txId, (messages.get(txId) ?? 0) + 1);
    }
    await sqs.send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: out.Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }));
  }
  return { decisions, balances, reservations, receipts, ledgerApplied, messages };
}

function bankAnomalies(history: readonly Operation[], transfers: Map<string, Transfer>, o: Observed, total: number): Anomaly[] {
  const anomalies: Anomaly[] = [];
  const opOf = new Map(history.filter((op) => op.f === "transfer").map((op) => [(op.input as { txId: string }).txId, op]));
  const runsOf = new Map<string, Operation[]>();
  for (const op of history) {
    const txId = (op.input as { txId: string }).txId;
    runsOf.set(txId, [...(runsOf.get(txId) ?? []), op]);
  }
  const add = (kind: string, key: string, detail: string, txId?: string) => anomalies.push({ kind, key, detail, operations: txId && opOf.get(txId) ? [opOf.get(txId)!] : [] });
  for (const t of transfers.values()) {
    const record = o.decisions.get(t.txId);
    const committed = record?.status === "committed";
    if (record && (record.status === "preparing" || !record.done)) add("in-doubt", t.txId, `still ${record.status}${record.done ? "" : ", unfinished"} after recovery`, t.txId);
    const effects: [string, boolean][] = [];
    if (t.from.holder === "accounts" || t.to.holder === "accounts") effects.push(["accounts", o.receipts.has(t.txId)]);
    if (t.from.holder === "ledger" || t.to.holder === "ledger") effects.push(["ledger", (o.ledgerApplied.get(t.txId) ?? 0) > 0]);
    if (t.announce) effects.push(["outbox", (o.messages.get(t.txId) ?? 0) > 0]);
    const wrong = effects.filter(([, applied]) => applied !== committed);
    if (wrong.length > 0) add("atomicity", t.txId, `logged ${record?.status ?? "nothing (presumed abort)"}, but ${wrong.map(([p, a]) => `${p} ${a ? "applied" : "did not apply"}`).join(", ")}${t.crash ? ` (coordinator crashed at ${t.crash})` : ""}`, t.txId);
    if ((o.messages.get(t.txId) ?? 0) > 1) add("duplicate-effect", t.txId, `outbox sent ${o.messages.get(t.txId)} messages`, t.txId);
    if ((o.ledgerApplied.get(t.txId) ?? 0) > 1) add("duplicate-effect", t.txId, `ledger applied it ${o.ledgerApplied.get(t.txId)} times`, t.txId);
    for (const op of runsOf.get(t.txId) ?? []) {
      if (op.outcome === "ok" && (op.output as TransactionResult).outcome !== (record?.status ?? "aborted")) add("outcome-mismatch", t.txId, `${op.f === "transfer" ? "run" : "a duplicate run"} said ${(op.output as TransactionResult).outcome}, the log holds ${record?.status ?? "nothing"}`, t.txId);
    }
  }
  for (const r of o.reservations) add("reservation-left", r.split(" ")[0]!, r);
  const sum = [...o.balances.values()].reduce((a, b) => a + b, 0);
  if (sum !== total) add("conservation", "bank", `balances sum to ${sum}, opened with ${total}`);
  for (const [key, balance] of o.balances) if (balance < 0) add("negative-balance", key, `balance ${balance}`);
  return anomalies;
}

/**
 * The same 30 transfers, one at a time and without faults, on two copies of the same
 * accounts: once on the fast path, once through the protocol. Outcomes and balances must match.
 */
async function pathsAgree(db: DynamoDBClient, table: string, txnTable: string, prefix: string): Promise<Anomaly[]> {
  const participant = new DynamoDbParticipant({ tableName: table, dynamodb: db });
  const paths = { fast: new Coordinator({ tableName: txnTable, dynamodb: db }), protocol: new Coordinator({ tableName: txnTable, dynamodb: db, fastPath: false }) };
  const results: Record<string, { outcomes: string[]; balances: number[] }> = {};
  for (const [name, coordinator] of Object.entries(paths)) {
    const keys = [0, 1, 2].map((i) => `${prefix}#${name}#${i}`);
    for (const key of keys) await db.send(new PutItemCommand({ TableName: table, Item: { pk: stringValue(key), balance: numberValue(50) } }));
    const outcomes: string[] = [];
    for (let i = 0; i < 30; i++) {
      const [from, to, amount] = [keys[i % 3]!, keys[(i + 1) % 3]!, 7 + ((i * 13) % 40)];
      const r = await coordinator.run(`${prefix}#${name}#tx${i}`, [
        branch(participant, [
          { type: "update", key: { pk: from }, add: { balance: -amount }, condition: { expression: "balance >= :a", values: { ":a": amount } } },
          { type: "update", key: { pk: to }, add: { balance: amount } },
        ] satisfies DynamoWrite[]),
      ]);
      outcomes.push(`${r.outcome}/${r.path}`);
    }
    const balances: number[] = [];
    for (const key of keys) {
      const out = await db.send(new QueryCommand({ TableName: table, KeyConditionExpression: "pk = :k", ExpressionAttributeValues: { ":k": stringValue(key) }, ConsistentRead: true }));
      balances.push(Number(out.Items?.[0]?.["balance"]?.N));
    }
    results[name] = { outcomes: outcomes.map((x) => x.split("/")[0]!), balances };
    if (name === "fast" && outcomes.some((x) => !x.endsWith("/fast"))) return [{ kind: "path-disagreement", key: prefix, detail: "a DynamoDB-only transfer did not take the fast path", operations: [] }];
  }
  const same = JSON.stringify(results["fast"]) === JSON.stringify(results["protocol"]);
  return same ? [] : [{ kind: "path-disagreement", key: prefix, detail: `fast path ${JSON.stringify(results["fast"])} vs protocol ${JSON.stringify(results["protocol"])}`, operations: [] }];
}
