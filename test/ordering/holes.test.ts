/**
 * Hole filling, against DynamoDB Local: a crashed producer's whole chunk of numbers costs
 * consumers one hole timeout, not one per number (the holes seen together are filled
 * together, one conditional put per slot, in parallel), and a late producer racing that
 * fill either has its messages delivered or is told it lost their slots, never both and
 * never neither.
 */
import { PutItemCommand, TransactionCanceledException, TransactionConflictException, type DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { describe, expect, it, vi } from "vitest";
import { injectFaults, RequestCounter } from "../../lib/check/middleware.js";
import { Broadcast, ConsumerGroup, PublishConflictError, type Delivery, type PublishResult } from "../../lib/index.js";
import { type StreamLog } from "../../lib/advanced.js";
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
 * Holds every `commandName` request `client` sends before it leaves, until `release()`:
 * `held` resolves once the first one waits (a caller stalled between deciding and writing).
 */
function holdRequest(client: DynamoDBClient, commandName: string): { held: Promise<void>; release(): void } {
  let onHeld!: () => void;
  let release!: () => void;
  const held = new Promise<void>((r) => (onHeld = r));
  const released = new Promise<void>((r) => (release = r));
  type Next = (args: unknown) => Promise<unknown>;
  (client.middlewareStack as unknown as { add(middleware: unknown, options: object): void }).add(
    (next: Next, context: { commandName?: string }) => async (args: unknown) => {
      if (context.commandName === commandName) {
        onHeld();
        await released;
      }
      return next(args);
    },
    { step: "initialize", name: `holdRequest${Math.random().toString(36).slice(2)}` },
  );
  return { held, release };
}

/** The partition key of each item a TransactWriteItems request writes. */
const transactionKeys = (args: unknown): string[] =>
  ((args as { input: { TransactItems?: { Put?: { Item?: Record<string, { S?: string }> } }[] } }).input.TransactItems ?? []).map((item) => item.Put?.Item?.["pk"]?.S ?? "");

/**
 * The first `times` TransactWriteItemsCommands `client` sends are cancelled as DynamoDB
 * cancels a transaction that meets another write in progress on some of its items:
 * nothing applied, reason `TransactionConflict` for the items whose key `conflicts` picks
 * (default: all), `None` for the others. DynamoDB Local serialises transactions, so the
 * race itself cannot be staged there.
 */
function conflicting(client: DynamoDBClient, options: { times?: number; conflicts?: (pk: string) => boolean } = {}): void {
  let left = options.times ?? 1;
  type Next = (args: unknown) => Promise<unknown>;
  (client.middlewareStack as unknown as { add(middleware: unknown, options: object): void }).add(
    (next: Next, context: { commandName?: string }) => async (args: unknown) => {
      if (left <= 0 || context.commandName !== "TransactWriteItemsCommand") return next(args);
      left--;
      throw new TransactionCanceledException({
        message: "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]",
        $metadata: { httpStatusCode: 400 },
        CancellationReasons: transactionKeys(args).map((pk) => ((options.conflicts ?? (() => true))(pk) ? { Code: "TransactionConflict", Message: "Transaction is ongoing for the item" } : { Code: "None" })),
      });
    },
    { step: "finalizeRequest", priority: "low", name: `conflicting${Math.random().toString(36).slice(2)}` },
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
    // The fill pass is one conditional put per hole, no transaction; the no-ops are skipped with one cursor move.
    expect(requests.byCommand.get("PutItemCommand")).toBe(k);
    expect(requests.byCommand.get("TransactWriteItemsCommand")).toBeUndefined();
    expect(requests.byCommand.get("UpdateItemCommand")).toBe(3);
    for (let seq = 2; seq <= k + 1; seq++) expect(await b.log.read(stream, seq)).toEqual({ seq, kind: "noop" });
  });

  it("settles a fill put whose outcome is unknown by putting again", async () => {
    const stream = uniqueName("stream");
    const b = new Broadcast({ tableName: logTable(), dynamodb: dynamoDbClient() });
    await b.log.allocate(stream, 4); // crashed
    await b.publish(stream, "after");
    // One fill put applies, but its answer is lost (and the SDK does not retry).
    const dynamodb = dynamoDbClient({ maxAttempts: 1 });
    let lost = false;
    injectFaults(dynamodb, (r) => (r.commandName === "PutItemCommand" && !lost ? ((lost = true), { kind: "lose-response" }) : undefined));
    const { consumer, seen, requests } = recordingConsumer(stream, 100, dynamodb);

    expect(await consumer.catchUp()).toMatchObject({ skipped: 4, position: 5 });
    expect(seen.map((m) => m.seq)).toEqual([5]);
    expect(Object.fromEntries(requests.byCommand)).toMatchObject({ PutItemCommand: 5 });
  });

  it("settles a run with mixed winners in one pass: late messages keep their slots, the rest get no-ops", async () => {
    const stream = uniqueName("stream");
    const b = new Broadcast({ tableName: logTable(), dynamodb: dynamoDbClient() });
    await b.log.allocate(stream, 6);
    for (const seq of [2, 5]) await b.log.dynamodb.send(new PutItemCommand(b.log.messagePut(stream, seq, JSON.stringify(`m${seq}`), "late")));
    const dynamodb = dynamoDbClient();
    const requests = new RequestCounter();
    requests.attach(dynamodb);
    const log = new ConsumerGroup({ tableName: logTable(), dynamodb, stream, group: "g", handler: () => undefined }).log;

    const slots = await log.fillAll(stream, [1, 2, 3, 4, 5, 6]);

    expect(slots.map((slot) => (slot.kind === "message" ? slot.payload : slot.kind))).toEqual(["noop", '"m2"', "noop", "noop", '"m5"', "noop"]);
    expect(Object.fromEntries(requests.byCommand)).toEqual({ PutItemCommand: 6 });
    expect(await Promise.all([1, 2, 3, 4, 5, 6].map((seq) => b.log.read(stream, seq)))).toEqual(slots);
  });

  it("retries fill puts that meet a transaction in progress on their slot (TransactionConflictException)", async () => {
    const stream = uniqueName("stream");
    const b = new Broadcast({ tableName: logTable(), dynamodb: dynamoDbClient() });
    await b.log.allocate(stream, 5); // crashed
    await b.publish(stream, "after");
    const dynamodb = dynamoDbClient();
    conflicting(dynamodb); // a fill transaction, if one is used, conflicts like the puts below
    const conflicted = new Set<string>();
    type Next = (args: unknown) => Promise<unknown>;
    (dynamodb.middlewareStack as unknown as { add(middleware: unknown, options: object): void }).add(
      (next: Next, context: { commandName?: string }) => async (args: unknown) => {
        const seq = (args as { input: { Item?: { sk?: { N?: string } } } }).input.Item?.sk?.N;
        if (context.commandName !== "PutItemCommand" || seq === undefined || conflicted.has(seq)) return next(args);
        conflicted.add(seq); // each slot's first put meets a transaction in progress
        throw new TransactionConflictException({ message: "Transaction is ongoing for the item", $metadata: { httpStatusCode: 400 } });
      },
      { step: "finalizeRequest", priority: "low", name: "conflictPerSlot" },
    );
    const { consumer, seen } = recordingConsumer(stream, 100, dynamodb);

    expect(await consumer.catchUp()).toMatchObject({ skipped: 5, position: 6 });
    expect(seen.map((m) => m.seq)).toEqual([6]);
    expect(conflicted.size).toBe(5);
  });

  it("takes only slots it has read past for holes: a Query page cut at 1 MB is not the end of the log", async () => {
    const stream = uniqueName("stream");
    const b = new Broadcast({ tableName: logTable(), dynamodb: dynamoDbClient() });
    await b.log.allocate(stream, 1); // crashed: a hole at 1
    const big = "x".repeat(190 * 1024); // about 5 fit a 1 MB page
    for (let i = 0; i < 8; i++) await b.publish(stream, big + i);
    const dynamodb = dynamoDbClient();
    const filledSeqs: string[] = [];
    type Next = (args: unknown) => Promise<unknown>;
    type Put = { Item?: { sk?: { N?: string } } };
    (dynamodb.middlewareStack as unknown as { add(middleware: unknown, options: object): void }).add(
      (next: Next, context: { commandName?: string }) => async (args: unknown) => {
        const input = (args as { input: Put & { TransactItems?: { Put?: Put }[] } }).input;
        if (context.commandName === "PutItemCommand") filledSeqs.push(input.Item?.sk?.N ?? "");
        if (context.commandName === "TransactWriteItemsCommand") filledSeqs.push(...(input.TransactItems ?? []).map((item) => item.Put?.Item?.sk?.N ?? ""));
        return next(args);
      },
      { step: "initialize", name: "fillSpy" },
    );
    const { consumer, seen } = recordingConsumer(stream, 100, dynamodb);

    expect(await consumer.catchUp()).toMatchObject({ skipped: 1, position: 9 });
    expect(seen.map((m) => m.seq)).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
    expect(filledSeqs).toEqual(["1"]);
  });

  it("forgets the holes of an aborted catch-up: the next one waits a full timeout from when it sees them", async () => {
    const holeTimeoutMs = 300;
    const stream = uniqueName("stream");
    const b = new Broadcast({ tableName: logTable(), dynamodb: dynamoDbClient() });
    await b.log.allocate(stream, 1); // crashed
    await b.publish(stream, "after");
    let now = 0;
    const dynamodb = dynamoDbClient();
    const requests = new RequestCounter();
    requests.attach(dynamodb);
    const seen: number[] = [];
    const consumer = new ConsumerGroup<string>({ tableName: logTable(), dynamodb, stream, group: "g", holeTimeoutMs, clock: { now: () => now }, handler: (m) => void seen.push(m.seq) });
    const queries = () => requests.byCommand.get("QueryCommand") ?? 0;

    const first = new AbortController();
    const aborted = consumer.catchUp({ signal: first.signal }).catch((err: unknown) => err);
    await vi.waitFor(() => expect(queries()).toBeGreaterThanOrEqual(1)); // it has seen the hole at 1
    first.abort(new Error("stop"));
    await aborted;

    now += 10 * holeTimeoutMs; // much later, a new catch-up
    const before = queries();
    const second = consumer.catchUp();
    await vi.waitFor(() => expect(queries()).toBeGreaterThanOrEqual(before + 2)); // it has looked at the hole twice
    expect(requests.byCommand.get("PutItemCommand")).toBeUndefined(); // and still waits
    expect(await b.log.read(stream, 1)).toBeUndefined();
    now += holeTimeoutMs;
    expect(await second).toMatchObject({ skipped: 1, position: 2 });
    expect(seen).toEqual([2]);
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
    const fill =
      order === "fill first"
        ? holdResponse(dynamodb, (command, input) => command === "PutItemCommand" && (input as { Item?: { sk?: { N?: string } } }).Item?.sk?.N === "7")
        : holdRequest(dynamodb, "PutItemCommand");
    const { consumer, seen, requests } = recordingConsumer(stream, 200, dynamodb);
    const catching = consumer.catchUp();
    await fill.held; // fill first: slot 7 is filled; late write first: the fill is about to leave
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
    // One pass: a put per slot of 2–9; those on 7–9 lose to the late messages, the rest fill 2–6.
    expect(requests.byCommand.get("PutItemCommand")).toBe(8);
    expect(requests.byCommand.get("TransactWriteItemsCommand")).toBeUndefined();
    await expectDeliveredOrReportedLost(stream, results, delivered, log);
  });

  it("a late write cancelled by a conflict on its slots: the producer fills its numbers and publishes again", async () => {
    const stream = uniqueName("stream");
    const dynamodb = dynamoDbClient();
    conflicting(dynamodb);
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

describe("a producer whose write is cancelled by a conflict", () => {
  it("a delayed copy of the cancelled request lands before the producer's fill: reported published once, not published again", async () => {
    const stream = uniqueName("stream");
    const dynamodb = dynamoDbClient();
    // Its first try is delayed in the network (the SDK sees a timeout and tries again); the
    // retry, same ClientRequestToken, is cancelled by a conflict; the first copy then lands
    // before any of the producer's next writes (its fill of the numbers) leaves.
    let writes = 0;
    let delayedCopy: (() => Promise<unknown>) | undefined;
    let landed: Promise<unknown> | undefined;
    type Next = (args: unknown) => Promise<unknown>;
    (dynamodb.middlewareStack as unknown as { add(middleware: unknown, options: object): void }).add(
      (next: Next, context: { commandName?: string }) => async (args: unknown) => {
        if (context.commandName !== "TransactWriteItemsCommand" && context.commandName !== "PutItemCommand") return next(args);
        writes++;
        if (writes === 1) {
          delayedCopy = () => next(args);
          throw Object.assign(new Error("scripted fault: request delayed in the network"), { name: "TimeoutError", $metadata: {} });
        }
        if (writes === 2) {
          throw new TransactionCanceledException({
            message: "Transaction cancelled [TransactionConflict]",
            $metadata: { httpStatusCode: 400 },
            CancellationReasons: transactionKeys(args).map(() => ({ Code: "TransactionConflict" })),
          });
        }
        landed ??= delayedCopy!();
        await landed;
        return next(args);
      },
      { step: "finalizeRequest", priority: "low", name: "delayedCopyThenConflict" },
    );
    const b = new Broadcast({ tableName: logTable(), dynamodb });
    const results = await b.publishBatch(
      stream,
      ["a", "b", "c"].map((payload) => ({ payload })),
    );
    expect(results.map((r) => [r.seq, r.lostSlots])).toEqual([
      [1, []],
      [2, []],
      [3, []],
    ]);
    const { consumer, seen } = recordingConsumer(stream, 100);
    await consumer.catchUp();
    expect(seen.map((m) => [m.seq, m.payload])).toEqual([
      [1, "a"],
      [2, "b"],
      [3, "c"],
    ]);
  });

  it("a conflict on its dedup record alone (a twin publish in progress) is retried without losing slots", async () => {
    const stream = uniqueName("stream");
    const dynamodb = dynamoDbClient();
    conflicting(dynamodb, { conflicts: (pk) => pk.startsWith("dedup#") });
    const result = await new Broadcast({ tableName: logTable(), dynamodb }).publish(stream, "m", { dedupId: "twin" });
    expect(result).toMatchObject({ seq: 2, lostSlots: [], duplicate: false });
    const { consumer, seen } = recordingConsumer(stream, 100);
    expect(await consumer.catchUp()).toMatchObject({ skipped: 1, position: 2 });
    expect(seen.map((m) => m.payload)).toEqual(["m"]);
  });

  it("a dedup record that conflicts on every attempt ends in PublishConflictError, not SlotLostError", async () => {
    const stream = uniqueName("stream");
    const dynamodb = dynamoDbClient();
    conflicting(dynamodb, { times: 3, conflicts: (pk) => pk.startsWith("dedup#") });
    const err = await new Broadcast({ tableName: logTable(), dynamodb }).publish(stream, "m", { dedupId: "twin" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PublishConflictError);
    expect((err as PublishConflictError).dedupIds).toEqual(["twin"]);
    expect((err as Error).message).toMatch(/same dedupId/);
  });
});
