/**
 * Two-phase commit under the faults production adds on its own, as scripted interleavings
 * against DynamoDB Local: a transaction id run by two coordinators at once, a prepare whose
 * response is slow, a request that reaches DynamoDB after the client gave up on it (a
 * "ghost"), and phase-two messages delivered again. Every case ends with the effect applied
 * exactly as often as the logged decision says, and no lock left behind.
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { CreateQueueCommand, DeleteMessageBatchCommand, ReceiveMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { injectFaults } from "../../lib/check/middleware.js";
import { Coordinator, DynamoDbParticipant, InvalidArgumentError, TransactionTimeoutError, branch, defineParticipant, outboxParticipant, type TxContext } from "../../lib/index.js";
import { CoordinatorCrashedError, canonicalQueueUrl } from "../../lib/advanced.js";
import { databaseOf, sameDatabase } from "../../lib/txn/database.js";
import { dynamoDbClient, lockTable, sqsClient, txnTable } from "../support/cloud.js";
import { ghost, holdResponse, touches } from "../support/intercept.js";
import { txnScene } from "../support/txn.js";

const scene = txnScene("d");
const { fresh, mine, ownClient, account, open, credit, protocol, accountsOn, decisionsOn } = scene;
let sqs: SQSClient;
beforeAll(() => {
  sqs = sqsClient();
});
afterAll(() => sqs.destroy());

describe("two-phase commit with duplicate runs and late requests", () => {
  it("bug A: a slow prepare of one run does not undo the lock a second run of the same id committed on", async () => {
    const a = fresh("acct");
    await open(a, 100);
    const txId = fresh("tx");
    const slowClient = ownClient();
    // Run 1's lock lands, but its response is slow.
    const slow = holdResponse(slowClient, touches(lockTable()));
    const first = protocol(slowClient).run(txId, [branch(accountsOn(slowClient), [credit(a, 5)])]);
    await slow.held;
    // Run 2 of the same id prepares (meeting run 1's lock), logs commit, and dies before phase two.
    const second = protocol(ownClient(), {}, { crashAt: (p) => p === "phase2:0" });
    await expect(second.run(txId, [branch(accountsOn(scene.db), [credit(a, 5)])])).rejects.toBeInstanceOf(CoordinatorCrashedError);
    slow.release();
    expect(await first).toMatchObject({ outcome: "committed", acknowledged: true });
    expect(await account(a)).toEqual({ balance: 105, locked: undefined });
  });

  it("bug B: a prepare delivered after its commit, and after later transactions on the item, locks nothing and a repeated commit applies nothing", async () => {
    const a = fresh("acct");
    await open(a, 0);
    const txId = fresh("tx");
    const lateClient = ownClient();
    // Run 1's first lock request is held in the network; the SDK retries and the retry lands.
    const late = ghost(lateClient, touches(lockTable()));
    const participant = accountsOn(lateClient);
    const coordinator = protocol(lateClient);
    expect(await coordinator.run(txId, [branch(participant, [credit(a, 30)])])).toMatchObject({ outcome: "committed" });
    await late.lost;
    // Another transaction finishes on the item.
    expect(await protocol(scene.db).run(fresh("tx"), [branch(accountsOn(scene.db), [credit(a, 41)])])).toMatchObject({ outcome: "committed" });
    // The delayed request arrives now: it must lock nothing.
    await late.deliver().catch(() => undefined);
    expect((await account(a)).locked).toBeUndefined();
    // A repeated commit delivery (an old phase-two retry) must apply nothing.
    const tx: TxContext = { txId, deadline: Date.now() + 5000, decisions: decisionsOn(lateClient) };
    await participant.commit(tx, [credit(a, 30)]);
    expect(await participant.prepare(tx, [credit(a, 30)])).toMatchObject({ vote: "no" });
    await participant.commit(tx, [credit(a, 30)]);
    expect(await account(a)).toEqual({ balance: 71, locked: undefined });
  });

  /**
   * The prepare's first request is held in the network and its retries are lost: the
   * coordinator gives up (a no vote) and aborts; then the held request lands, the only one
   * to do so. Returns the transaction id and the account as it is afterwards.
   */
  async function prepareDeliveredAfterAbort(participantOn: (client: DynamoDBClient) => DynamoDbParticipant) {
    const a = fresh("acct");
    await open(a, 10);
    const txId = fresh("tx");
    const lateClient = ownClient();
    const late = ghost(lateClient, touches(lockTable()), 10);
    expect(await protocol(lateClient).run(txId, [branch(participantOn(lateClient), [credit(a, 1)])])).toMatchObject({ outcome: "aborted" });
    await late.lost;
    await late.deliver().catch(() => undefined);
    return { txId, after: await account(a) };
  }

  it("a prepare delivered after its abort locks nothing, even when no one is left to release it", async () => {
    const { after } = await prepareDeliveredAfterAbort(accountsOn);
    expect(after).toEqual({ balance: 10, locked: undefined });
  });

  it("negative control: without the ledger's condition, the same late prepare locks the item again after its abort", async () => {
    const { txId, after } = await prepareDeliveredAfterAbort((client) => new DynamoDbParticipant({ tableName: lockTable(), dynamodb: client }, { unsafeUnconditionalLedger: true }));
    expect(after.locked).toBe(txId);
  });

  it("two runs of one id at once, over every kind of participant, agree and apply once", async () => {
    const queueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: `${fresh("dup")}.fifo`, Attributes: { FifoQueue: "true" } }))).QueueUrl!;
    const holds = new Map<string, number>();
    const bookId = fresh("book");
    const book = (client: DynamoDBClient) =>
      defineParticipant<{ amount: number }>({
        id: bookId,
        tableName: txnTable(),
        dynamodb: client,
        prepare: async () => true,
        commit: async (tx) => void holds.set(tx.txId, (holds.get(tx.txId) ?? 0) + 1),
        abort: async () => undefined,
      });
    const a = fresh("acct");
    await open(a, 0);
    const rounds = 12;
    for (let i = 0; i < rounds; i++) {
      const txId = fresh("tx");
      const branchesOn = (client: DynamoDBClient) => [branch(accountsOn(client), [credit(a, 1)]), branch(book(client), { amount: 1 }), branch(outboxParticipant({ queueUrl, sqs, tableName: txnTable(), dynamodb: client }), { body: { txId } })];
      const [c1, c2] = [ownClient(), ownClient()];
      const [r1, r2] = await Promise.all([protocol(c1).run(txId, branchesOn(c1)), new Promise((r) => setTimeout(r, i % 4)).then(() => protocol(c2).run(txId, branchesOn(c2)))]);
      expect(r1.outcome, txId).toBe(r2.outcome);
      expect(r1.outcome, txId).toBe("committed");
      // The defined participant's commit may run more than once (it must be idempotent), never for an aborted transaction.
      expect(holds.get(txId), txId).toBeGreaterThanOrEqual(1);
    }
    expect(await account(a)).toEqual({ balance: rounds, locked: undefined });
    const bodies: string[] = [];
    for (let empty = 0; empty < 2; ) {
      const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, VisibilityTimeout: 60 }));
      if (!out.Messages?.length) empty++;
      else {
        bodies.push(...out.Messages.map((m) => m.Body ?? ""));
        // One message group: the next is delivered once this one is gone.
        await sqs.send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: out.Messages.map((m, k) => ({ Id: String(k), ReceiptHandle: m.ReceiptHandle! })) }));
      }
    }
    expect(bodies.length).toBe(rounds);
    expect(new Set(bodies).size).toBe(rounds);
  });

  it("two fast-path runs of one id at once agree and apply once", async () => {
    const a = fresh("acct");
    await open(a, 0);
    for (let i = 0; i < 10; i++) {
      const txId = fresh("tx");
      const [c1, c2] = [ownClient(), ownClient()];
      const fast = (c: DynamoDBClient) => new Coordinator({ tableName: txnTable(), dynamodb: c });
      const [r1, r2] = await Promise.all([fast(c1).run(txId, [branch(accountsOn(c1), [credit(a, 1)])]), fast(c2).run(txId, [branch(accountsOn(c2), [credit(a, 1)])])]);
      expect([r1.outcome, r2.outcome], txId).toEqual(["committed", "committed"]);
      expect([r1.path, r2.path]).toEqual(["fast", "fast"]);
    }
    expect(await account(a)).toEqual({ balance: 10, locked: undefined });
    expect((await protocol(scene.db).recover(mine)).stillInDoubt).toBe(0);
  });
});

describe("how run reports and chooses", () => {
  it("reports an unknown fast-path outcome as TransactionTimeoutError, and a run of the same id settles it", async () => {
    const a = fresh("acct");
    await open(a, 0);
    const txId = fresh("tx");
    const lossy = ownClient();
    // Every attempt of the fast path's TransactWriteItems is lost on the way (the SDK retries, then gives up).
    injectFaults(lossy, (r) => (r.commandName === "TransactWriteItemsCommand" ? { kind: "lose-request" } : undefined));
    const err = await new Coordinator({ tableName: txnTable(), dynamodb: lossy }).run(txId, [branch(accountsOn(lossy), [credit(a, 3)])]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransactionTimeoutError);
    expect(err).toMatchObject({ txId, step: "fast path" });
    expect(await new Coordinator({ tableName: txnTable(), dynamodb: scene.db }).run(txId, [branch(accountsOn(scene.db), [credit(a, 3)])])).toMatchObject({ outcome: "committed", path: "fast" });
    expect(await account(a)).toEqual({ balance: 3, locked: undefined });
  });

  it("takes the fast path by the database a client reaches, not by client identity", async () => {
    const [c1, c2] = [ownClient(), ownClient()];
    expect(await databaseOf(c1)).toBe(await databaseOf(c2));
    const elsewhere = dynamoDbClient({ region: "eu-west-3" });
    expect(await databaseOf(elsewhere)).not.toBe(await databaseOf(c1));
    expect(await sameDatabase(c1, [c2])).toBe(true);
    expect(await sameDatabase(c1, [c2, elsewhere])).toBe(false);
    elsewhere.destroy();
  });

  it("names an outbox participant by one spelling of its queue URL", () => {
    const ids = [
      "https://sqs.eu-west-1.amazonaws.com/123456789012/orders.fifo",
      "HTTPS://SQS.eu-west-1.AMAZONAWS.com:443/123456789012/orders.fifo/",
      "https://eu-west-1.queue.amazonaws.com/123456789012/orders.fifo",
    ].map((queueUrl) => outboxParticipant({ queueUrl, sqs, tableName: txnTable(), dynamodb: scene.db }).id);
    expect(new Set(ids)).toEqual(new Set(["outbox:https://sqs.eu-west-1.amazonaws.com/123456789012/orders.fifo"]));
    expect(canonicalQueueUrl("https://queue.amazonaws.com/1/q")).toBe("https://sqs.us-east-1.amazonaws.com/1/q");
    expect(canonicalQueueUrl("http://127.0.0.1:4566/000000000000/Q")).toBe("http://127.0.0.1:4566/000000000000/Q");
    expect(() => canonicalQueueUrl("orders")).toThrow(InvalidArgumentError);
  });
});
