/**
 * A linearizable increment-and-get counter: the primitive DDIA builds total order
 * broadcast from.
 *
 * Guarantees:
 * - Every successful `incrementAndGet` returns a distinct value, and values follow the
 *   real-time order of the increments.
 * - Each increment is applied at most once per request id. An increment is one
 *   TransactWriteItems of two small items: the counter item (`n` set from the value this
 *   client last saw to that value plus `delta`, conditioned on `n` still being it) and a
 *   request item `counter-req#<name length>:<name>#<requestId>` (conditioned on not existing) that
 *   records the value the increment got. A retry whose request item exists returns the
 *   value recorded there: only that item ever counts as proof of "already applied", never
 *   a failed condition on the counter. Every attempt carries the expected value, so a
 *   late-delivered attempt can apply only if the counter has not moved since it was sent,
 *   that is, only if no attempt of that request applied before it.
 * - Retries are accepted for `retryWindowMs` after the request id was minted (ids carry
 *   their minting time). Request items live (DynamoDB TTL, attribute `ttl`) until one
 *   `RETENTION_MARGIN_MS` after the window closes, so a retry sent inside the window
 *   always finds the proof if the increment applied. A retry past the window is refused
 *   with `RetryWindowExceededError` before anything is sent, whether or not the item is
 *   still there (TTL deletion is lazy; the answer must not depend on it).
 * - O(1) capacity: both items stay the same size whatever the history (about 4 WCU per
 *   increment on AWS, a transactional write of two small items; the old design kept a
 *   map of up to 256+ ids in the counter item and cost about 12 WCU at steady state).
 *   Requests per increment: 1 when the counter is where this client last saw it (its
 *   previous increment or read); otherwise one more attempt, which learns the current
 *   value from the failed condition itself (no extra read). Transaction conflicts and
 *   repeated losses are retried with jitter.
 * Why a compare-and-set: the value must be written into the request item in the same
 * transaction, and TransactWriteItems cannot return or reference the counter's new
 * value, so the client must know it beforehand. The cost is contention: many clients
 * incrementing one name at once retry (measured: 4 clients, about 1.3 requests per
 * increment on DynamoDB Local); a single atomic add could not prove its retries.
 * Assumes: a table with string partition key `pk` and TTL on `ttl` (the lock table);
 * the wall clocks of the processes that mint and retry a request id are within
 * `RETENTION_MARGIN_MS` minus 15 minutes (the longest a signed request can stay in
 * flight) of DynamoDB's. Counter items of the previous design keep their `recent` map
 * (ignored); clients of that version must not increment counters this one created.
 */
import {
  DynamoDBClient,
  GetItemCommand,
  TransactionCanceledException,
  TransactWriteItemsCommand,
  type AttributeValue,
} from "@aws-sdk/client-dynamodb";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { validateName } from "./client.js";
import { IncrementOutcomeUnknownError, InvalidArgumentError, RetryWindowExceededError } from "./errors.js";
import { certainlyNotApplied, trackAttempts } from "./lease.js";

/** Default for `CounterOptions.retryWindowMs`: an increment may be retried for an hour after its first attempt. */
export const DEFAULT_RETRY_WINDOW_MS = 60 * 60 * 1000;
/** The shortest retry window accepted: an increment's own tries must fit inside it. */
const MIN_RETRY_WINDOW_MS = 1000;
/** How long request items outlive the retry window: covers clock skew and requests still in flight. */
export const RETENTION_MARGIN_MS = 60 * 60 * 1000;
/** Sends that end with no answer before an increment gives up with IncrementOutcomeUnknownError. */
const UNANSWERED_SENDS = 3;

export interface CounterOptions {
  tableName: string;
  name: string;
  dynamodb?: DynamoDBClient;
  /**
   * How long after its request id was minted an increment may be retried with it
   * (at least 1 s). Request items are kept this long plus `RETENTION_MARGIN_MS`.
   * @default DEFAULT_RETRY_WINDOW_MS (1 hour)
   */
  retryWindowMs?: number;
  /**
   * The wall clock (epoch ms) stamped into request ids and read on retry. Injectable for
   * tests; correctness assumes it is within the margin of DynamoDB's (see the header).
   * @default Date.now
   */
  wallClock?: () => number;
}

export interface IncrementOptions {
  /**
   * The request id of an increment you are retrying: one `newRequestId()` minted (of
   * any Counter), used with the same `delta`. Omit for a new increment.
   */
  requestId?: string;
}

type Item = Record<string, AttributeValue>;

export class Counter {
  readonly name: string;
  readonly #dynamodb: DynamoDBClient;
  readonly #tableName: string;
  readonly #key: string;
  readonly #retryWindowMs: number;
  readonly #wallClock: () => number;
  /** The highest value this client has seen: the expected value of its next attempt. */
  #lastSeen = 0;

  constructor(options: CounterOptions) {
    validateName("tableName", options.tableName);
    validateName("name", options.name);
    const window = options.retryWindowMs ?? DEFAULT_RETRY_WINDOW_MS;
    if (!Number.isSafeInteger(window) || window < MIN_RETRY_WINDOW_MS) {
      throw new InvalidArgumentError("retryWindowMs", `must be an integer of at least ${MIN_RETRY_WINDOW_MS} ms (one increment's own retries must fit), got ${window}`);
    }
    this.name = options.name;
    this.#dynamodb = options.dynamodb ?? new DynamoDBClient({});
    this.#tableName = options.tableName;
    this.#key = `counter#${options.name}`;
    this.#retryWindowMs = window;
    this.#wallClock = options.wallClock ?? Date.now;
  }

  /** The current value (consistent read); 0 if never incremented. */
  async get(): Promise<number> {
    const { Item } = await this.#dynamodb.send(
      new GetItemCommand({ TableName: this.#tableName, Key: { pk: { S: this.#key } }, ConsistentRead: true, ProjectionExpression: "n" }),
    );
    return this.#saw(Number(Item?.["n"]?.N ?? 0));
  }

  /**
   * A request id for an increment you may need to retry (after a crash, or a Lambda or
   * SQS redelivery): pass it to every try. It records when it was minted; retries are
   * accepted for `retryWindowMs` after that.
   */
  newRequestId(): string {
    return `${Math.trunc(this.#wallClock())}-${randomUUID()}`;
  }

  /**
   * Adds `delta` (default 1) and returns the new value. Pass the same `requestId` (and
   * the same `delta`) when retrying an increment whose outcome you did not learn: it is
   * applied at most once, and a retry of an applied increment returns the value it got.
   *
   * @throws RetryWindowExceededError the request id is older than the retry window.
   * @throws IncrementOutcomeUnknownError DynamoDB did not answer; retry with its `requestId`.
   * @throws InvalidArgumentError a bad delta, a request id no Counter minted, or one first used with another delta.
   */
  async incrementAndGet(delta = 1, options: IncrementOptions = {}): Promise<number> {
    if (!Number.isSafeInteger(delta) || delta < 1) throw new InvalidArgumentError("delta", `must be a positive integer, got ${delta}`);
    const requestId = options.requestId ?? this.newRequestId();
    const issuedAt = mintedAt(requestId);
    const requestKey = `counter-req#${this.name.length}:${this.name}#${requestId}`;
    const retryBefore = issuedAt + this.#retryWindowMs;
    // Did any attempt so far end without an answer (it may still land, or have landed)?
    let uncertain = false;
    let unanswered = 0;
    for (let attempt = 0; ; attempt++) {
      const age = this.#wallClock() - issuedAt;
      if (age > this.#retryWindowMs) throw new RetryWindowExceededError(this.name, requestId, age, this.#retryWindowMs);
      const expected = this.#lastSeen;
      const next = expected + delta;
      const write = new TransactWriteItemsCommand({
        TransactItems: [
          {
            Update: {
              TableName: this.#tableName,
              Key: { pk: { S: this.#key } },
              UpdateExpression: "SET n = :next",
              ConditionExpression: expected === 0 ? "attribute_not_exists(n) OR n = :expected" : "n = :expected",
              ExpressionAttributeValues: { ":next": num(next), ":expected": num(expected) },
              ReturnValuesOnConditionCheckFailure: "ALL_OLD",
            },
          },
          {
            Put: {
              TableName: this.#tableName,
              Item: {
                pk: { S: requestKey },
                value: num(next),
                delta: num(delta),
                issuedAt: num(issuedAt),
                ttl: num(Math.ceil((retryBefore + RETENTION_MARGIN_MS) / 1000)),
              },
              ConditionExpression: "attribute_not_exists(pk)",
              ReturnValuesOnConditionCheckFailure: "ALL_OLD",
            },
          },
        ],
      });
      const attempts = trackAttempts(write);
      try {
        await this.#dynamodb.send(write);
        return this.#saw(next);
      } catch (err) {
        uncertain ||= attempts.uncertain;
        if (err instanceof TransactionCanceledException) {
          const [counterReason, requestReason] = err.CancellationReasons ?? [];
          // The request item exists: an attempt of this request applied, and it says with what value.
          if (requestReason?.Code === "ConditionalCheckFailed") return this.#remembered(requestReason.Item, requestId, delta);
          if (counterReason?.Code === "ConditionalCheckFailed") {
            // Another increment moved the counter: the failed condition tells us where to.
            this.#saw(Number(counterReason.Item?.["n"]?.N ?? 0));
            if (attempt > 0) await sleep(jitter(attempt));
            continue;
          }
          if ((err.CancellationReasons ?? []).some((r) => r.Code === "TransactionConflict" || r.Code === "ThrottlingError")) {
            await sleep(jitter(attempt));
            continue;
          }
          throw err;
        }
        if (certainlyNotApplied(err) && !uncertain) throw err;
        // No answer, or an answer after an attempt without one: the request item settles it
        // on the next try (within the window); a late copy can land only if the counter is
        // still where that copy expected it, that is, if no attempt of ours applied.
        uncertain = true;
        if (++unanswered >= UNANSWERED_SENDS) throw new IncrementOutcomeUnknownError(this.name, requestId, retryBefore, { cause: err });
        await sleep(jitter(attempt));
      }
    }
  }

  /** The value an earlier attempt of `requestId` got, as its request item records it. */
  #remembered(item: Item | undefined, requestId: string, delta: number): number {
    const value = Number(item?.["value"]?.N);
    const firstDelta = Number(item?.["delta"]?.N);
    if (!Number.isSafeInteger(value)) throw new Error(`request item of '${requestId}' on counter '${this.name}' has no value: ${JSON.stringify(item)}`);
    if (firstDelta !== delta) {
      throw new InvalidArgumentError("requestId", `'${requestId}' was first used to add ${firstDelta} to counter '${this.name}' (it got ${value}), not ${delta}: a retry must repeat its delta; a new increment needs a new request id`);
    }
    this.#saw(value);
    return value;
  }

  #saw(value: number): number {
    if (value > this.#lastSeen) this.#lastSeen = value;
    return value;
  }
}

const MINTED_ID = /^(\d{1,15})-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** When `requestId` was minted (epoch ms); InvalidArgumentError if no Counter minted it. */
function mintedAt(requestId: string): number {
  const match = typeof requestId === "string" ? MINTED_ID.exec(requestId) : null;
  if (!match) {
    throw new InvalidArgumentError(
      "requestId",
      `'${String(requestId)}' is not an id from Counter.newRequestId(): a retry must reuse the id its first attempt was given (it records when that was)`,
    );
  }
  return Number(match[1]);
}

const num = (v: number): AttributeValue => ({ N: String(v) });

/** Full jitter, growing with the attempt, capped at 100 ms: contenders spread out instead of colliding again. */
const jitter = (attempt: number): number => Math.random() * Math.min(100, 2 ** Math.min(attempt, 7));
