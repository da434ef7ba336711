/**
 * The counter reports what happened, proven by an item, never guessed: retries inside
 * the window get the value their increment got (however many increments came between),
 * retries past it are refused, late-delivered attempts never count twice, nothing after
 * an applied write can fail the call, and each increment costs the same capacity.
 * Against DynamoDB Local, with faults injected into the client's SDK requests.
 */
import { DeleteItemCommand, GetItemCommand, TransactionCanceledException, type DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { describe, expect, it } from "vitest";
import { injectFaults, RequestCounter } from "../../lib/check/middleware.js";
import { Counter, CounterContentionError, IncrementOutcomeUnknownError, InvalidArgumentError, RetryWindowExceededError, type CounterOptions } from "../../lib/index.js";
import { dynamoDbClient, lockTable } from "../support/cloud.js";
import { randomUUID } from "node:crypto";
import { uniqueName } from "../support/locks.js";

type Next = (args: unknown) => Promise<unknown>;
type Middleware = (next: Next, context: { commandName?: string }) => Next;
const addMiddleware = (db: DynamoDBClient, middleware: Middleware, step = "finalizeRequest") =>
  (db.middlewareStack as unknown as { add(m: Middleware, o: object): void }).add(middleware, { step, priority: "low", name: uniqueName("mw") });

function newCounter(options: Partial<CounterOptions> = {}) {
  const dynamodb = options.dynamodb ?? dynamoDbClient();
  const requests = new RequestCounter();
  requests.attach(dynamodb);
  const counter = new Counter({ tableName: lockTable(), name: uniqueName("ctr"), dynamodb, ...options });
  return { counter, dynamodb, requests };
}

const requestItemKey = (counter: Counter, requestId: string) => ({ pk: { S: `counter-req#${counter.name.length}:${counter.name}#${requestId}` } });
const readItem = async (db: DynamoDBClient, key: Record<string, { S: string }>) =>
  (await db.send(new GetItemCommand({ TableName: lockTable(), Key: key, ConsistentRead: true }))).Item;

describe("Counter outcomes", () => {
  // Issue 13 #9: a retry older than the 256 remembered ids was counted again (1, then 402).
  it("answers a retry inside the window with its first value after 260 increments (past the old 256 remembered ids), and refuses it past the window", async () => {
    let now = Date.now();
    const { counter, dynamodb } = newCounter({ retryWindowMs: 60_000, wallClock: () => now });
    const requestId = counter.newRequestId();
    expect(await counter.incrementAndGet(1, { requestId })).toBe(1);
    for (let i = 0; i < 260; i++) await counter.incrementAndGet();
    expect(await counter.incrementAndGet(1, { requestId })).toBe(1);
    expect(await counter.get()).toBe(261);

    now += 60_001;
    const late = await counter.incrementAndGet(1, { requestId }).catch((e: unknown) => e);
    expect(late).toBeInstanceOf(RetryWindowExceededError);
    expect(late).toMatchObject({ requestId, retryWindowMs: 60_000 });
    // Refused although its request item is still there: the answer does not depend on when TTL deletes it.
    expect(await readItem(dynamodb, requestItemKey(counter, requestId))).toBeDefined();
    expect(await counter.get()).toBe(261);
  });

  it("stamps each request item with a TTL past the retry window plus the margin", async () => {
    const now = Date.UTC(2030, 0, 1);
    const { counter, dynamodb } = newCounter({ retryWindowMs: 60_000, wallClock: () => now });
    const requestId = counter.newRequestId();
    await counter.incrementAndGet(2, { requestId });
    const item = await readItem(dynamodb, requestItemKey(counter, requestId));
    expect(item).toMatchObject({ value: { N: "2" }, delta: { N: "2" }, ttl: { N: String((now + 60_000 + 3_600_000) / 1000) } });
  });

  // Issue 13 #9: the pruning write could fail after the increment applied, and the call threw.
  it("returns the value of an applied increment whatever fails after its write", async () => {
    const { counter, dynamodb } = newCounter();
    let applied = false;
    addMiddleware(dynamodb, (next, context) => async (args) => {
      if (applied) throw Object.assign(new Error("injected: 500 after the increment applied"), { name: "InternalServerError", $metadata: { httpStatusCode: 500 }, $fault: "server" });
      const out = await next(args);
      if (/TransactWriteItems|UpdateItem/.test(context.commandName ?? "")) applied = true;
      return out;
    });
    for (let i = 1; i <= 130; i++) {
      applied = false;
      expect(await counter.incrementAndGet()).toBe(i);
    }
  });

  // Issue 13 #9: the counter item carried up to 1,001 remembered ids, about 12-38 WCU per increment.
  it("costs the same capacity per increment however many came before, in one request", async () => {
    const { counter, dynamodb, requests } = newCounter();
    let wcu = 0;
    addMiddleware(
      dynamodb,
      (next) => async (args) => {
        const input = (args as { input: Record<string, unknown> }).input;
        input["ReturnConsumedCapacity"] = "TOTAL";
        const out = (await next(args)) as { output: { ConsumedCapacity?: { CapacityUnits?: number } | { CapacityUnits?: number }[] } };
        for (const c of [out.output.ConsumedCapacity ?? []].flat()) wcu += c.CapacityUnits ?? 0;
        return out;
      },
      "initialize",
    );
    await counter.incrementAndGet(1); // odd values from here on: the old design never pruned them
    const costOf10 = async () => {
      wcu = 0;
      requests.reset();
      for (let i = 0; i < 10; i++) await counter.incrementAndGet(2);
      return { wcu: wcu / 10, requests: requests.total / 10 };
    };
    const early = await costOf10();
    for (let i = 0; i < 100; i++) await counter.incrementAndGet(2);
    const late = await costOf10();
    expect(late).toEqual(early);
    expect(late.requests).toBe(1);
    expect(late.wcu).toBeLessThanOrEqual(4);
    const item = await readItem(dynamodb, { pk: { S: `counter#${counter.name}` } });
    expect(Object.keys(item ?? {}).sort()).toEqual(["n", "pk"]);
  });

  it("learns another client's increments from the failed condition: one more request, never 'already applied'", async () => {
    const { counter, requests } = newCounter();
    const other = new Counter({ tableName: lockTable(), name: counter.name, dynamodb: dynamoDbClient() });
    expect(await counter.incrementAndGet()).toBe(1);
    expect(await other.incrementAndGet()).toBe(2);
    requests.reset();
    expect(await counter.incrementAndGet()).toBe(3);
    expect(requests.total).toBe(2);
  });

  it("retries an increment whose transaction conflicted", async () => {
    const { counter, dynamodb, requests } = newCounter();
    let conflicts = 2;
    addMiddleware(dynamodb, (next, context) => async (args) => {
      if (context.commandName !== "TransactWriteItemsCommand" || conflicts-- <= 0) return next(args);
      throw new TransactionCanceledException({
        message: "Transaction cancelled",
        $metadata: { httpStatusCode: 400 },
        CancellationReasons: [{ Code: "TransactionConflict" }, { Code: "None" }],
      });
    });
    expect(await counter.incrementAndGet()).toBe(1);
    expect(requests.total).toBe(3);
    expect(await counter.get()).toBe(1);
  });

  it("never counts a late-delivered attempt, even after its request item and idempotency token are forgotten", async () => {
    const { counter, dynamodb } = newCounter();
    const requestId = counter.newRequestId();
    // The first send's request is held in the network and the SDK's retries of it (same
    // ClientRequestToken) are lost: the call sends again itself, and that send applies.
    const bodyOf = (args: unknown) => {
      const body = (args as { request: { body: string | Uint8Array } }).request.body;
      return typeof body === "string" ? body : new TextDecoder().decode(body);
    };
    const tokenOf = (args: unknown) => /"ClientRequestToken":"([^"]+)"/.exec(bodyOf(args))?.[1];
    let held: { token: string | undefined; deliver: () => Promise<unknown> } | undefined;
    addMiddleware(dynamodb, (next, context) => async (args) => {
      if (context.commandName !== "TransactWriteItemsCommand" || (held && tokenOf(args) !== held.token)) return next(args);
      if (!held) {
        const token = tokenOf(args);
        expect(token).toBeDefined();
        // Delivered after DynamoDB forgot the token (10 minutes): it is judged by its conditions alone.
        const body = bodyOf(args).replace(String(token), randomUUID());
        held = { token, deliver: () => next({ ...(args as object), request: Object.assign((args as { request: object }).request, { body }) }) };
      }
      throw Object.assign(new Error("injected: request held in the network"), { name: "TimeoutError", $metadata: {} });
    });
    expect(await counter.incrementAndGet(5, { requestId })).toBe(5);
    // The proof expires (TTL) before the held attempt arrives; the counter has moved on.
    await dynamodb.send(new DeleteItemCommand({ TableName: lockTable(), Key: requestItemKey(counter, requestId) }));
    const late = await held!.deliver().catch((e: unknown) => e);
    // Cancelled by the counter's condition: it is no longer where that attempt expected it.
    expect((late as TransactionCanceledException).CancellationReasons?.map((r) => r.Code)).toEqual(["ConditionalCheckFailed", "None"]);
    expect(await counter.get()).toBe(5);
  });

  it("reports an increment it could not confirm with its request id, and a retry with it learns the value", async () => {
    const { counter, dynamodb } = newCounter();
    let down = true;
    injectFaults(dynamodb, (r) => (down && r.commandName === "TransactWriteItemsCommand" ? { kind: "lose-request" } : undefined));
    const err = await counter.incrementAndGet(3).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IncrementOutcomeUnknownError);
    down = false;
    expect(await counter.incrementAndGet(3, { requestId: (err as IncrementOutcomeUnknownError).requestId })).toBe(3);
    expect(await counter.get()).toBe(3);
  });

  it("refuses request ids it did not mint, and a retry with another delta", async () => {
    const { counter } = newCounter();
    await expect(counter.incrementAndGet(1, { requestId: "my-own-id" })).rejects.toBeInstanceOf(InvalidArgumentError);
    const requestId = counter.newRequestId();
    await counter.incrementAndGet(1, { requestId });
    const wrong = await counter.incrementAndGet(2, { requestId }).catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(InvalidArgumentError);
    expect((wrong as InvalidArgumentError).field).toBe("requestId");
    expect(await counter.get()).toBe(1);
  });

  // Review finding 1: the window was the retrying Counter's, not the id's. An id minted with a
  // 1 s window, retried through a 3 h Counter after its request item expired, counted twice.
  it("judges a retry by the window its id was minted with, whichever Counter sends it", async () => {
    const t0 = Date.now();
    const { counter: short, dynamodb } = newCounter({ retryWindowMs: 1000, wallClock: () => t0 });
    const requestId = short.newRequestId();
    expect(await short.incrementAndGet(1, { requestId })).toBe(1);
    const item = await readItem(dynamodb, requestItemKey(short, requestId));
    expect(item?.["ttl"]).toEqual({ N: String(Math.ceil((t0 + 1000 + 3_600_000) / 1000)) });
    // Two hours later its TTL has passed: the request item is gone (deleted here, as TTL would).
    await dynamodb.send(new DeleteItemCommand({ TableName: lockTable(), Key: requestItemKey(short, requestId) }));
    const long = new Counter({ tableName: lockTable(), name: short.name, dynamodb: dynamoDbClient(), retryWindowMs: 3 * 3_600_000, wallClock: () => t0 + 2 * 3_600_000 });
    const retry = await long.incrementAndGet(1, { requestId }).catch((e: unknown) => e);
    expect(retry).toBeInstanceOf(RetryWindowExceededError);
    expect(retry).toMatchObject({ requestId, retryWindowMs: 1000 });
    expect(await long.get()).toBe(1);
  });

  // Review finding 3: contention alone spun until the retry window closed (up to an hour), then
  // claimed the increment may have applied (RetryWindowExceededError) although nothing could have.
  it("gives up on contention alone after its attempts with CounterContentionError: not applied", async () => {
    const { counter, dynamodb, requests } = newCounter({ maxAttempts: 5 });
    let refusals = 0;
    addMiddleware(dynamodb, (next, context) => async (args) => {
      if (context.commandName !== "TransactWriteItemsCommand") return next(args);
      refusals++;
      throw new TransactionCanceledException({ message: "Transaction cancelled", $metadata: { httpStatusCode: 400 }, CancellationReasons: [{ Code: "TransactionConflict" }, { Code: "None" }] });
    });
    const err = await counter.incrementAndGet().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CounterContentionError);
    expect(err).toMatchObject({ attempts: 5 });
    expect((err as Error).message).toMatch(/was not applied/);
    expect(refusals).toBe(5);
    expect(requests.total).toBe(5);
    expect(await counter.get()).toBe(0);
  }, 15_000);

  it("reports contention, not an expired window, when the window closes on a call that sent nothing unanswered", async () => {
    let now = Date.now();
    const { counter, dynamodb } = newCounter({ retryWindowMs: 1000, wallClock: () => now });
    addMiddleware(dynamodb, (next, context) => async (args) => {
      if (context.commandName !== "TransactWriteItemsCommand") return next(args);
      now += 400; // the wall clock runs past the window during the call's attempts
      throw new TransactionCanceledException({ message: "Transaction cancelled", $metadata: { httpStatusCode: 400 }, CancellationReasons: [{ Code: "ThrottlingError" }, { Code: "None" }] });
    });
    const err = await counter.incrementAndGet().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CounterContentionError);
    expect(err).toMatchObject({ attempts: 3, retryBefore: undefined });
  }, 15_000);
});
