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
 * throttling and slow responses; phase-two messages are delivered again after a
 * transaction finished, and stale prepares arrive late. A recovery loop runs alongside.
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
 * Negative control `coordinator: "commit-before-log"`: commit is sent before the decision
 * is logged, so a crash in phase two leaves committed participants behind an abort.
 */
import { DynamoDBClient, paginateScan, PutItemCommand, QueryCommand, UpdateItemCommand, type AttributeValue } from "@aws-sdk/client-dynamodb";
import { CreateQueueCommand, DeleteMessageBatchCommand, ReceiveMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import { Coordinator, crashPoints, type CrashPoint, type TransactionResult } from "../../txn/coordinator.js";
import { DynamoDbParticipant, type DynamoWrite } from "../../txn/dynamodb.js";
import { CoordinatorCrashedError } from "../../txn/errors.js";
import { outboxParticipant } from "../../txn/outbox.js";
import { branch, defineParticipant, type Branch, type Participant } from "../../txn/participant.js";
import type { Anomaly } from "../invariants.js";
import type { Operation } from "../history.js";
import { pauseFor, startWorkload, type Worker, type WorkloadEnvironment, type WorkloadResult } from "./workers.js";

export interface BankWorkloadOptions {
  workers?: number;
  /** "commit-before-log": the negative control. */
  coordinator?: "correct" | "commit-before-log";
}

const ACCOUNTS_PER_PARTICIPANT = 4;
const OPENING_BALANCE = 100;
const TIMEOUT_MS = 400;

type Holder = "accounts" | "ledger";
interface Account {
  readonly holder: Holder;
  readonly key: string;
}
interface Transfer {
  readonly txId: string;
  readonly from: Account;
  readonly to: Account;
  readonly amount: number;
  readonly announce: boolean;
  readonly crash?: CrashPoint;
}
type LedgerInput = { account: string; delta: number };

const s = (v: string): AttributeValue => ({ S: v });
const n = (v: number): AttributeValue => ({ N: String(v) });

/** The ledger: an escrow participant. prepare moves a debit out of `available` into `pending.<tx>`. */
function ledgerParticipant(db: DynamoDBClient, table: string, txnTable: string, id: string): Participant<LedgerInput> {
  const update = async (key: string, expression: string, condition: string, values: Record<string, AttributeValue>, tx: string) =>
    db
      .send(new UpdateItemCommand({ TableName: table, Key: { pk: s(key) }, UpdateExpression: expression, ConditionExpression: condition, ExpressionAttributeNames: { "#tx": tx }, ExpressionAttributeValues: values }))
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
      const reserved = await update(account, "SET pending.#tx = :delta, available = available - :need", "attribute_not_exists(pending.#tx) AND available >= :need", { ":delta": n(delta), ":need": n(need) }, tx.txId);
      if (reserved) return true;
      return (await update(account, "SET pending.#tx = pending.#tx", "attribute_exists(pending.#tx)", {}, tx.txId)) || "insufficient funds";
    },
    async commit(tx, { account, delta }) {
      await update(account, "SET balance = balance + :delta, available = available + :credit, applied = list_append(applied, :tx) REMOVE pending.#tx", "attribute_exists(pending.#tx)", { ":delta": n(delta), ":credit": n(Math.max(0, delta)), ":tx": { L: [s(tx.txId)] } }, tx.txId);
    },
    async abort(tx, { account, delta }) {
      await update(account, "SET available = available + :need REMOVE pending.#tx", "attribute_exists(pending.#tx)", { ":need": n(Math.max(0, -delta)) }, tx.txId);
    },
  });
}

export async function runBankWorkload(env: WorkloadEnvironment, options: BankWorkloadOptions = {}): Promise<WorkloadResult> {
  const setup = env.txn;
  if (!setup) throw new TypeError("the bank workload needs env.txn (transaction table, SQS configuration)");
  const control = options.coordinator === "commit-before-log";
  const name = control ? "bank, commit before log" : "bank";
  const run = startWorkload(env, name, (options.workers ?? 4) + 1);
  const prefix = `bank#${env.runId}${control ? "#control" : ""}`;
  const { recorder } = run;
  const admin = new DynamoDBClient(env.dynamodb); // no faults: set-up and the final observation
  const sqsAdmin = new SQSClient(setup.sqs);
  const queueUrl = (await sqsAdmin.send(new CreateQueueCommand({ QueueName: `bank-${env.runId}${control ? "-control" : ""}.fifo`.replace(/[^A-Za-z0-9_.-]/g, "-"), Attributes: { FifoQueue: "true" } }))).QueueUrl!;
  const ledgerId = `ledger-${env.runId}${control ? "-control" : ""}`;
  const accounts: Account[] = (["accounts", "ledger"] as const).flatMap((holder) => Array.from({ length: ACCOUNTS_PER_PARTICIPANT }, (_, i) => ({ holder, key: `${prefix}#${holder}#${i}` })));
  for (const a of accounts) {
    await admin.send(
      new PutItemCommand({ TableName: env.tableName, Item: { pk: s(a.key), balance: n(OPENING_BALANCE), ...(a.holder === "ledger" ? { available: n(OPENING_BALANCE), pending: { M: {} }, applied: { L: [] } } : {}) } }),
    );
  }

  /** A worker's participants, on its own faulty clients. */
  const participantsOf = (w: Worker) => {
    const sqs = new SQSClient(setup.sqs);
    w.schedule.attach(sqs);
    return {
      accounts: new DynamoDbParticipant({ tableName: env.tableName, dynamodb: w.dynamodb }),
      ledger: ledgerParticipant(w.dynamodb, env.tableName, setup.tableName, ledgerId),
      outbox: outboxParticipant({ queueUrl, sqs, tableName: setup.tableName, dynamodb: w.dynamodb }),
      sqs,
    };
  };
  const writesOf = (t: Transfer, holder: Holder): DynamoWrite[] => [
    ...(t.from.holder === holder ? [{ type: "update" as const, key: { pk: t.from.key }, add: { balance: -t.amount }, condition: { expression: "balance >= :amount", values: { ":amount": t.amount } } }] : []),
    ...(t.to.holder === holder ? [{ type: "update" as const, key: { pk: t.to.key }, add: { balance: t.amount } }] : []),
    { type: "put" as const, key: { pk: `${prefix}#receipt#${t.txId}` }, item: { amount: t.amount }, ifAbsent: true },
  ];
  const ledgerInputs = (t: Transfer): LedgerInput[] => [
    ...(t.from.holder === "ledger" ? [{ account: t.from.key, delta: -t.amount }] : []),
    ...(t.to.holder === "ledger" ? [{ account: t.to.key, delta: t.amount }] : []),
  ];
  const branchesOf = (t: Transfer, p: ReturnType<typeof participantsOf>, lossy: Participant<LedgerInput>): Branch[] => {
    const out: Branch[] = [];
    if (t.from.holder === "accounts" || t.to.holder === "accounts") out.push(branch(p.accounts, writesOf(t, "accounts")));
    // A same-ledger transfer is one branch with a net delta of zero: model it as one debit-and-credit entry.
    const entries = ledgerInputs(t);
    if (entries.length === 2) out.push(branch(lossy, { account: entries[0]!.account, delta: 0 }));
    else if (entries.length === 1) out.push(branch(lossy, entries[0]!));
    if (t.announce) out.push(branch(p.outbox, { body: { txId: t.txId, amount: t.amount }, groupId: "bank" }));
    return out;
  };
  /** The ledger as seen through a flaky network: sometimes a yes vote is lost on its way back. */
  const lossyLedger = (w: Worker, ledger: Participant<LedgerInput>): Participant<LedgerInput> => ({
    id: ledger.id,
    prepare: async (tx, input) => {
      const vote = await ledger.prepare(tx, input);
      if (vote.vote === "yes" && w.random.chance(0.05)) {
        stats.lostVotes++;
        throw new Error("participant crashed after voting yes");
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
  let counter = 0;
  const cycle = new Map<number, number>();
  const stats = { crashed: 0, duplicatePhaseTwo: 0, stalePrepares: 0, lostVotes: 0, recoveredAborted: 0, recoveredRedriven: 0 };
  const recoveryWorker = run.workers[0]!;
  const recoveryCoordinator = (db: DynamoDBClient, p: ReturnType<typeof participantsOf>) => new Coordinator({ tableName: setup.tableName, dynamodb: db, sqs: p.sqs, participants: [p.ledger, p.outbox, p.accounts], phaseTwoTimeoutMs: 2000 });

  const roles = new Map(
    run.workers.map((w) => {
      const p = participantsOf(w);
      const ledger = lossyLedger(w, p.ledger);
      const coordinator = new Coordinator({
        tableName: setup.tableName,
        dynamodb: w.dynamodb,
        sqs: p.sqs,
        participants: [p.ledger, p.outbox],
        timeoutMs: TIMEOUT_MS,
        phaseTwoTimeoutMs: 2000,
        crashAt: (point, txId) => crashPlan.get(txId) === point,
        unsafeCommitBeforeDecision: control,
      });
      return [w.id, { p, ledger, coordinator }] as const;
    }),
  );

  await run.loop(async (w) => {
    const { p, ledger, coordinator } = roles.get(w.id)!;
    if (w === recoveryWorker) {
      // Recovery alongside the live coordinators, as the scheduled function would.
      const report = await recoveryCoordinator(w.dynamodb, p).recover({ prefix: `${prefix}#` }).catch(() => undefined);
      stats.recoveredAborted += report?.aborted ?? 0;
      stats.recoveredRedriven += report?.redriven ?? 0;
      await pauseFor(300);
      return;
    }
    const from = w.random.pick(accounts);
    let to = w.random.pick(accounts);
    while (to === from) to = w.random.pick(accounts);
    const txId = `${prefix}#tx${counter++}`;
    const draft = { txId, from, to, amount: w.random.int(1, 40), announce: w.random.chance(0.5) };
    const branches = branchesOf(draft, p, ledger);
    const protocol = branches.some((b) => b.participant !== p.accounts);
    let crash: CrashPoint | undefined;
    if (protocol) {
      // Cycle deterministically through "no crash" and every crash point for this many branches.
      const points = crashPoints(branches.length);
      const k = cycle.get(branches.length) ?? 0;
      cycle.set(branches.length, k + 1);
      crash = k % 2 === 0 ? undefined : points[((k - 1) / 2) % points.length];
      if (crash) crashPlan.set(txId, crash);
    }
    const transfer: Transfer = { ...draft, ...(crash ? { crash } : {}) };
    transfers.set(txId, transfer);
    const result = await recorder.record({ process: w.id, key: "bank", f: "transfer", input: { txId, from: from.key, to: to.key, amount: transfer.amount, crash } }, () => coordinator.run(txId, branches));
    if (result.outcome !== "ok") {
      if (result.error instanceof CoordinatorCrashedError) {
        stats.crashed++;
        crashedAt.add(`${branches.length}/${result.error.point}`);
      }
      return;
    }
    const outcome = (result.output as TransactionResult).outcome;
    // Duplicate and late messages after the fact: they must change nothing.
    if (protocol && w.random.chance(0.15)) {
      const b = w.random.pick(branches);
      // As the coordinator would send them: with the decision log at hand.
      const tx = { txId, deadline: Date.now() + TIMEOUT_MS, decisions: coordinator.log };
      stats.duplicatePhaseTwo++;
      await (outcome === "committed" ? b.participant.commit(tx, b.input) : b.participant.abort(tx, b.input)).catch(() => undefined);
      if (w.random.chance(0.3)) {
        stats.stalePrepares++;
        await b.participant.prepare(tx, b.input).catch(() => undefined);
      }
    }
    await pauseFor(w.random.int(0, 10));
  });

  // Quiesce: faults off everywhere, then recover until nothing is in doubt.
  for (const w of run.workers) w.schedule.disable();
  const cleanup = recoveryCoordinator(admin, roles.get(recoveryWorker.id)!.p);
  // Let prepares still in flight (SDK retries after a coordinator gave up on them) land and confirm.
  await pauseFor(TIMEOUT_MS + 2000);
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
    control,
    invariants: (history) => [...bankAnomalies(history, transfers, observed, accounts.length * OPENING_BALANCE), ...differential],
    stats: (history) => {
      const ok = history.filter((op) => op.outcome === "ok" && op.f === "transfer").map((op) => op.output as TransactionResult);
      return {
        transfers: history.filter((op) => op.f === "transfer").length,
        committed: ok.filter((r) => r.outcome === "committed").length,
        aborted: ok.filter((r) => r.outcome === "aborted").length,
        fastPath: ok.filter((r) => r.path === "fast").length,
        ...stats,
        // Exhaustiveness: protocol transfers have 1 to 3 branches, with 2b + 5 crash points each.
        crashPointsHit: crashedAt.size,
        crashPointsTotal: [1, 2, 3].reduce((sum, b) => sum + crashPoints(b).length, 0),
      };
    },
  });
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
  for await (const page of paginateScan({ client: db }, { TableName: table, FilterExpression: "begins_with(pk, :p)", ExpressionAttributeValues: { ":p": s(prefix) }, ConsistentRead: true })) {
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
    const op = opOf.get(t.txId);
    if (op?.outcome === "ok" && (op.output as TransactionResult).outcome !== (record?.status ?? "aborted")) add("outcome-mismatch", t.txId, `run said ${(op.output as TransactionResult).outcome}, the log holds ${record?.status ?? "nothing"}`, t.txId);
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
    for (const key of keys) await db.send(new PutItemCommand({ TableName: table, Item: { pk: s(key), balance: n(50) } }));
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
      const out = await db.send(new QueryCommand({ TableName: table, KeyConditionExpression: "pk = :k", ExpressionAttributeValues: { ":k": s(key) }, ConsistentRead: true }));
      balances.push(Number(out.Items?.[0]?.["balance"]?.N));
    }
    results[name] = { outcomes: outcomes.map((x) => x.split("/")[0]!), balances };
    if (name === "fast" && outcomes.some((x) => !x.endsWith("/fast"))) return [{ kind: "path-disagreement", key: prefix, detail: "a DynamoDB-only transfer did not take the fast path", operations: [] }];
  }
  const same = JSON.stringify(results["fast"]) === JSON.stringify(results["protocol"]);
  return same ? [] : [{ kind: "path-disagreement", key: prefix, detail: `fast path ${JSON.stringify(results["fast"])} vs protocol ${JSON.stringify(results["protocol"])}`, operations: [] }];
}
