/**
 * A linearizable increment-and-get counter: the primitive DDIA builds total order
 * broadcast from.
 * (Guarantees and assumptions: see the TSDoc of Counter below.)
 */
import {
  DynamoDBClient,
  GetItemCommand,
  TransactionCanceledException,
  TransactWriteItemsCommand,
  type AttributeValue,
} from "@aws-sdk/client-dynamodb";
import { randomUUID } from "node:crypto";
import { jitter, sleep } from "../internal/time.js";
import { validateName } from "../internal/validation.js";
import { CounterContentionError, IncrementOutcomeUnknownError, InvalidArgumentError, RetryWindowExceededError } from "../errors.js";
import { certainlyNotApplied } from "../internal/outcomes.js";
import { DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_CALL_MS, DEFAULT_RETRY_WINDOW_MS } from "./defaults.js";
import { trackAttempts } from "./lease.js";

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
   * The retry window of the request ids this Counter mints (at least 1 s): how long
   * after minting an increment may be retried with its id. The id carries it, so a
   * retry is judged by it whichever Counter sends the retry. Request items are kept
   * this long plus `RETENTION_MARGIN_MS`.
   * @default DEFAULT_RETRY_WINDOW_MS (1 hour)
   */
  retryWindowMs?: number;
  /**
   * The wall clock (epoch ms) stamped into request ids and read on retry. Injectable for
   * tests; correctness assumes it is within the margin of DynamoDB's (see the header).
   * @default Date.now
   */
  wallClock?: () => number;
  /**
   * Attempts one `incrementAndGet` call makes while refused by contention (other
   * increments, transaction conflicts, throttling) before it throws
   * `CounterContentionError` (or `IncrementOutcomeUnknownError` if an attempt went unanswered).
   * @default DEFAULT_MAX_ATTEMPTS (50)
   */
  maxAttempts?: number;
  /**
   * How long (ms, monotonic) one `incrementAndGet` call keeps trying, apart from the retry window.
   * @default DEFAULT_MAX_CALL_MS (10 s)
   */
  maxCallMs?: number;
}

export interface IncrementOptions {
  /**
   * The request id of an increment you are retrying: one `newRequestId()` minted (of
   * any Counter), used with the same `delta`. Omit for a new increment.
   */
  requestId?: string;
}

type Item = Record<string, AttributeValue>;

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
 * - Retries are accepted for the retry window the request id carries: ids are
 *   `<mintedAt>-<retryWindowMs>-<uuid>`, stamped by the Counter that minted them, and
 *   every Counter judges a retry and sets the request item's TTL from the id alone (so a
 *   Counter with a longer window cannot accept a retry whose proof has expired).
 *   Request items live (DynamoDB TTL, attribute `ttl`) until one `RETENTION_MARGIN_MS`
 *   after the window closes, so a retry sent inside the window always finds the proof if
 *   the increment applied. A retry past the window is refused with
 *   `RetryWindowExceededError` before anything is sent, whether or not the item is still
 *   there (TTL deletion is lazy; the answer must not depend on it). Ids of the previous
 *   version (no window) get the shortest window, 1 s.
 * - Each call is bounded apart from the window: after `maxAttempts` refused attempts or
 *   `maxCallMs` it throws `CounterContentionError` (not applied) if no attempt of the call
 *   went unanswered, `IncrementOutcomeUnknownError` otherwise. A window closing during a
 *   call is `RetryWindowExceededError` only if an earlier attempt may have applied (one
 *   went unanswered, or the caller passed the id); otherwise it is contention too.
 * - O(1) capacity: both items stay the same size whatever the history (about 4 WCU per
 *   increment on AWS, a transactional write of two small items; the old design kept a
 *   map of up to 256+ ids in the counter item and cost about 12 WCU at steady state).
 *   Requests per increment: 1 when the counter is where this client last saw it (its
 *   previous increment or read); otherwise one more attempt, which learns the current
 *   value from the failed condition itself (no extra read). Transaction conflicts and
 *   repeated losses are retried with jitter (up to 100 ms); throttling with exponential
 *   backoff from 200 ms to 5 s.
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
export class Counter {
  readonly name: string;
  readonly #dynamodb: DynamoDBClient;
  readonly #tableName: string;
  readonly #key: string;
  readonly #retryWindowMs: number;
  readonly #wallClock: () => number;
  readonly #maxAttempts: number;
  readonly #maxCallMs: number;
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
    this.#maxAttempts = positiveInteger("maxAttempts", options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS);
    this.#maxCallMs = positiveInteger("maxCallMs", options.maxCallMs ?? DEFAULT_MAX_CALL_MS);
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
   * SQS redelivery): pass it to every try. It records when it was minted and this
   * Counter's `retryWindowMs`; every Counter judges its retries by that window.
   */
  newRequestId(): string {
    return `${Math.trunc(this.#wallClock())}-${this.#retryWindowMs}-${randomUUID()}`;
  }

  /**
   * Adds `delta` (default 1) and returns the new value. Pass the same `requestId` (and
   * the same `delta`) when retrying an increment whose outcome you did not learn: it is
   * applied at most once, and a retry of an applied increment returns the value it got.
   *
   * @throws CounterContentionError every attempt of this call was refused (other increments, transaction conflicts, throttling): this call applied nothing.
   * @throws RetryWindowExceededError the request id's retry window has closed and an earlier attempt may have applied.
   * @throws IncrementOutcomeUnknownError DynamoDB did not answer; retry with its `requestId`.
   * @throws InvalidArgumentError a bad delta, a request id no Counter minted, or one first used with another delta.
   */
  async incrementAndGet(delta = 1, options: IncrementOptions = {}): Promise<number> {
    if (!Number.isSafeInteger(delta) || delta < 1) throw new InvalidArgumentError("delta", `must be a positive integer, got ${delta}`);
    const requestId = options.requestId ?? this.newRequestId();
    const { mintedAt, windowMs } = parseRequestId(requestId);
    const requestKey = `counter-req#${this.name.length}:${this.name}#${requestId}`;
    const retryBefore = mintedAt + windowMs;
    const started = performance.now();
    // Did an attempt of this call end without an answer (it may still land, or have landed)?
    let uncertain = false;
    // A caller-supplied id may also have been sent by an earlier call.
    const sentBefore = options.requestId !== undefined;
    let unanswered = 0;
    let throttles = 0;
    for (let attempt = 1; ; attempt++) {
      const age = this.#wallClock() - mintedAt;
      const elapsed = performance.now() - started;
      if (age > windowMs) {
        if (uncertain || sentBefore) throw new RetryWindowExceededError(this.name, requestId, age, windowMs);
        throw new CounterContentionError(this.name, requestId, attempt - 1, elapsed, undefined);
      }
      if (attempt > this.#maxAttempts || elapsed > this.#maxCallMs) {
        if (uncertain) throw new IncrementOutcomeUnknownError(this.name, requestId, retryBefore);
        throw new CounterContentionError(this.name, requestId, attempt - 1, elapsed, retryBefore);
      }
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
                issuedAt: num(mintedAt),
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
          const reasons = err.CancellationReasons ?? [];
          const [counterReason, requestReason] = reasons;
          // The request item exists: an attempt of this request applied, and it says with what value.
          if (requestReason?.Code === "ConditionalCheckFailed") return this.#remembered(requestReason.Item, requestId, delta);
          if (counterReason?.Code === "ConditionalCheckFailed") {
            // Another increment moved the counter: the failed condition tells us where to.
            this.#saw(Number(counterReason.Item?.["n"]?.N ?? 0));
            if (attempt > 1) await sleep(contentionDelay(attempt));
            continue;
          }
          if (reasons.some((r) => r.Code === "ThrottlingError")) {
            await sleep(throttleBackoff(throttles++));
            continue;
          }
          if (reasons.some((r) => r.Code === "TransactionConflict")) {
            await sleep(contentionDelay(attempt));
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
        await sleep(contentionDelay(attempt));
      }
    }
  }

  /** The value an earlier attempt of `requestId` got, as its request item records it. */
  #remembered(item: Item | undefined, requestId: string, delta: number): number {
    const value = Number(item?.["value"]?.N);
    const firstDelta = Number(item?.["delta"]?.N);
    if (!Number.isSafeInteger(value)) {
      throw new InvalidArgumentError("requestId", `the item recorded for '${requestId}' on counter '${this.name}' holds no value (something other than a Counter wrote it): use a fresh id from newRequestId()`);
    }
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

/** `<mintedAt>-<retryWindowMs>-<uuid>`; ids of the previous version lack the window. */
const MINTED_ID = /^(\d{1,15})-(?:(\d{1,15})-)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * When `requestId` was minted (epoch ms) and the retry window it carries; InvalidArgumentError
 * if no Counter minted it. Ids of the previous version carry no window: their request items
 * were kept at least the shortest window plus the margin, so that is the window they get.
 */
function parseRequestId(requestId: string): { mintedAt: number; windowMs: number } {
  const match = typeof requestId === "string" ? MINTED_ID.exec(requestId) : null;
  const windowMs = match?.[2] === undefined ? MIN_RETRY_WINDOW_MS : Number(match[2]);
  if (!match || !Number.isSafeInteger(windowMs) || windowMs < MIN_RETRY_WINDOW_MS) {
    throw new InvalidArgumentError(
      "requestId",
      `'${String(requestId)}' is not an id from Counter.newRequestId(): a retry must reuse the id its first attempt was given (it records when that was, and for how long it may be retried)`,
    );
  }
  return { mintedAt: Number(match[1]), windowMs };
}

function positiveInteger(field: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new InvalidArgumentError(field, `must be a positive integer, got ${value}`);
  return value;
}

const num = (v: number): AttributeValue => ({ N: String(v) });

/** Full jitter, growing with the attempt, capped at 100 ms: contenders spread out instead of colliding again. */
const contentionDelay = (attempt: number): number => Math.random() * Math.min(100, 2 ** Math.min(attempt, 7));

/** Throttled: exponential backoff from 200 ms to 5 s, half of it random, so the table's capacity can recover. */
const throttleBackoff = (throttles: number): number => jitter(Math.min(5000, 200 * 2 ** Math.min(throttles, 5)));
