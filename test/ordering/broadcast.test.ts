/** Total order broadcast on DynamoDB Local and the SQS emulator. */
import { GetItemCommand, type TransactWriteItem } from "@aws-sdk/client-dynamodb";
import { PurgeQueueCommand, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { describe, expect, it } from "vitest";
import { RequestCounter } from "../../lib/check/middleware.js";
import { Broadcast, ConsumerGroup, MAX_PAYLOAD_BYTES, PayloadTooLargeError, type Delivery } from "../../lib/index.js";
import { broadcastQueueUrl, dynamoDbClient, logTable, sqsClient } from "../support/cloud.js";
import { uniqueName } from "../support/locks.js";

const broadcast = (dynamodb = dynamoDbClient()) => new Broadcast({ tableName: logTable(), dynamodb, queueUrl: broadcastQueueUrl(), sqs: sqsClient() });

/** A consumer that records what its handler saw. */
function recorder(stream: string, group: string, options: { holeTimeoutMs?: number } = {}) {
  const seen: Delivery<string>[] = [];
  const consumer = new ConsumerGroup<string>({ tableName: logTable(), dynamodb: dynamoDbClient(), stream, group, holeTimeoutMs: options.holeTimeoutMs ?? 200, handler: (m) => void seen.push(m) });
  return { consumer, seen };
}

/** A transactional consumer whose effect is an item per message, counting applications. */
function effects(stream: string, group: string) {
  const effectKey = (seq: number) => ({ pk: { S: `effect#${stream}#${group}` }, sk: { N: String(seq) } });
  const consumer = new ConsumerGroup<string>({
    tableName: logTable(),
    dynamodb: dynamoDbClient(),
    stream,
    group,
    holeTimeoutMs: 200,
    transactional: (m): TransactWriteItem[] => [
      { Update: { TableName: logTable(), Key: effectKey(m.seq), UpdateExpression: "ADD applied :one SET payload = :p", ExpressionAttributeValues: { ":one": { N: "1" }, ":p": { S: m.payload } } } },
    ],
  });
  const applied = async (seq: number) => {
    const { Item } = await dynamoDbClient().send(new GetItemCommand({ TableName: logTable(), Key: effectKey(seq), ConsistentRead: true }));
    return Number(Item?.["applied"]?.N ?? 0);
  };
  return { consumer, applied };
}

describe("Broadcast.publish", () => {
  it("numbers a stream's messages 1, 2, 3 and makes them durable in the log", async () => {
    const stream = uniqueName("stream");
    const b = broadcast();
    const seqs = [];
    for (const p of ["a", "b", "c"]) seqs.push((await b.publish(stream, p)).seq);
    expect(seqs).toEqual([1, 2, 3]);
    expect(await b.log.read(stream, 2)).toMatchObject({ kind: "message", payload: '"b"' });
    expect(await b.log.head(stream)).toBe(3);
  });

  it("yields one message for one dedupId, however often it is published", async () => {
    const stream = uniqueName("stream");
    const b = broadcast();
    const first = await b.publish(stream, { order: 1 }, { dedupId: "order-1" });
    const again = await b.publish(stream, { order: 1 }, { dedupId: "order-1" });
    expect(again).toMatchObject({ seq: first.seq, duplicate: true });
    const { consumer, seen } = recorder(stream, "g");
    await consumer.catchUp();
    expect(seen.map((m) => m.seq)).toEqual([first.seq]);
  });

  it("refuses an oversized payload before writing anything", async () => {
    const stream = uniqueName("stream");
    const b = broadcast();
    await expect(b.publish(stream, "x".repeat(MAX_PAYLOAD_BYTES + 1))).rejects.toBeInstanceOf(PayloadTooLargeError);
    expect(await b.log.head(stream)).toBe(0);
  });

  it("publishes a batch with one sequencer write and one transaction per 25 messages", async () => {
    const stream = uniqueName("stream");
    const db = dynamoDbClient();
    const requests = new RequestCounter();
    requests.attach(db);
    const results = await broadcast(db).publishBatch(stream, Array.from({ length: 60 }, (_, i) => ({ payload: i })));
    expect(results.map((r) => r.seq)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    expect(Object.fromEntries(requests.byCommand)).toEqual({ UpdateItemCommand: 3, TransactWriteItemsCommand: 3 });
    expect(results.every((r) => r.queued)).toBe(true);
  });

  it("sends each message to the FIFO queue with the stream as group and a per-seq deduplication id", async () => {
    const sqs = sqsClient();
    await sqs.send(new PurgeQueueCommand({ QueueUrl: broadcastQueueUrl() }));
    const stream = uniqueName("stream");
    await broadcast().publish(stream, "hello");
    const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: broadcastQueueUrl(), MaxNumberOfMessages: 10, MessageSystemAttributeNames: ["All"], WaitTimeSeconds: 1 }));
    const mine = (out.Messages ?? []).find((m) => m.Attributes?.MessageGroupId === stream);
    expect(JSON.parse(mine!.Body!)).toEqual({ stream, seq: 1, payload: "hello" });
    expect(mine!.Attributes?.MessageDeduplicationId).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe("holes", () => {
  it("fills a number taken by a crashed producer with a no-op after the timeout, and delivers what follows", async () => {
    const stream = uniqueName("stream");
    const b = broadcast();
    await b.publish(stream, "before");
    await b.log.allocate(stream, 1); // a producer took seq 2 and crashed
    await b.publish(stream, "after");
    const { consumer, seen } = recorder(stream, "g", { holeTimeoutMs: 300 });
    const started = performance.now();
    const result = await consumer.catchUp();
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    expect(seen.map((m) => [m.seq, m.payload])).toEqual([
      [1, "before"],
      [3, "after"],
    ]);
    expect(result).toMatchObject({ skipped: 1, position: 3 });
    expect(await b.log.read(stream, 2)).toEqual({ seq: 2, kind: "noop" });
  });

  it("makes a late producer lose its slot and publish again, with nothing delivered twice or out of order", async () => {
    const stream = uniqueName("stream");
    const db = dynamoDbClient();
    const b = broadcast(db);
    const { consumer, seen } = recorder(stream, "g", { holeTimeoutMs: 100 });
    // The producer stalls after taking its number: meanwhile a consumer fills the hole.
    let stalled = false;
    const stall = (next: (args: unknown) => Promise<unknown>, context: { commandName?: string }) => async (args: unknown) => {
      if (context.commandName === "TransactWriteItemsCommand" && !stalled) {
        stalled = true;
        await consumer.catchUp();
      }
      return next(args);
    };
    db.middlewareStack.add(stall as never, { step: "initialize", name: "stall" });
    const result = await b.publish(stream, "late");
    expect(result.lostSlots).toEqual([1]);
    expect(result.seq).toBe(2);
    await consumer.catchUp();
    expect(seen.map((m) => [m.seq, m.payload])).toEqual([[2, "late"]]);
  });
});

describe("ConsumerGroup", () => {
  it("gives every group the same sequence, each message applied once (transactional)", async () => {
    const stream = uniqueName("stream");
    const b = broadcast();
    await b.publishBatch(stream, Array.from({ length: 20 }, (_, i) => ({ payload: `m${i + 1}` })));
    const groups = [effects(stream, "audit"), effects(stream, "billing")];
    // Two competing consumers per group, at once.
    await Promise.all(groups.flatMap((g) => [g.consumer.catchUp(), effects(stream, g.consumer.group).consumer.catchUp()]));
    for (const g of groups) {
      for (let seq = 1; seq <= 20; seq++) expect(await g.applied(seq), `${g.consumer.group} seq ${seq}`).toBe(1);
      expect(await g.consumer.log.cursor(stream, g.consumer.group)).toBe(20);
    }
  });

  it("delivers a Lambda batch in order from the log, whatever order and duplicates the queue brings", async () => {
    const stream = uniqueName("stream");
    const b = broadcast();
    await b.publishBatch(stream, ["a", "b", "c", "d"].map((payload) => ({ payload })));
    const { consumer, seen } = recorder(stream, "lambda");
    const record = (seq: number, id = `m${seq}`) => ({ messageId: id, body: JSON.stringify({ stream, seq, payload: "ignored" }) });
    const out = await consumer.handleSqsEvent({ Records: [record(3), record(1), record(3, "dup")] });
    expect(out.batchItemFailures).toEqual([]);
    expect(seen.map((m) => m.seq)).toEqual([1, 2, 3]);
    await consumer.handleSqsEvent({ Records: [record(2), record(4)] });
    expect(seen.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
  });

  it("reports undelivered records as failures when the handler fails, and resumes in order", async () => {
    const stream = uniqueName("stream");
    const b = broadcast();
    await b.publishBatch(stream, ["a", "b", "c"].map((payload) => ({ payload })));
    const seen: number[] = [];
    let failOnce = true;
    const consumer = new ConsumerGroup<string>({
      tableName: logTable(),
      dynamodb: dynamoDbClient(),
      stream,
      group: "flaky",
      handler: (m) => {
        if (m.seq === 2 && failOnce) {
          failOnce = false;
          throw new Error("downstream unavailable");
        }
        seen.push(m.seq);
      },
    });
    const record = (seq: number) => ({ messageId: `m${seq}`, body: JSON.stringify({ stream, seq }) });
    const out = await consumer.handleSqsEvent({ Records: [record(1), record(2), record(3)] });
    expect(out.batchItemFailures).toEqual([{ itemIdentifier: "m2" }, { itemIdentifier: "m3" }]);
    await consumer.handleSqsEvent({ Records: [record(2), record(3)] });
    expect(seen).toEqual([1, 2, 3]);
  });
});
