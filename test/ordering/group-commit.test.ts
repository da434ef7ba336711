/**
 * Group commit, against DynamoDB Local and the SQS emulator: concurrent publishes on one
 * Broadcast share sequencer writes, transactions and SendMessageBatch calls, and every
 * guarantee still holds per message: durable before it resolves, one message per dedupId
 * (inside a group and across groups and processes), and each publish of a group settled
 * on its own account when the group's write is lost, unknown, or cancelled by a twin.
 * A lone publish still costs 3 requests and waits for nobody.
 */
import { GetItemCommand, TransactionCanceledException, type DynamoDBClient, type TransactWriteItem } from "@aws-sdk/client-dynamodb";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { describe, expect, it } from "vitest";
import { injectFaults, RequestCounter } from "../../lib/check/middleware.js";
import { Broadcast, ConsumerGroup, InvalidArgumentError, PublishConflictError, type PublishResult } from "../../lib/index.js";
import { StreamLog, type Slot } from "../../lib/advanced.js";
import { broadcastQueueUrl, dynamoDbClient, logTable, sqsClient } from "../support/cloud.js";
import { ghost } from "../support/intercept.js";
import { uniqueName } from "../support/locks.js";

type Next = (args: unknown) => Promise<unknown>;
type Stackable = DynamoDBClient | SQSClient;
const addMiddleware = (client: Stackable, middleware: (next: Next, context: { commandName?: string }) => Next, step = "finalizeRequest") =>
  (client.middlewareStack as unknown as { add(middleware: unknown, options: object): void }).add(middleware, { step, priority: "low", name: `test${Math.random().toString(36).slice(2)}` });

/** Counts the requests of a Broadcast on its own DynamoDB and SQS clients. */
function counted(options: { lingerMs?: number; queue?: boolean; dynamodb?: DynamoDBClient; maxAttempts?: number } = {}) {
  const dynamodb = options.dynamodb ?? dynamoDbClient();
  const sqs = sqsClient();
  const requests = new RequestCounter();
  requests.attach(dynamodb);
  requests.attach(sqs);
  const b = new Broadcast({
    tableName: logTable(),
    dynamodb,
    ...(options.queue === false ? {} : { queueUrl: broadcastQueueUrl(), sqs }),
    ...(options.lingerMs === undefined ? {} : { lingerMs: options.lingerMs }),
    ...(options.maxAttempts === undefined ? {} : { maxAttempts: options.maxAttempts }),
  });
  return { b, requests, dynamodb, sqs, count: () => Object.fromEntries(requests.byCommand) };
}

/** Holds the first `commandName` request `client` sends, before it leaves, until `release()`. */
function holdRequest(client: Stackable, commandName: string): { held: Promise<void>; release(): void } {
  let onHeld!: () => void;
  let release!: () => void;
  const held = new Promise<void>((r) => (onHeld = r));
  const released = new Promise<void>((r) => (release = r));
  let armed = true;
  addMiddleware(
    client,
    (next, context) => async (args) => {
      if (context.commandName === commandName && armed) {
        armed = false;
        onHeld();
        await released;
      }
      return next(args);
    },
    "initialize",
  );
  return { held, release };
}

/** The message puts of each transaction `client` sends: [seq, payload or "noop"] per slot written. */
function transactions(client: DynamoDBClient): [number, string][][] {
  const seen: [number, string][][] = [];
  addMiddleware(
    client,
    (next, context) => async (args) => {
      if (context.commandName === "TransactWriteItemsCommand") {
        const items = (args as { input: { TransactItems: TransactWriteItem[] } }).input.TransactItems;
        seen.push(items.flatMap((item) => (item.Put?.Item?.["pk"]?.S?.startsWith("log#") ? [[Number(item.Put.Item["sk"]!.N), item.Put.Item["payload"]?.S ?? "noop"] as [number, string]] : [])));
      }
      return next(args);
    },
    "initialize",
  );
  return seen;
}

const payloadOf = (slot: Slot | undefined) => (slot?.kind === "message" ? (JSON.parse(slot.payload) as unknown) : slot?.kind);
const log = () => new StreamLog(dynamoDbClient(), logTable());
const range = (n: number, from = 1) => Array.from({ length: n }, (_, i) => from + i);

describe("group commit: requests", () => {
  it("a lone publish costs 3 requests and waits for no company, however long lingerMs is", async () => {
    const stream = uniqueName("stream");
    const { b, count, requests } = counted({ lingerMs: 30_000 });
    for (let i = 0; i < 5; i++) {
      requests.reset();
      // A linger would hold it for 30 s; the race's 10 s bound only catches that.
      const result = await Promise.race([b.publish(stream, i), new Promise<"lingered">((r) => setTimeout(() => r("lingered"), 10_000))]);
      expect(result).toMatchObject({ seq: i + 1, duplicate: false, queued: true });
      expect(count()).toEqual({ UpdateItemCommand: 1, TransactWriteItemsCommand: 1, SendMessageBatchCommand: 1 });
    }
  });

  it("16 concurrent publishes share one sequencer write, one transaction and two SendMessageBatch calls", async () => {
    const stream = uniqueName("stream");
    const { b, count } = counted();
    const results = await Promise.all(range(16).map((i) => b.publish(stream, `m${i}`)));
    expect(results.map((r) => r.seq)).toEqual(range(16)); // one group, in call order
    expect(results.every((r) => r.queued && !r.duplicate && r.lostSlots.length === 0)).toBe(true);
    expect(count()).toEqual({ UpdateItemCommand: 1, TransactWriteItemsCommand: 1, SendMessageBatchCommand: 2 });
    const slots = await Promise.all(range(16).map((seq) => log().read(stream, seq)));
    expect(slots.map(payloadOf)).toEqual(range(16).map((i) => `m${i}`));
  });

  it("groups hold at most 25 messages, and each stream has groups of its own", async () => {
    const [one, two] = [uniqueName("stream"), uniqueName("stream")];
    const { b, dynamodb, count } = counted();
    const sizes = transactions(dynamodb);
    const results = await Promise.all([...range(40).map((i) => b.publish(one, i)), ...range(5).map((i) => b.publish(two, i))]);
    expect(results.slice(0, 40).map((r) => r.seq)).toEqual(range(40));
    expect(results.slice(40).map((r) => r.seq)).toEqual(range(5));
    expect(sizes.map((t) => t.length).sort((x, y) => x - y)).toEqual([5, 15, 25]);
    expect(count()).toMatchObject({ UpdateItemCommand: 3, TransactWriteItemsCommand: 3 });
  });

  it("publishes that arrive while their stream's group is being written go together right after it", async () => {
    const stream = uniqueName("stream");
    const { b, dynamodb, count } = counted({ lingerMs: 0 });
    const sizes = transactions(dynamodb);
    const write = holdRequest(dynamodb, "TransactWriteItemsCommand");
    const first = b.publish(stream, "first");
    await write.held;
    const later = range(10).map((i) => b.publish(stream, `later${i}`));
    await new Promise((r) => setTimeout(r, 50));
    expect(count()).toEqual({ UpdateItemCommand: 1 }); // a group not full does not start while one is being written
    write.release();
    const results = await Promise.all([first, ...later]);
    expect(results.map((r) => r.seq)).toEqual(range(11));
    expect(sizes.map((t) => t.length)).toEqual([1, 10]);
    expect(count()).toMatchObject({ UpdateItemCommand: 2, TransactWriteItemsCommand: 2 });
  });

  it("with others of its stream in flight, a publish waits up to lingerMs for company; lingerMs 0 does not wait", async () => {
    const transactionsWith = async (lingerMs: number) => {
      const stream = uniqueName("stream");
      const { b, dynamodb, sqs } = counted({ lingerMs });
      const sizes = transactions(dynamodb);
      const send = holdRequest(sqs, "SendMessageBatchCommand");
      const first = b.publish(stream, "first");
      await send.held; // "first" is durable, and still in flight (being sent to the queue)
      const second = b.publish(stream, "second");
      await new Promise((r) => setTimeout(r, 50)); // a later turn of the event loop
      const third = b.publish(stream, "third");
      await new Promise((r) => setTimeout(r, 50));
      send.release(); // nothing else in flight: the waiting group goes
      expect((await Promise.all([first, second, third])).map((r) => r.seq)).toEqual([1, 2, 3]);
      return sizes.map((t) => t.length);
    };
    expect(await transactionsWith(10_000)).toEqual([1, 2]);
    expect(await transactionsWith(0)).toEqual([1, 1, 1]);
  });

  it("refuses a negative lingerMs", () => {
    expect(() => new Broadcast({ tableName: logTable(), lingerMs: -1 })).toThrow(InvalidArgumentError);
  });

  it("keeps a group's transaction under DynamoDB's 4 MB: large payloads make smaller groups", async () => {
    const stream = uniqueName("stream");
    const { b, dynamodb } = counted({ queue: false });
    const sizes = transactions(dynamodb);
    const big = "x".repeat(190 * 1024);
    const results = await Promise.all(range(20).map((i) => b.publish(stream, `${i}${big}`)));
    expect(results.map((r) => r.seq)).toEqual(range(20));
    expect(sizes.map((t) => t.length)).toEqual([17, 3]);
  });

  it("a publishBatch chunk joins a group whole: its messages consecutive and in order", async () => {
    const stream = uniqueName("stream");
    const { b, count } = counted();
    const [singles, batch] = await Promise.all([
      Promise.all(range(3).map((i) => b.publish(stream, `single${i}`))),
      b.publishBatch(stream, range(10).map((i) => ({ payload: `batch${i}` }))),
      ...range(3).map((i) => b.publish(stream, `late${i}`)),
    ]);
    expect(singles.map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(batch.map((r) => r.seq)).toEqual(range(10, 4));
    expect(count()).toMatchObject({ UpdateItemCommand: 1, TransactWriteItemsCommand: 1 });
  });
});

describe("group commit: dedup ids", () => {
  it("the same dedupId twice in one group is one message: the later publish is its duplicate, and no number is wasted", async () => {
    const stream = uniqueName("stream");
    const { b, count } = counted();
    const results = await Promise.all([b.publish(stream, "a"), b.publish(stream, "order", { dedupId: "o-1" }), b.publish(stream, "order again", { dedupId: "o-1" }), b.publish(stream, "b")]);
    expect(results.map((r) => [r.seq, r.duplicate])).toEqual([
      [1, false],
      [2, false],
      [2, true],
      [3, false],
    ]);
    expect(await log().head(stream)).toBe(3);
    expect(payloadOf(await log().read(stream, 2))).toBe("order");
    expect(count()).toMatchObject({ UpdateItemCommand: 1, TransactWriteItemsCommand: 1 });
  });

  it("a dedupId published earlier, inside a group: that publish gets the earlier seq, the others are written in the same numbers (no fill, no lookup)", async () => {
    const stream = uniqueName("stream");
    await counted().b.publish(stream, "original", { dedupId: "d" });
    const { b, count } = counted();
    const results = await Promise.all([b.publish(stream, "a"), b.publish(stream, "retry", { dedupId: "d" }), b.publish(stream, "c", { dedupId: "c" })]);
    expect(results.map((r) => [r.seq, r.duplicate])).toEqual([
      [2, false],
      [1, true],
      [4, false],
    ]);
    // One transaction cancelled by the dedup record, one writing the rest with a no-op in the freed number.
    expect(count()).toEqual({ UpdateItemCommand: 1, TransactWriteItemsCommand: 2, SendMessageBatchCommand: 1 });
    expect((await Promise.all(range(4).map((seq) => log().read(stream, seq)))).map(payloadOf)).toEqual(["original", "a", "noop", "c"]);
  });

  it("a copy of that cancelled attempt delivered late cannot land: its dedup record's condition fails for good", async () => {
    const stream = uniqueName("stream");
    await counted().b.publish(stream, "original", { dedupId: "d" });
    const dynamodb = dynamoDbClient();
    // The first try of the group's transaction is delayed in the network; the SDK's retry
    // (same request) is cancelled on the dedup record; the group writes again in the same numbers.
    const late = ghost(dynamodb, (command) => command === "TransactWriteItemsCommand");
    const { b } = counted({ dynamodb });
    const results = await Promise.all([b.publish(stream, "a"), b.publish(stream, "retry", { dedupId: "d" }), b.publish(stream, "c")]);
    expect(results.map((r) => [r.seq, r.duplicate])).toEqual([
      [2, false],
      [1, true],
      [4, false],
    ]);
    await late.lost;
    await expect(late.deliver()).rejects.toBeInstanceOf(TransactionCanceledException);
    expect((await Promise.all(range(4).map((seq) => log().read(stream, seq)))).map(payloadOf)).toEqual(["original", "a", "noop", "c"]);
    const seen: number[] = [];
    await new ConsumerGroup<string>({ tableName: logTable(), dynamodb: dynamoDbClient(), stream, group: "g", holeTimeoutMs: 60_000, handler: (m) => void seen.push(m.seq) }).catchUp();
    expect(seen).toEqual([1, 2, 4]); // and no hole to wait for
  });

  it("one dedupId published by two processes at once, each inside a group, is one message", async () => {
    for (let round = 0; round < 5; round++) {
      const stream = uniqueName("stream");
      const [p, q] = [counted().b, counted().b];
      const published = await Promise.all(
        [p, q].flatMap((b, who) => [b.publish(stream, `${who}-x`), b.publish(stream, `${who}-twin`, { dedupId: "twin" }), b.publish(stream, `${who}-y`)].map((r) => r.catch((err: unknown) => err))),
      );
      const twins = [published[1], published[4]] as (PublishResult | Error)[];
      const placed = twins.filter((r): r is PublishResult => !(r instanceof Error));
      // A twin that kept conflicting may fail with PublishConflictError; one that resolves names the same seq.
      for (const r of twins) if (r instanceof Error) expect(r).toBeInstanceOf(PublishConflictError);
      expect(new Set(placed.map((r) => r.seq)).size, `round ${round}`).toBe(1);
      expect(placed.filter((r) => !r.duplicate).length).toBeLessThanOrEqual(1);
      const head = await log().head(stream);
      const slots = await Promise.all(range(head).map((seq) => log().read(stream, seq)));
      const twinSlots = slots.filter((s) => s?.kind === "message" && s.dedupId === "twin");
      expect(twinSlots.length, `round ${round}`).toBe(1);
      for (const i of [0, 2, 3, 5]) expect(payloadOf(slots[(published[i] as PublishResult).seq - 1])).toBe(["0-x", "", "0-y", "1-x", "", "1-y"][i]);
    }
  });

  it("the earlier of two publishes of one dedupId fails with an unknown outcome: the later goes on its own and finds the message placed", async () => {
    const stream = uniqueName("stream");
    const dynamodb = dynamoDbClient({ maxAttempts: 1 });
    // The group's transaction applies but its answer is lost, and so are the fill puts that would settle it.
    let lostPuts = 0;
    injectFaults(dynamodb, (r) => {
      if (r.commandName === "TransactWriteItemsCommand" && lostPuts === 0) return { kind: "lose-response" };
      if (r.commandName === "PutItemCommand" && lostPuts < 6) return (lostPuts++, { kind: "lose-request" });
      return undefined;
    });
    const { b } = counted({ dynamodb });
    const [earlier, later] = await Promise.allSettled([b.publish(stream, "m", { dedupId: "d" }), b.publish(stream, "m", { dedupId: "d" })]);
    expect(earlier.status).toBe("rejected");
    expect((earlier as PromiseRejectedResult).reason).toMatchObject({ name: "PublishOutcomeUnknownError", cause: { name: "TimeoutError" } });
    expect(later).toMatchObject({ status: "fulfilled", value: { seq: 1, duplicate: true } });
    expect(payloadOf(await log().read(stream, 1))).toBe("m");
    expect(payloadOf(await log().read(stream, 2))).toBe("noop"); // the later publish's unused number, filled at once
  });
});

describe("group commit: outcomes", () => {
  it("a lost response inside a group: filling one slot finds the group's own message, and every publish resolves once at its seq", async () => {
    const stream = uniqueName("stream");
    const dynamodb = dynamoDbClient({ maxAttempts: 1 });
    let lost = false;
    injectFaults(dynamodb, (r) => (r.commandName === "TransactWriteItemsCommand" && !lost ? ((lost = true), { kind: "lose-response" }) : undefined));
    const { b, count } = counted({ dynamodb });
    const results = await Promise.all(range(8).map((i) => b.publish(stream, i, { dedupId: `d${i}` })));
    expect(results.map((r) => [r.seq, r.lostSlots.length])).toEqual(range(8).map((seq) => [seq, 0]));
    expect(count()).toMatchObject({ UpdateItemCommand: 1, TransactWriteItemsCommand: 1, PutItemCommand: 1 });
    expect(await log().head(stream)).toBe(8);
  });

  it("a lost request inside a group: every publish reports its own number lost and lands once at a fresh one", async () => {
    const stream = uniqueName("stream");
    const dynamodb = dynamoDbClient({ maxAttempts: 1 });
    let lost = false;
    injectFaults(dynamodb, (r) => (r.commandName === "TransactWriteItemsCommand" && !lost ? ((lost = true), { kind: "lose-request" }) : undefined));
    const { b } = counted({ dynamodb });
    const results = await Promise.all(range(5).map((i) => b.publish(stream, `m${i}`)));
    expect(results.map((r) => [r.seq, r.lostSlots])).toEqual(range(5).map((i) => [5 + i, [i]]));
    const seen: [number, string][] = [];
    await new ConsumerGroup<string>({ tableName: logTable(), dynamodb: dynamoDbClient(), stream, group: "g", holeTimeoutMs: 60_000, handler: (m) => void seen.push([m.seq, m.payload]) }).catchUp();
    expect(seen).toEqual(range(5).map((i) => [5 + i, `m${i}`])); // the lost numbers were filled at once: no hole timeout
  });

  it("an outcome nobody can settle fails every publish of the group with it; publishing again with the same dedupIds is exactly once", async () => {
    const stream = uniqueName("stream");
    const dynamodb = dynamoDbClient({ maxAttempts: 1 });
    let faulty = true;
    injectFaults(dynamodb, (r) => (!faulty ? undefined : r.commandName === "TransactWriteItemsCommand" ? { kind: "lose-response" } : r.commandName === "PutItemCommand" ? { kind: "lose-request" } : undefined));
    const { b } = counted({ dynamodb });
    const outcomes = await Promise.allSettled(range(4).map((i) => b.publish(stream, `m${i}`, { dedupId: `d${i}` })));
    for (const o of outcomes) expect(o).toMatchObject({ status: "rejected", reason: { name: "PublishOutcomeUnknownError", cause: { name: "TimeoutError" } } });
    // Each says which dedupIds make publishing again safe: its own.
    outcomes.forEach((o, k) => expect((o as PromiseRejectedResult).reason).toMatchObject({ dedupIds: [`d${range(4)[k]}`] }));
    faulty = false;
    const again = await Promise.all(range(4).map((i) => b.publish(stream, `m${i}`, { dedupId: `d${i}` })));
    expect(again.map((r) => [r.seq, r.duplicate])).toEqual(range(4).map((seq) => [seq, true]));
    const head = await log().head(stream);
    const messages = (await Promise.all(range(head).map((seq) => log().read(stream, seq)))).filter((s) => s?.kind === "message");
    expect(messages.map(payloadOf)).toEqual(["m1", "m2", "m3", "m4"]);
  });

  it("a twin's conflict on one publish's dedup record sets that publish aside: the others are written at once, and it fails alone with PublishConflictError", async () => {
    const stream = uniqueName("stream");
    const dynamodb = dynamoDbClient();
    // Every transaction carrying dedup#…#twin is cancelled as DynamoDB cancels one meeting a twin's transaction on that record.
    addMiddleware(dynamodb, (next, context) => async (args) => {
      const items = (args as { input: { TransactItems?: TransactWriteItem[] } }).input.TransactItems ?? [];
      const keys = items.map((item) => item.Put?.Item?.["pk"]?.S ?? "");
      if (context.commandName !== "TransactWriteItemsCommand" || !keys.some((pk) => pk.endsWith("#twin"))) return next(args);
      throw new TransactionCanceledException({
        message: "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]",
        $metadata: { httpStatusCode: 400 },
        CancellationReasons: keys.map((pk) => (pk.endsWith("#twin") ? { Code: "TransactionConflict", Message: "Transaction is ongoing for the item" } : { Code: "None" })),
      });
    });
    const { b } = counted({ dynamodb });
    const outcomes = await Promise.allSettled([b.publish(stream, "a"), b.publish(stream, "twin", { dedupId: "twin" }), b.publish(stream, "c", { dedupId: "c" })]);
    expect(outcomes[1]).toMatchObject({ status: "rejected", reason: expect.any(PublishConflictError) as unknown });
    expect(((outcomes[1] as PromiseRejectedResult).reason as PublishConflictError).dedupIds).toEqual(["twin"]);
    // The first attempt's numbers (1–3) were filled; the others were written together at once, not counting it as an attempt of theirs.
    expect(outcomes.filter((o) => o.status === "fulfilled").map((o) => [(o.value as PublishResult).seq, (o.value as PublishResult).lostSlots])).toEqual([
      [4, []],
      [5, []],
    ]);
  });

  it("slots lost to a consumer's hole filling: the group publishes again at fresh numbers, each publish told which number it lost", async () => {
    const stream = uniqueName("stream");
    const dynamodb = dynamoDbClient();
    const consumer = new ConsumerGroup({ tableName: logTable(), dynamodb: dynamoDbClient(), stream, group: "g", holeTimeoutMs: 50, handler: () => undefined });
    let stalled = false;
    addMiddleware(
      dynamodb,
      (next, context) => async (args) => {
        if (context.commandName === "TransactWriteItemsCommand" && !stalled) {
          stalled = true;
          await consumer.catchUp(); // the producer stalls; the consumer fills its numbers
        }
        return next(args);
      },
      "initialize",
    );
    const { b } = counted({ dynamodb, queue: false });
    const results = await Promise.all(range(3).map((i) => b.publish(stream, i)));
    expect(results.map((r) => [r.seq, r.lostSlots])).toEqual([
      [4, [1]],
      [5, [2]],
      [6, [3]],
    ]);
  });
});

/** One group's committed effects: seq → how often applied, and the payload applied. */
type Effects = Map<number, { applied: number; payload: string }>;
interface Acked {
  publisher: number;
  i: number;
  seq: number;
}

/**
 * What is wrong with one group's effects against the log and the acknowledged publishes:
 * an effect applied twice, an acknowledged message not applied or not at its seq, a no-op
 * or empty slot applied, and a publisher's messages out of the order it published them.
 */
function deliveryAnomalies(acked: readonly Acked[], slots: ReadonlyMap<number, Slot>, effects: Effects): string[] {
  const out: string[] = [];
  for (const [seq, effect] of effects) {
    if (effect.applied !== 1) out.push(`seq ${seq} applied ${effect.applied} times`);
    const slot = slots.get(seq);
    if (slot?.kind !== "message") out.push(`seq ${seq} applied, but the log holds ${slot?.kind ?? "nothing"}`);
    else if (slot.payload !== effect.payload) out.push(`seq ${seq} applied ${effect.payload}, the log holds ${slot.payload}`);
  }
  for (const a of acked) {
    const effect = effects.get(a.seq);
    if (effect?.payload !== JSON.stringify({ p: a.publisher, i: a.i })) out.push(`publisher ${a.publisher}'s message ${a.i} (seq ${a.seq}) not applied there`);
  }
  const byPublisher = new Map<number, Acked[]>();
  for (const a of acked) byPublisher.set(a.publisher, [...(byPublisher.get(a.publisher) ?? []), a]);
  for (const [publisher, mine] of byPublisher) {
    const seqs = [...mine].sort((x, y) => x.i - y.i).map((a) => a.seq);
    if (seqs.some((seq, k) => k > 0 && seq <= seqs[k - 1]!)) out.push(`publisher ${publisher}'s messages out of order: ${seqs.join(", ")}`);
  }
  return out;
}

describe("group commit: delivery", () => {
  it("16 concurrent publishers, two groups of competing consumers: every acknowledged message applied once, at its seq, each publisher's in its order", async () => {
    const stream = uniqueName("stream");
    const { b, count } = counted();
    const effectKey = (group: string, seq: number) => ({ pk: { S: `effect#${stream}#${group}` }, sk: { N: String(seq) } });
    const consumerOf = (group: string) =>
      new ConsumerGroup<unknown>({
        tableName: logTable(),
        dynamodb: dynamoDbClient(),
        stream,
        group,
        holeTimeoutMs: 10_000, // no producer crashes here: a slow group write is no hole
        transactional: (m): TransactWriteItem[] => [
          { Update: { TableName: logTable(), Key: effectKey(group, m.seq), UpdateExpression: "ADD applied :one SET payload = :p", ExpressionAttributeValues: { ":one": { N: "1" }, ":p": { S: JSON.stringify(m.payload) } } } },
        ],
      });
    const consumers = ["billing", "billing", "audit", "audit"].map(consumerOf);
    let publishing = true;
    const consuming = Promise.all(
      consumers.map(async (c) => {
        while (publishing) {
          await c.catchUp();
          await new Promise((r) => setTimeout(r, 5));
        }
      }),
    );
    const acked: Acked[] = [];
    await Promise.all(
      range(16, 0).map(async (publisher) => {
        for (let i = 0; i < 10; i++) acked.push({ publisher, i, seq: (await b.publish(stream, { p: publisher, i })).seq });
      }),
    );
    publishing = false;
    await consuming;
    const head = await log().head(stream);
    expect(head).toBe(160); // no number lost
    for (const c of consumers) await c.catchUp();
    const slots = new Map((await Promise.all(range(head).map((seq) => log().read(stream, seq)))).map((s) => [s!.seq, s!]));
    for (const group of ["billing", "audit"]) {
      const effects: Effects = new Map();
      for (const seq of range(head)) {
        const { Item } = await dynamoDbClient().send(new GetItemCommand({ TableName: logTable(), Key: effectKey(group, seq), ConsistentRead: true }));
        if (Item) effects.set(seq, { applied: Number(Item["applied"]?.N), payload: Item["payload"]?.S ?? "" });
      }
      expect(deliveryAnomalies(acked, slots, effects), group).toEqual([]);
      expect(effects.size).toBe(160);
    }
    // Grouped: far fewer than 3 requests per message.
    expect((count().TransactWriteItemsCommand ?? 0) / 160).toBeLessThan(0.5);
  });

  it("negative control: the delivery check finds a duplicate effect, a misplaced message and a publisher's order broken", () => {
    const slot = (seq: number, p: number, i: number): Slot => ({ seq, kind: "message", payload: JSON.stringify({ p, i }), writer: "w" });
    const slots = new Map([slot(1, 0, 0), slot(2, 0, 1), slot(3, 1, 0)].map((s) => [s.seq, s]));
    const effects: Effects = new Map([
      [1, { applied: 2, payload: JSON.stringify({ p: 0, i: 0 }) }],
      [2, { applied: 1, payload: JSON.stringify({ p: 0, i: 1 }) }],
      [3, { applied: 1, payload: JSON.stringify({ p: 1, i: 0 }) }],
    ]);
    const acked: Acked[] = [
      { publisher: 0, i: 0, seq: 2 },
      { publisher: 0, i: 1, seq: 1 },
      { publisher: 1, i: 0, seq: 3 },
    ];
    const anomalies = deliveryAnomalies(acked, slots, effects);
    expect(anomalies).toEqual(
      expect.arrayContaining([
        "seq 1 applied 2 times",
        expect.stringMatching(/^publisher 0's message 0 \(seq 2\) not applied there/),
        expect.stringMatching(/^publisher 0's messages out of order/),
      ]),
    );
    expect(deliveryAnomalies(acked.slice(2), slots, new Map([...effects].slice(2)))).toEqual([]);
  });
});
