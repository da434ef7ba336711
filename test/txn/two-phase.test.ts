/**
 * Two-phase commit against DynamoDB Local and the SQS emulator: commit and abort across a
 * DynamoDB participant, a defineParticipant ledger and an SQS outbox; the fast path;
 * idempotent run; out-of-order messages; locks of dead coordinators settled by the next
 * transaction; a coordinator killed at every protocol step, then recovery; the operator
 * override.
 */
import { GetItemCommand, PutItemCommand, ScanCommand, UpdateItemCommand, type DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { CreateQueueCommand, ReceiveMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RequestCounter } from "../../lib/check/middleware.js";
import { Coordinator, DecisionConflictError, DynamoDbParticipant, InvalidArgumentError, ProtocolViolationError, TransactionTimeoutError, branch, defineParticipant, outboxParticipant, type DynamoWrite, type Participant } from "../../lib/index.js";
import { CoordinatorCrashedError } from "../../lib/advanced.js";
import { crashPoints } from "../../lib/txn/crash-points.js";
import { dynamoDbClient, lockTable, sqsClient, txnTable } from "../support/cloud.js";

let db: DynamoDBClient;
let sqs: SQSClient;
let queueUrl: string;
const run = Date.now().toString(36);
let n = 0;
const fresh = (what: string) => `t${run}-${what}-${n++}`;
/** Recovery of this file's transactions only: other suites share the table. */
const mine = { prefix: `t${run}-` };

beforeAll(async () => {
  db = dynamoDbClient();
  sqs = sqsClient();
  queueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: `txn-outbox-${run}.fifo`, Attributes: { FifoQueue: "true" } }))).QueueUrl!;
});
afterAll(() => {
  db.destroy();
  sqs.destroy();
});

async function balance(key: string): Promise<{ balance?: number; locked?: string; exists: boolean }> {
  const { Item } = await db.send(new GetItemCommand({ TableName: lockTable(), Key: { pk: { S: key } }, ConsistentRead: true }));
  return { exists: !!Item, ...(Item?.["balance"]?.N ? { balance: Number(Item["balance"].N) } : {}), ...(Item?.["fp_tx"]?.S ? { locked: Item["fp_tx"].S } : {}) };
}

async function openAccount(key: string, amount: number) {
  await db.send(new PutItemCommand({ TableName: lockTable(), Item: { pk: { S: key }, balance: { N: String(amount) } } }));
}

const debit = (key: string, amount: number): DynamoWrite => ({ type: "update", key: { pk: key }, add: { balance: -amount }, condition: { expression: "balance >= :amount", values: { ":amount": amount } } });
const credit = (key: string, amount: number): DynamoWrite => ({ type: "update", key: { pk: key }, add: { balance: amount } });

/** A participant made with defineParticipant: a ledger that reserves by writing a hold item per transaction. */
function ledger(id: string): Participant<{ account: string; amount: number }> {
  const holdKey = (txId: string) => ({ pk: { S: `hold#${id}#${txId}` } });
  /** Moves the hold from one state to another, once (a repeat finds it moved: idempotent). */
  const moveHold = async (txId: string, from: string, to: string): Promise<void> => {
    await db
      .send(
        new UpdateItemCommand({
          TableName: lockTable(),
          Key: holdKey(txId),
          UpdateExpression: "SET #state = :to",
          ConditionExpression: "#state = :from",
          ExpressionAttributeNames: { "#state": "state" },
          ExpressionAttributeValues: { ":to": { S: to }, ":from": { S: from } },
        }),
      )
      .catch(() => undefined);
  };
  return defineParticipant({
    id,
    tableName: txnTable(),
    dynamodb: db,
    async prepare(tx, input) {
      await db.send(new PutItemCommand({ TableName: lockTable(), Item: { ...holdKey(tx.txId), account: { S: input.account }, amount: { N: String(input.amount) }, state: { S: "held" } } }));
      return true;
    },
    commit: (tx) => moveHold(tx.txId, "held", "applied"),
    abort: (tx) => moveHold(tx.txId, "held", "released"),
  });
}

async function holdState(id: string, txId: string): Promise<string | undefined> {
  const { Item } = await db.send(new GetItemCommand({ TableName: lockTable(), Key: { pk: { S: `hold#${id}#${txId}` } }, ConsistentRead: true }));
  return Item?.["state"]?.S;
}

async function outboxMessages(): Promise<string[]> {
  const bodies: string[] = [];
  for (let i = 0; i < 5; i++) {
    const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, MessageAttributeNames: ["All"] }));
    if (!out.Messages?.length) break;
    bodies.push(...out.Messages.map((m) => m.Body ?? ""));
  }
  return bodies;
}

describe("two-phase commit", () => {
  it("commits a transfer across a DynamoDB participant, a defined participant and an SQS outbox, and aborts one whose condition fails", async () => {
    const coordinator = new Coordinator({ tableName: txnTable(), dynamodb: db, sqs });
    const accounts = new DynamoDbParticipant({ tableName: lockTable(), dynamodb: db });
    const book = ledger(fresh("ledger"));
    const outbox = outboxParticipant({ queueUrl, sqs, tableName: txnTable(), dynamodb: db });
    const [a, b] = [fresh("acct"), fresh("acct")];
    await openAccount(a, 100);
    await openAccount(b, 0);

    const ok = fresh("tx");
    const result = await coordinator.run(ok, [branch(accounts, [debit(a, 30), credit(b, 30)]), branch(book, { account: a, amount: 30 }), branch(outbox, { body: { transfer: ok } })]);
    expect(result).toMatchObject({ outcome: "committed", path: "protocol", acknowledged: true, duplicate: false });
    expect(await balance(a)).toEqual({ exists: true, balance: 70 });
    expect(await balance(b)).toEqual({ exists: true, balance: 30 });
    expect(await holdState(book.id, ok)).toBe("applied");
    expect((await coordinator.status(ok))).toMatchObject({ status: "committed", done: true });

    const bad = fresh("tx");
    const refused = await coordinator.run(bad, [branch(accounts, [debit(a, 500), credit(b, 500)]), branch(book, { account: a, amount: 500 }), branch(outbox, { body: { transfer: bad } })]);
    expect(refused).toMatchObject({ outcome: "aborted", acknowledged: true });
    expect(refused.reason).toMatch(/condition does not hold/);
    expect(await balance(a)).toEqual({ exists: true, balance: 70 });
    expect(await holdState(book.id, bad)).toBe("released");

    const sent = await outboxMessages();
    expect(sent.filter((m) => m.includes(ok))).toHaveLength(1);
    expect(sent.filter((m) => m.includes(bad))).toHaveLength(0);
  });

  it("is idempotent by transaction id, and refuses an id reused for different work", async () => {
    const coordinator = new Coordinator({ tableName: txnTable(), dynamodb: db, fastPath: false });
    const accounts = new DynamoDbParticipant({ tableName: lockTable(), dynamodb: db });
    const a = fresh("acct");
    await openAccount(a, 10);
    const txId = fresh("tx");
    expect(await coordinator.run(txId, [branch(accounts, [credit(a, 5)])])).toMatchObject({ outcome: "committed", duplicate: false });
    expect(await coordinator.run(txId, [branch(accounts, [credit(a, 5)])])).toMatchObject({ outcome: "committed", duplicate: true });
    expect((await balance(a)).balance).toBe(15);
    await expect(coordinator.run(txId, [branch(accounts, [credit(a, 6)])])).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it("takes the fast path automatically: one TransactWriteItems, idempotent, aborts recorded", async () => {
    const coordinator = new Coordinator({ tableName: txnTable(), dynamodb: db });
    const accounts = new DynamoDbParticipant({ tableName: lockTable(), dynamodb: db });
    const [a, b] = [fresh("acct"), fresh("acct")];
    await openAccount(a, 50);
    await openAccount(b, 0);
    const requests = new RequestCounter();
    const detach = requests.attach(db);
    const txId = fresh("tx");
    const result = await coordinator.run(txId, [branch(accounts, [debit(a, 20), credit(b, 20)])]);
    detach();
    expect(result).toMatchObject({ outcome: "committed", path: "fast" });
    expect([...requests.byCommand]).toEqual([["TransactWriteItemsCommand", 1]]);
    expect(await coordinator.run(txId, [branch(accounts, [debit(a, 20), credit(b, 20)])])).toMatchObject({ outcome: "committed", duplicate: true });
    expect((await balance(a)).balance).toBe(30);

    const tooMuch = fresh("tx");
    expect(await coordinator.run(tooMuch, [branch(accounts, [debit(a, 999), credit(b, 999)])])).toMatchObject({ outcome: "aborted", path: "fast" });
    await openAccount(a, 5000); // now it would succeed, but the id's outcome is already logged
    expect(await coordinator.run(tooMuch, [branch(accounts, [debit(a, 999), credit(b, 999)])])).toMatchObject({ outcome: "aborted", duplicate: true });
    expect((await balance(a)).balance).toBe(5000);
  });

  it("does not apply a fast-path write to an item a protocol transaction holds", async () => {
    const protocol = new Coordinator({ tableName: txnTable(), dynamodb: db, fastPath: false }, { crashAt: (p) => p === "decide" });
    const fast = new Coordinator({ tableName: txnTable(), dynamodb: db });
    const accounts = new DynamoDbParticipant({ tableName: lockTable(), dynamodb: db });
    const a = fresh("acct");
    await openAccount(a, 10);
    await expect(protocol.run(fresh("tx"), [branch(accounts, [credit(a, 1)])], { timeoutMs: 60_000 })).rejects.toBeInstanceOf(CoordinatorCrashedError);
    expect((await balance(a)).locked).toBeDefined();
    expect(await fast.run(fresh("tx"), [branch(accounts, [credit(a, 100)])])).toMatchObject({ outcome: "aborted", path: "fast" });
    expect((await balance(a)).balance).toBe(10);
  });

  it("handles messages out of order: an abort before its prepare makes the prepare vote no; commit without a yes vote is refused", async () => {
    // Driven by hand, without a coordinator: the participant is told where its ledger lives.
    const accounts = new DynamoDbParticipant({ tableName: lockTable(), dynamodb: db, transactionTable: txnTable() });
    const book = ledger(fresh("ledger"));
    const a = fresh("acct");
    await openAccount(a, 10);
    const tx = { txId: fresh("tx"), deadline: Date.now() + 10_000 };
    await book.abort(tx, { account: a, amount: 1 });
    expect(await book.prepare(tx, { account: a, amount: 1 })).toMatchObject({ vote: "no" });
    expect(await holdState(book.id, tx.txId)).toBeUndefined(); // the late prepare reserved nothing
    await expect(book.commit(tx, { account: a, amount: 1 })).rejects.toBeInstanceOf(ProtocolViolationError);

    // The DynamoDB participant: abort first is a no-op, a prepare after the deadline votes no.
    await accounts.abort(tx, [credit(a, 1)]);
    expect(await accounts.prepare({ ...tx, deadline: Date.now() - 1 }, [credit(a, 1)])).toMatchObject({ vote: "no" });
    // Duplicate prepare and duplicate commit apply once.
    const t2 = { txId: fresh("tx"), deadline: Date.now() + 10_000 };
    expect(await accounts.prepare(t2, [credit(a, 7)])).toEqual({ vote: "yes" });
    expect(await accounts.prepare(t2, [credit(a, 7)])).toEqual({ vote: "yes" });
    await accounts.commit(t2, [credit(a, 7)]);
    await accounts.commit(t2, [credit(a, 7)]);
    expect(await accounts.prepare(t2, [credit(a, 7)])).toMatchObject({ vote: "no" }); // a stale prepare after commit
    expect(await balance(a)).toEqual({ exists: true, balance: 17 });
  });

  it("settles a dead coordinator's locks when the next transaction needs the item", async () => {
    const dying = new Coordinator({ tableName: txnTable(), dynamodb: db, fastPath: false }, { crashAt: (p) => p === "decide" });
    const next = new Coordinator({ tableName: txnTable(), dynamodb: db, fastPath: false });
    const accounts = new DynamoDbParticipant({ tableName: lockTable(), dynamodb: db });
    const a = fresh("acct");
    await openAccount(a, 10);
    const stuck = fresh("tx");
    await expect(dying.run(stuck, [branch(accounts, [credit(a, 1)])], { timeoutMs: 100 })).rejects.toBeInstanceOf(CoordinatorCrashedError);
    await new Promise((r) => setTimeout(r, 150));
    expect(await next.run(fresh("tx"), [branch(accounts, [credit(a, 5)])])).toMatchObject({ outcome: "committed" });
    expect(await balance(a)).toEqual({ exists: true, balance: 15 });
    expect(await next.status(stuck)).toMatchObject({ status: "aborted" });
  });

  it("never applies a commit twice: a stale prepare after the commit locks nothing, a committed one still in phase two is applied once by whoever needs the item", async () => {
    const coordinator = new Coordinator({ tableName: txnTable(), dynamodb: db, fastPath: false });
    const accounts = new DynamoDbParticipant({ tableName: lockTable(), dynamodb: db, transactionTable: txnTable() });
    const a = fresh("acct");
    await openAccount(a, 0);
    const t = fresh("tx");
    await coordinator.run(t, [branch(accounts, [credit(a, 1)])]);
    await coordinator.run(fresh("tx"), [branch(accounts, [credit(a, 10)])]); // another transaction finishes on the item
    // A stale duplicate prepare of t, even with no decision log at hand, meets t's ledger and locks nothing.
    expect(await accounts.prepare({ txId: t, deadline: Date.now() + 10_000 }, [credit(a, 1)])).toMatchObject({ vote: "no" });
    expect((await balance(a)).locked).toBeUndefined();
    await accounts.commit({ txId: t, deadline: Date.now() + 10_000 }, [credit(a, 1)]); // a repeated commit: applied already, proven by the ledger
    expect(await coordinator.run(fresh("tx"), [branch(accounts, [credit(a, 100)])])).toMatchObject({ outcome: "committed" });
    expect(await balance(a)).toEqual({ exists: true, balance: 111 });

    // A committed transaction whose coordinator died in phase two: the next transaction that
    // needs the item applies its commit first (idempotent by its ledger), then goes ahead.
    const dying = new Coordinator({ tableName: txnTable(), dynamodb: db, fastPath: false, timeoutMs: 5000 }, { crashAt: (p) => p === "phase2:0" });
    const pending = fresh("tx");
    await expect(dying.run(pending, [branch(accounts, [credit(a, 1000)])])).rejects.toBeInstanceOf(CoordinatorCrashedError);
    expect((await balance(a)).locked).toBe(pending);
    expect(await coordinator.run(fresh("tx"), [branch(accounts, [credit(a, 5)])])).toMatchObject({ outcome: "committed" });
    expect(await balance(a)).toEqual({ exists: true, balance: 1116 });
    await coordinator.recover(mine); // finishes the dead coordinator's record; applies nothing twice
    expect(await balance(a)).toEqual({ exists: true, balance: 1116 });
  });

  it("a put that creates an item and is aborted leaves no trace; committed, it writes the item", async () => {
    const coordinator = new Coordinator({ tableName: txnTable(), dynamodb: db, fastPath: false });
    const accounts = new DynamoDbParticipant({ tableName: lockTable(), dynamodb: db });
    const book = ledger(fresh("ledger"));
    const a = fresh("acct");
    const refuse = defineParticipant({ id: fresh("refuser"), tableName: txnTable(), dynamodb: db, prepare: async () => "not today", commit: async () => undefined, abort: async () => undefined });
    expect(await coordinator.run(fresh("tx"), [branch(accounts, [{ type: "put", key: { pk: a }, item: { balance: 1 }, ifAbsent: true }]), branch(refuse, null)])).toMatchObject({ outcome: "aborted", reason: "not today" });
    expect(await balance(a)).toEqual({ exists: false });
    expect(await coordinator.run(fresh("tx"), [branch(accounts, [{ type: "put", key: { pk: a }, item: { balance: 1 }, ifAbsent: true }]), branch(book, { account: a, amount: 1 })])).toMatchObject({ outcome: "committed" });
    expect(await balance(a)).toEqual({ exists: true, balance: 1 });
  });
});

describe("timeouts", () => {
  it("gives up on a decision log that does not answer, with TransactionTimeoutError", async () => {
    // A server that accepts requests and never answers them.
    const silent = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const { port } = silent.address() as AddressInfo;
    const hung = dynamoDbClient({ endpoint: `http://127.0.0.1:${port}`, maxAttempts: 1 });
    const coordinator = new Coordinator({ tableName: txnTable(), dynamodb: hung, fastPath: false, requestTimeoutMs: 300 });
    const accounts = new DynamoDbParticipant({ tableName: lockTable(), dynamodb: db });
    const started = Date.now();
    const err = await coordinator.run(fresh("tx"), [branch(accounts, [credit(fresh("acct"), 1)])]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransactionTimeoutError);
    expect(err).toMatchObject({ step: "begin", timeoutMs: 300 });
    expect(Date.now() - started).toBeLessThan(3000);
    hung.destroy();
    silent.closeAllConnections();
    silent.close();
  });

  it("counts a participant that hangs in phase two as unacknowledged, and a hung prepare as a no vote", async () => {
    const never = new Promise<never>(() => undefined);
    const hangsOnCommit: Participant = { id: fresh("hangs-commit"), prepare: async () => ({ vote: "yes" }), commit: () => never, abort: async () => undefined };
    const coordinator = new Coordinator({ tableName: txnTable(), dynamodb: db, participants: [hangsOnCommit], phaseTwoTimeoutMs: 300, timeoutMs: 300 });
    const started = Date.now();
    expect(await coordinator.run(fresh("tx"), [branch(hangsOnCommit, null)])).toMatchObject({ outcome: "committed", acknowledged: false, pending: [hangsOnCommit.id] });
    const hangsOnPrepare: Participant = { id: fresh("hangs-prepare"), prepare: () => never, commit: async () => undefined, abort: async () => undefined };
    expect(await coordinator.run(fresh("tx"), [branch(hangsOnPrepare, null)])).toMatchObject({ outcome: "aborted", reason: "not every participant voted before the deadline", acknowledged: true });
    expect(Date.now() - started).toBeLessThan(3000);
  });
});

/** Waits (on the log's own deadline, not a guess) until recovery may look at the transaction. */
async function pastDeadline(coordinator: Coordinator, txId: string): Promise<void> {
  const record = await coordinator.status(txId);
  if (!record) return;
  while (Date.now() <= record.deadline) await new Promise((r) => setTimeout(r, record.deadline - Date.now() + 1));
}

describe("recovery", () => {
  /** Two accounts at two participants; the transfer is intended to commit. */
  async function setup() {
    const accounts = new DynamoDbParticipant({ tableName: lockTable(), dynamodb: db });
    const book = ledger(fresh("ledger"));
    const [a, b] = [fresh("acct"), fresh("acct")];
    await openAccount(a, 100);
    await openAccount(b, 0);
    return { accounts, book, a, b, branches: [branch(accounts, [debit(a, 10), credit(b, 10)]), branch(book, { account: b, amount: 10 })] };
  }

  it("leaves nothing in doubt and keeps every transaction atomic, whichever step the coordinator dies at", async () => {
    const points = crashPoints(2);
    const outcomes: Record<string, string> = {};
    for (const point of points) {
      const { book, a, b, branches } = await setup();
      const txId = fresh(`crash-${point}`);
      const coordinator = new Coordinator({ tableName: txnTable(), dynamodb: db, participants: [book], timeoutMs: 800 }, { crashAt: (p) => p === point });
      await expect(coordinator.run(txId, branches)).rejects.toBeInstanceOf(CoordinatorCrashedError);
      await pastDeadline(coordinator, txId);
      const recovery = new Coordinator({ tableName: txnTable(), dynamodb: db, participants: [book] }); // another process
      await recovery.recover(mine);
      const record = await recovery.status(txId);
      const decision = record?.status ?? "aborted"; // no record: presumed abort
      outcomes[point] = decision;
      expect(record?.done ?? true, point).toBe(true);
      const [ba, bb, hold] = [await balance(a), await balance(b), await holdState(book.id, txId)];
      expect(ba.locked, point).toBeUndefined();
      expect(bb.locked, point).toBeUndefined();
      if (decision === "committed") {
        expect([ba.balance, bb.balance, hold], point).toEqual([90, 10, "applied"]);
      } else {
        expect([ba.balance, bb.balance], point).toEqual([100, 0]);
        expect(hold === undefined || hold === "released", point).toBe(true);
      }
    }
    // Before the decision, presumed abort; after it, the logged commit is carried out.
    expect(outcomes).toEqual({
      begin: "aborted",
      "prepare:0": "aborted",
      "prepare:1": "aborted",
      "prepare:2": "aborted",
      decide: "aborted",
      "phase2:0": "committed",
      "phase2:1": "committed",
      "phase2:2": "committed",
      complete: "committed",
    });
  });

  it("negative control: a coordinator that commits before logging its decision is caught breaking atomicity", async () => {
    const { book, a, branches } = await setup();
    const txId = fresh("unsafe");
    const coordinator = new Coordinator({ tableName: txnTable(), dynamodb: db, participants: [book], timeoutMs: 800 }, { unsafeCommitBeforeDecision: true, crashAt: (p) => p === "phase2:1" });
    await expect(coordinator.run(txId, branches)).rejects.toBeInstanceOf(CoordinatorCrashedError);
    await pastDeadline(coordinator, txId);
    await new Coordinator({ tableName: txnTable(), dynamodb: db, participants: [book] }).recover(mine);
    // The first participant applied the debit, the log says aborted: exactly the anomaly verification must flag.
    expect((await coordinator.status(txId))?.status).toBe("aborted");
    expect((await balance(a)).balance).toBe(90);
  });

  it("lists in-doubt transactions; an operator can abort one (audited) but never overturn a commit", async () => {
    const { book, branches } = await setup();
    // A long deadline keeps every recovery away from it; list all unfinished ones to see it.
    const coordinator = new Coordinator({ tableName: txnTable(), dynamodb: db, participants: [book], timeoutMs: 600_000 }, { crashAt: (p) => p === "decide" });
    const stuck = fresh("stuck");
    await expect(coordinator.run(stuck, branches)).rejects.toBeInstanceOf(CoordinatorCrashedError);
    expect((await coordinator.listInDoubt({ ...mine })).map((r) => r.txId)).not.toContain(stuck); // not past its deadline
    expect((await coordinator.listInDoubt({ ...mine, staleAt: Infinity })).map((r) => r.txId)).toContain(stuck);
    const record = await coordinator.override(stuck, { action: "abort", operator: "alice", reason: "customer cancelled" });
    expect(record).toMatchObject({ status: "aborted", done: true });
    expect(record.audit).toEqual([expect.objectContaining({ operator: "alice", action: "abort", reason: "customer cancelled" })]);
    expect((await coordinator.listInDoubt({ ...mine, staleAt: Infinity })).map((r) => r.txId)).not.toContain(stuck);

    const committed = fresh("done");
    const other = await setup();
    await new Coordinator({ tableName: txnTable(), dynamodb: db }).run(committed, other.branches);
    await expect(coordinator.override(committed, { action: "abort", operator: "bob", reason: "oops" })).rejects.toBeInstanceOf(DecisionConflictError);
    await expect(coordinator.override(committed, { action: "abort", operator: "", reason: "x" })).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it("finishes phase two for a participant that was unreachable, once it is back", async () => {
    const { book, a, b, branches } = await setup();
    let down = true;
    const flaky: Participant = { id: fresh("flaky"), prepare: async () => ({ vote: "yes" }), commit: async () => { if (down) throw new Error("unreachable"); }, abort: async () => undefined };
    // A deadline long enough for a loaded machine; recovery looks only past it, so wait for it.
    const coordinator = new Coordinator({ tableName: txnTable(), dynamodb: db, participants: [book, flaky], phaseTwoTimeoutMs: 200, timeoutMs: 1500 });
    const txId = fresh("flaky");
    const result = await coordinator.run(txId, [...branches, branch(flaky, null)]);
    expect(result).toMatchObject({ outcome: "committed", acknowledged: false, pending: [flaky.id] });
    expect([(await balance(a)).balance, (await balance(b)).balance]).toEqual([90, 10]);
    const { deadline } = (await coordinator.status(txId))!;
    while (Date.now() <= deadline) await new Promise((r) => setTimeout(r, deadline - Date.now() + 1));
    expect((await coordinator.recover(mine)).transactions.find((t) => t.txId === txId)).toMatchObject({ action: "redriven", pending: [flaky.id] });
    down = false;
    expect((await coordinator.recover(mine)).transactions.find((t) => t.txId === txId)).toMatchObject({ action: "redriven", pending: [] });
    expect(await coordinator.status(txId)).toMatchObject({ status: "committed", done: true });
  });
});

it("no protocol bookkeeping is left on accounts after the suite's transactions", async () => {
  const out = await db.send(new ScanCommand({ TableName: lockTable(), FilterExpression: "begins_with(pk, :p) AND attribute_exists(fp_tx)", ExpressionAttributeValues: { ":p": { S: `t${run}-acct` } } }));
  // Only the deliberately stuck ones from the fast-path test may remain locked.
  expect((out.Items ?? []).length).toBeLessThanOrEqual(1);
});
