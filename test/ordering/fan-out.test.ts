/**
 * FanOut on DynamoDB Local and the SQS emulator: one queue consumer serves several
 * consumer groups from the log, acknowledges a hint only when every group has passed it,
 * and reports each group's lag and hole fills to an observer.
 */
import { CreateQueueCommand, DeleteMessageBatchCommand, DeleteQueueCommand, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../lib/errors.js";
import { Broadcast, ConsumerGroup, FanOut, type ConsumerObserver, type Delivery, type SqsEvent } from "../../lib/index.js";
import { dynamoDbClient, logTable, sqsClient } from "../support/cloud.js";
import { uniqueName } from "../support/locks.js";

let queueUrl: string;
beforeAll(async () => {
  const out = await sqsClient().send(new CreateQueueCommand({ QueueName: `fanout-${randomUUID().slice(0, 8)}.fifo`, Attributes: { FifoQueue: "true" } }));
  queueUrl = out.QueueUrl!;
});
afterAll(async () => {
  await sqsClient().send(new DeleteQueueCommand({ QueueUrl: queueUrl }));
});

/** The next `count` hints on this test's own queue, as one Lambda SQS event would carry them. */
async function hints(count: number): Promise<SqsEvent> {
  const records: SqsEvent["Records"] = [];
  while (records.length < count) {
    const out = await sqsClient().send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 60 }));
    for (const m of out.Messages ?? []) records.push({ messageId: m.MessageId!, body: m.Body! });
    // A FIFO queue hands out one message group's messages only while none is in flight:
    // take each off the queue, as a Lambda batch's records are once it returns.
    if (out.Messages?.length) await sqsClient().send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: out.Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }));
  }
  return { Records: records };
}

function group(stream: string, name: string, options: { failOnce?: number; observer?: ConsumerObserver } = {}) {
  const seen: number[] = [];
  let failed = false;
  const consumer = new ConsumerGroup<string>({
    tableName: logTable(),
    dynamodb: dynamoDbClient(),
    stream,
    group: name,
    holeTimeoutMs: 200,
    ...(options.observer ? { observer: options.observer } : {}),
    handler: (m: Delivery<string>) => {
      if (m.seq === options.failOnce && !failed) {
        failed = true;
        throw new Error(`handler of ${name} fails once on ${m.seq}`);
      }
      seen.push(m.seq);
    },
  });
  return { consumer, seen };
}

describe("FanOut", () => {
  it("delivers every message to every group, in order, from one batch of hints", async () => {
    const stream = uniqueName("fan");
    const b = new Broadcast({ tableName: logTable(), dynamodb: dynamoDbClient(), queueUrl, sqs: sqsClient() });
    for (const p of ["a", "b", "c", "d"]) await b.publish(stream, p);
    const groups = ["billing", "shipping", "audit"].map((g) => group(stream, g));
    const fanOut = new FanOut(groups.map((g) => g.consumer));
    const result = await fanOut.handleSqsEvent(await hints(4));
    expect(result.batchItemFailures).toEqual([]);
    for (const g of groups) expect(g.seen).toEqual([1, 2, 3, 4]);
  });

  it("reports as failed the hints a failing group has not passed, and the redelivery completes it without repeating the others", async () => {
    const stream = uniqueName("fan");
    const b = new Broadcast({ tableName: logTable(), dynamodb: dynamoDbClient(), queueUrl, sqs: sqsClient() });
    for (const p of ["a", "b", "c", "d"]) await b.publish(stream, p);
    const healthy = group(stream, "healthy");
    const flaky = group(stream, "flaky", { failOnce: 3 });
    const fanOut = new FanOut([healthy.consumer, flaky.consumer]);
    const event = await hints(4);
    const first = await fanOut.handleSqsEvent(event);
    const seqOfRecord = new Map(event.Records.map((r) => [r.messageId, (JSON.parse(r.body) as { seq: number }).seq]));
    expect(first.batchItemFailures.map((f) => seqOfRecord.get(f.itemIdentifier)).sort()).toEqual([3, 4]);
    expect(healthy.seen).toEqual([1, 2, 3, 4]);
    expect(flaky.seen).toEqual([1, 2]);
    const redelivered = { Records: event.Records.filter((r) => first.batchItemFailures.some((f) => f.itemIdentifier === r.messageId)) };
    expect((await fanOut.handleSqsEvent(redelivered)).batchItemFailures).toEqual([]);
    expect(flaky.seen).toEqual([1, 2, 3, 4]);
    expect(healthy.seen).toEqual([1, 2, 3, 4]);
  });

  it("tells the observer each group's lag when a catch-up starts and the holes it filled", async () => {
    const stream = uniqueName("fan");
    const b = new Broadcast({ tableName: logTable(), dynamodb: dynamoDbClient(), queueUrl, sqs: sqsClient() });
    await b.publish(stream, "a");
    await b.log.allocate(stream, 2); // a producer that took two numbers and crashed: holes 2 and 3
    await b.publish(stream, "d");
    const lags: number[] = [];
    const fills: number[] = [];
    const observer: ConsumerObserver = { catchingUp: (_, lag) => void lags.push(lag), holesFilled: (_, n) => void fills.push(n) };
    const g = group(stream, "observed", { observer });
    await new FanOut([g.consumer]).catchUp();
    expect(g.seen).toEqual([1, 4]);
    expect(lags).toEqual([4]);
    expect(fills).toEqual([2]);
  });

  it("keeps delivering when the observer throws", async () => {
    const stream = uniqueName("fan");
    const b = new Broadcast({ tableName: logTable(), dynamodb: dynamoDbClient(), queueUrl, sqs: sqsClient() });
    await b.publish(stream, "a");
    const g = group(stream, "careless", { observer: { catchingUp: () => { throw new Error("metrics backend down"); } } });
    await new FanOut([g.consumer]).catchUp();
    expect(g.seen).toEqual([1]);
  });

  it("refuses no groups, groups of two streams, and one group twice", () => {
    const a = group("s-one", "g").consumer;
    expect(() => new FanOut([])).toThrow(InvalidArgumentError);
    expect(() => new FanOut([a, group("s-two", "h").consumer])).toThrow(/one stream/);
    expect(() => new FanOut([a, group("s-one", "g").consumer])).toThrow(/twice/);
  });
});
