/**
 * The coordinator Lambda on the local cloud, called with @aws-sdk/client-lambda as on
 * AWS: run (fast path and protocol with an outbox), status, list, recover; bad input is
 * refused with an InvalidArgumentError naming the field, before anything is written.
 */
import { GetItemCommand, PutItemCommand, type DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { CreateQueueCommand, ReceiveMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import type { LambdaClient } from "@aws-sdk/client-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../lib/index.js";
import { invokeJson } from "../../lib/internal/lambda.js";
import type { TxnRequest, TxnResponses } from "../../lib/service/txn-api.js";
import { dynamoDbClient, lambdaClient, lockTable, sqsClient, txnFunction, txnRecoveryFunction, txnTable } from "../support/cloud.js";
import { inDoubtFigures } from "../../lib/service/txn-metrics.js";
import { Coordinator, DynamoDbParticipant, branch } from "../../lib/index.js";

let lambda: LambdaClient;
let db: DynamoDBClient;
let sqs: SQSClient;
const run = Date.now().toString(36);
const call = async <R extends TxnRequest>(request: R) => (await invokeJson(lambda, txnFunction(), request)) as TxnResponses[R["action"]];

beforeAll(() => {
  lambda = lambdaClient();
  db = dynamoDbClient();
  sqs = sqsClient();
});
afterAll(() => {
  lambda.destroy();
  db.destroy();
  sqs.destroy();
});

const balance = async (pk: string) => Number((await db.send(new GetItemCommand({ TableName: lockTable(), Key: { pk: { S: pk } }, ConsistentRead: true }))).Item?.["balance"]?.N);

describe("coordinator function", () => {
  it("runs a DynamoDB-only transaction on the fast path, and one with an outbox through the protocol", async () => {
    const [a, b] = [`svc-a-${run}`, `svc-b-${run}`];
    for (const pk of [a, b]) await db.send(new PutItemCommand({ TableName: lockTable(), Item: { pk: { S: pk }, balance: { N: "10" } } }));
    const writes = [
      { type: "update", key: { pk: a }, add: { balance: -4 }, condition: { expression: "balance >= :x", values: { ":x": 4 } } },
      { type: "update", key: { pk: b }, add: { balance: 4 } },
    ];
    const fast = await call({ action: "run", txId: `svc-fast-${run}`, branches: [{ participant: `dynamodb:${lockTable()}`, input: writes }] });
    expect(fast).toMatchObject({ outcome: "committed", path: "fast" });

    const queueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: `svc-outbox-${run}.fifo`, Attributes: { FifoQueue: "true" } }))).QueueUrl!;
    const txId = `svc-protocol-${run}`;
    const protocol = await call({ action: "run", txId, branches: [{ participant: `dynamodb:${lockTable()}`, input: writes }, { participant: `outbox:${queueUrl}`, input: { body: { hello: txId } } }] });
    expect(protocol, JSON.stringify(protocol)).toMatchObject({ outcome: "committed", path: "protocol", acknowledged: true });
    expect([await balance(a), await balance(b)]).toEqual([2, 18]);
    const received = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, MessageAttributeNames: ["All"] }));
    expect(received.Messages?.map((m) => m.Body)).toEqual([JSON.stringify({ hello: txId })]);
    expect(received.Messages?.[0]?.MessageAttributes?.["fencepost-tx"]?.StringValue).toBe(txId);

    expect(await call({ action: "status", txId })).toMatchObject({ txId, status: "committed", done: true });
    expect(await call({ action: "status", txId: `never-${run}` })).toBeNull();
    expect((await call({ action: "list" })).transactions.map((t) => t.txId)).not.toContain(txId);
    // Other suites share this table (and leave custom participants only they can reach): look at ours only.
    const report = await call({ action: "recover", prefix: "svc-" });
    expect(report.examined).toBeGreaterThanOrEqual(report.transactions.length);
    expect(report.transactions.filter((t) => t.txId.endsWith(run) && t.pending.length > 0)).toEqual([]);
  });

  it("refuses bad input with the field named, writing nothing", async () => {
    const refused = async (request: unknown) => {
      try {
        await invokeJson(lambda, txnFunction(), request);
      } catch (err) {
        return err;
      }
      throw new Error("accepted");
    };
    const noBranches = await refused({ action: "run", txId: "x", branches: [] });
    expect(noBranches).toBeInstanceOf(InvalidArgumentError);
    expect((noBranches as InvalidArgumentError).field).toBe("branches");
    expect(((await refused({ action: "run", txId: "x", branches: [{ participant: "custom-thing", input: 1 }] })) as InvalidArgumentError).field).toBe("branches.0.participant");
    expect(((await refused({ action: "override", txId: "x", override: "commit", operator: "o", reason: "r" })) as InvalidArgumentError).field).toBe("override");
    const badWrite = await refused({ action: "run", txId: `bad-${run}`, branches: [{ participant: `dynamodb:${lockTable()}`, input: [{ type: "upsert", key: { pk: "k" } }] }] });
    expect((badWrite as InvalidArgumentError).field).toBe("branches[0].input[0].type");
    expect(await call({ action: "status", txId: `bad-${run}` })).toBeNull();
  });
});

describe("recovery function", () => {
  it("finishes a transaction whose coordinator died, once it is 10 s past its deadline, and reports in-doubt metrics", { timeout: 30_000 }, async () => {
    const accounts = new DynamoDbParticipant({ tableName: lockTable(), dynamodb: db });
    const dying = new Coordinator({ tableName: txnTable(), dynamodb: db, fastPath: false, timeoutMs: 1 }, { crashAt: (p) => p === "decide" });
    const txId = `svc-stuck-${run}`;
    await expect(dying.run(txId, [branch(accounts, [{ type: "put", key: { pk: `svc-stuck-${run}` }, item: { v: 1 } }])])).rejects.toThrow(/crashed/);
    const recovery = txnRecoveryFunction();
    type Report = { stillInDoubt: number; transactions: { txId: string; action: string }[] };
    const early = (await invokeJson(lambda, recovery, { source: "schedule" })) as Report;
    expect(early.transactions.map((t) => t.txId)).not.toContain(txId); // within the 10 s grace: left alone
    await new Promise((r) => setTimeout(r, 10_500));
    const late = (await invokeJson(lambda, recovery, { source: "schedule" })) as Report;
    // Other suites' recoveries (no grace) may have finished it first; either way it ends aborted and done.
    const mine = late.transactions.find((t) => t.txId === txId);
    if (mine) expect(mine.action).toBe("aborted");
    expect(await dying.status(txId)).toMatchObject({ status: "aborted", done: true });
  });

  it("shapes the metrics the in-doubt alarm watches", () => {
    const now = 1_000_000;
    // The EMF line itself (Powertools, namespace and dimension): test/service/observability.test.ts.
    expect(inDoubtFigures([{ deadline: now - 90_000 }, { deadline: now - 5_000 }], now)).toEqual({ InDoubtTransactions: 2, OldestInDoubtSeconds: 90 });
    expect(inDoubtFigures([], now)).toEqual({ InDoubtTransactions: 0, OldestInDoubtSeconds: 0 });
  });
});
