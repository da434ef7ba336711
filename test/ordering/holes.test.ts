/**
 * Hole filling, against DynamoDB Local: a crashed producer's whole chunk of numbers costs
 * consumers one hole timeout, not one per number (the holes seen together are filled
 * together, in one transaction), and a late producer racing that fill either has its
 * messages delivered or is told it lost their slots, never both and never neither.
 */
import { TransactionCanceledException, type DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { describe, expect, it } from "vitest";
import { injectFaults, RequestCounter } from "../../lib/check/middleware.js";
import { Broadcast, ConsumerGroup, type StreamLog, type Delivery, type PublishResult } from "../../lib/ordering/index.js";
import { dynamoDbClient, logTable } from "../support/cloud.js";
import { holdResponse } from "../support/intercept.js";
import { uniqueName } from "../support/locks.js";

/** A consumer on its own SDK client (so faults and counts stay its own), recording what its handler saw and when. */
function recordingConsumer(stream: string, holeTimeoutMs: number, dynamodb = dynamoDbClient()) {
  const seen: (Delivery<string> & { at: number })[] = [];
  const requests = new RequestCounter();
  requests.attach(dynamodb);
  const consumer = new ConsumerGroup<string>({ tableName: logTable(), dynamodb, stream, group: "g", holeTimeoutMs, handler: (m) => void seen.push({ ...m, at: performance.now() }) });
  return { consumer, seen, requests, dynamodb };
}

/**
 * Holds the first `commandName` request `client` sends before it leaves: `held` resolves
 * once it waits, `release()` sends it on (a caller stalled between deciding and writing).
 */
function holdRequest(client: DynamoDBClient, commandName: string): { held: Promise<void>; release(): void } {
  let onHeld!: () => void;
  let release!: () => void;
  const held = new Promise<void>((r) => (onHeld = r));
  const released = new Promise<void>((r) => (release = r));
  let armed = true;
  type Next = (args: unknown) => Promise<unknown>;
  (client.middlewareStack as unknown as { add(middleware: unknown, options: object): void }).add(
    (next: Next, context: { commandName?: string }) => async (args: unknown) => {
      if (armed && context.commandName === commandName) {
        armed = false;
        onHeld();
        await released;
      }
      return next(args);
    },
    { step: "initialize", name: `holdRequest${Math.random().toString(36).slice(2)}` },
  );
  return { held, release };
}

/**
 * The first `TransactWriteItemsCommand` `client` sends is cancelled as DynamoDB cancels a
 * transaction that meets another one in progress on the same items (a consumer's fill of
 * the run): nothing applied, every item's reason `TransactionConflict`. DynamoDB Local
 * serialises transactions, so the race itself cannot be staged there.
 */
function conflictOnce(client: DynamoDBClient): void {
  let armed = true;
  type Next = (args: unknown) => Promise<unknown>;
  (client.middlewareStack as unknown as { add(middleware: unknown, options: object): void }).add(
    (next: Next, context: { commandName?: string }) => async (args: unknown) => {
      if (!armed || context.commandName !== "TransactWriteItemsCommand") return next(args);
      armed = false;
      const items = ((args as { input: { TransactItems?: unknown[] } }).input.TransactItems ?? []).length;
      throw new TransactionCanceledException({
        message: "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]",
        $metadata: { httpStatusCode: 400 },
        CancellationReasons: Array.from({ length: items }, () => ({ Code: "TransactionConflict", Message: "Transaction is ongoing for the item" })),
      });
    },
    { step: "finalizeRequest", priority: "low", name: `conflictOnce${Math.random().toString(36).slice(2)}` },
  );
}

describe("hole filling", () => {
  it("fills a crashed producer's whole chunk in one pass: k holes cost one timeout, not k", async () => {
    const k = 20;
    const holeTimeoutMs = 500;
    const stream = uniqueName("stream");
    const b = new Broadcast({ tableName: logTable(), dynamodb: dynamoDbClient() });
    await b.publish(stream, "before");
    await b.log.allocate(stream, k); // a producer took k numbers and crashed
    await b.publish(stream, "after");
    const published = performance.now();
    const { consumer, seen, requests } = recordingConsumer(stream, holeTimeoutMs);

    const result = await consumer.catchUp();

    expect(seen.map((m) => [m.seq, m.payload])).toEqual([
      [1, "before"],
      [k + 2, "after"],
    ]);
    expect(result).toMatchObject({ skipped: k, position: k + 2 });
    // Waiting the holes out one at a time takes at least k × holeTimeoutMs; one pass takes about one.
    expect(seen[1]!.at - published).toBeLessThan(k * holeTimeoutMs);
    // The fill pass is one transaction; the no-ops are skipped with one cursor move.
    expect(requests.byCommand.get("TransactWriteItemsCommand")).toBe(1);
    expect(requests.byCommand.get("PutItemCommand")).toBeUndefined();
    expect(requests.byCommand.get("UpdateItemCommand")).toBe(3);
    for (let seq = 2; seq <= k + 1; seq++) expect(await b.log.read(stream, seq)).toEqual({ seq, kind: "noop" });
  });

  it("settles each slot of the run one by one when the fill transaction's outcome is unknown", async () => {
    const stream = uniqueName("stream");
    const b = new Broadcast({ tableName: logTable(), dynamodb: dynamoDbClient() });
    await b.log.allocate(stream, 4); // crashed
    await b.publish(stream, "after");
    // The fill transaction applies, but its answer is lost (and the SDK does not retry).
    const dynamodb = dynamoDbClient({ maxAttempts: 1 });
    let lost = false;
    injectFaults(dynamodb, (r) => (r.commandName === "TransactWriteItemsCommand" && !lost ? ((lost = true), { kind: "lose-response" }) : undefined));
    const { consumer, seen, requests } = recordingConsumer(stream, 100, dynamodb);

    expect(await consumer.catchUp()).toMatchObject({ skipped: 4, position: 5 });
    expect(seen.map((m) => m.seq)).toEqual([5]);
    expect(Object.fromEntries(requests.byCommand)).toMatchObject({ TransactWriteItemsCommand: 1, PutItemCommand: 4 });
  });
});

describe("a late producer racing the fill of a multi-hole run", () => {
  const lateMessages = ["late-a", "late-b", "late-c"];

  /**
   * Numbers 2–6 belong to a crashed producer, 7–9 to a late producer held before its write
   * (its messages `lateMessages`), and 10 is published: a run of 8 holes for consumers to fill.
   */
  async function streamWithLateProducer() {
    const stream = uniqueName("stream");
    const b = new Broadcast({ tableName: logTable(), dynamodb: dynamoDbClient() });
    await b.publish(stream, "before");
    await b.log.allocate(stream, 5);
    const lateDb = dynamoDbClient();
    const lateWrite = holdRequest(lateDb, "TransactWriteItemsCommand");
    const late = new Broadcast({ tableName: logTable(), dynamodb: lateDb }).publishBatch(
      stream,
      lateMessages.map((payload) => ({ payload })),
    );
    await lateWrite.held; // it has taken 7–9
    await b.publish(stream, "after");
    return { stream, late, lateWrite, log: b.log };
  }

  /** One consumer fills the run; `order` decides whether its fill or the late producer's write reaches DynamoDB first. */
  async function race(order: "fill first" | "late write first") {
    const { stream, late, lateWrite, log } = await streamWithLateProducer();
    const dynamodb = dynamoDbClient();
    const fill = order === "fill first" ? holdResponse(dynamodb, (command) => command === "TransactWriteItemsCommand") : holdRequest(dynamodb, "TransactWriteItemsCommand");
    const { consumer, seen, requests } = recordingConsumer(stream, 200, dynamodb);
    const catching = consumer.catchUp();
    await fill.held; // fill first: the run 2–9 is filled; late write first: the fill is about to leave
    lateWrite.release();
    const results = await late;
    fill.release();
    await catching;
    await consumer.catchUp(); // whatever the late producer published again
    return { stream, results, delivered: seen, requests, log };
  }

  /**
   * Each late message is delivered once, at the seq its publish reported, never at a slot
   * it reported lost; `delivered` is one group's committed deliveries, in order.
   */
  async function expectDeliveredOrReportedLost(stream: string, results: readonly PublishResult[], delivered: readonly Pick<Delivery<string>, "seq" | "payload">[], log: StreamLog) {
    results.forEach((result, i) => {
      expect(delivered.filter((m) => m.payload === lateMessages[i]).map((m) => m.seq)).toEqual([result.seq]);
    });
    for (const seq of results.flatMap((r) => r.lostSlots)) expect(await log.read(stream, seq)).toEqual({ seq, kind: "noop" });
    expect(delivered.map((m) => m.seq)).toEqual([...delivered.map((m) => m.seq)].sort((x, y) => x - y));
  }

  it("when the fill lands first: the producer loses 7–9, is told so, and publishes again after 10", async () => {
    const { stream, results, delivered, log } = await race("fill first");
    expect(results.map((r) => [r.seq, r.lostSlots])).toEqual([
      [11, [7, 8, 9]],
      [12, [7, 8, 9]],
      [13, [7, 8, 9]],
    ]);
    expect(delivered.map((m) => m.payload)).toEqual(["before", "after", ...lateMessages]);
    await expectDeliveredOrReportedLost(stream, results, delivered, log);
  });

  it("when the late write lands first: the fill loses 7–9 to it, fills 2–6, and the consumer delivers the late messages", async () => {
    const { stream, results, delivered, requests, log } = await race("late write first");
    expect(results.map((r) => [r.seq, r.lostSlots])).toEqual([
      [7, []],
      [8, []],
      [9, []],
    ]);
    expect(delivered.map((m) => m.payload)).toEqual(["before", ...lateMessages, "after"]);
    // The transaction that lost 7–9 wrote nothing; the second fills 2–6.
    expect(requests.byCommand.get("TransactWriteItemsCommand")).toBe(2);
    await expectDeliveredOrReportedLost(stream, results, delivered, log);
  });

  it("a late write cancelled by a conflicting fill transaction: the producer fills its numbers and publishes again", async () => {
    const stream = uniqueName("stream");
    const dynamodb = dynamoDbClient();
    conflictOnce(dynamodb);
    const b = new Broadcast({ tableName: logTable(), dynamodb });
    const results = await b.publishBatch(
      stream,
      lateMessages.map((payload) => ({ payload })),
    );
    expect(results.map((r) => [r.seq, r.lostSlots])).toEqual([
      [4, [1, 2, 3]],
      [5, [1, 2, 3]],
      [6, [1, 2, 3]],
    ]);
    const { consumer, seen } = recordingConsumer(stream, 100);
    await consumer.catchUp();
    await expectDeliveredOrReportedLost(stream, results, seen, b.log);
  });

  it("unscripted: three consumers of two groups fill the run while the late write is let go at a random moment", async () => {
    const holeTimeoutMs = 100;
    for (let round = 0; round < 5; round++) {
      const { stream, late, lateWrite, log } = await streamWithLateProducer();
      const committed = new Map<string, number[]>();
      const catchUp = async (consumer: ConsumerGroup<string>) => {
        const { delivered } = await consumer.catchUp();
        committed.set(consumer.group, [...(committed.get(consumer.group) ?? []), ...delivered]);
      };
      const consumers = ["billing", "billing", "audit"].map((group) => new ConsumerGroup<string>({ tableName: logTable(), dynamodb: dynamoDbClient(), stream, group, holeTimeoutMs, handler: () => undefined }));
      const catching = Promise.all(consumers.map(catchUp));
      setTimeout(() => lateWrite.release(), Math.random() * 3 * holeTimeoutMs);
      const results = await late;
      await catching;
      await Promise.all(consumers.map(catchUp)); // whatever the late producer published again
      for (const group of ["billing", "audit"]) {
        const seqs = [...committed.get(group)!].sort((x, y) => x - y);
        const slots = await Promise.all(seqs.map((seq) => log.read(stream, seq)));
        const delivered = slots.map((slot) => ({ seq: slot!.seq, payload: slot!.kind === "message" ? (JSON.parse(slot!.payload) as string) : "" }));
        expect(delivered.map((m) => m.payload), `round ${round}, group ${group}`).toEqual(expect.arrayContaining(["before", "after", ...lateMessages]));
        expect(delivered).toHaveLength(5);
        await expectDeliveredOrReportedLost(stream, results, delivered, log);
      }
    }
  });
});
