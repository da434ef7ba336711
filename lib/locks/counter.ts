/**
 * A linearizable increment-and-get counter: the primitive DDIA builds total order
 * broadcast from.
 *
 * Guarantees: every successful `incrementAndGet` returns a distinct value, and values
 * follow the real-time order of the increments (one atomic UpdateItem each). Retries are
 * idempotent by request id: the item remembers the value each of its last
 * `REMEMBERED_REQUESTS` request ids got, so an increment retried after a lost response
 * returns the value it got the first time instead of counting twice.
 * Assumes: a table with string partition key `pk`; a retry of a request id happens
 * before `REMEMBERED_REQUESTS` further increments (seconds, in practice).
 */
import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { randomUUID } from "node:crypto";
import { validateName } from "./client.js";
import { InvalidArgumentError } from "./errors.js";

/** How many recent request ids a counter remembers for idempotent retries. */
export const REMEMBERED_REQUESTS = 256;
const PRUNE_EVERY = 64;

export interface CounterOptions {
  tableName: string;
  name: string;
  dynamodb?: DynamoDBClient;
}

export class Counter {
  readonly name: string;
  readonly #dynamodb: DynamoDBClient;
  readonly #tableName: string;
  readonly #key: string;

  constructor(options: CounterOptions) {
    validateName("tableName", options.tableName);
    validateName("name", options.name);
    this.name = options.name;
    this.#dynamodb = options.dynamodb ?? new DynamoDBClient({});
    this.#tableName = options.tableName;
    this.#key = `counter#${options.name}`;
  }

  /** The current value (consistent read); 0 if never incremented. */
  async get(): Promise<number> {
    const { Item } = await this.#dynamodb.send(
      new GetItemCommand({ TableName: this.#tableName, Key: { pk: { S: this.#key } }, ConsistentRead: true, ProjectionExpression: "n" }),
    );
    return Number(Item?.["n"]?.N ?? 0);
  }

  /**
   * Adds `delta` (default 1) and returns the new value. Pass the same `requestId` when
   * retrying an increment whose outcome you did not learn; it is applied at most once.
   */
  async incrementAndGet(delta = 1, options: { requestId?: string } = {}): Promise<number> {
    if (!Number.isSafeInteger(delta) || delta < 1) throw new InvalidArgumentError("delta", `must be a positive integer, got ${delta}`);
    const requestId = options.requestId ?? randomUUID();
    validateName("requestId", requestId);
    for (;;) {
      try {
        const out = await this.#dynamodb.send(
          new UpdateItemCommand({
            TableName: this.#tableName,
            Key: { pk: { S: this.#key } },
            UpdateExpression: "SET n = n + :d, recent.#rid = n + :d",
            ConditionExpression: "attribute_not_exists(recent.#rid)",
            ExpressionAttributeNames: { "#rid": requestId },
            ExpressionAttributeValues: { ":d": { N: String(delta) } },
            ReturnValues: "UPDATED_NEW",
            ReturnValuesOnConditionCheckFailure: "ALL_OLD",
          }),
        );
        const value = Number(out.Attributes?.["n"]?.N);
        if (value % PRUNE_EVERY === 0) await this.#prune(value);
        return value;
      } catch (err) {
        if (err instanceof ConditionalCheckFailedException) {
          const remembered = err.Item?.["recent"]?.M?.[requestId]?.N;
          if (remembered !== undefined) return Number(remembered);
          throw err;
        }
        if ((err as Error).name === "ValidationException" && /document path|attribute that does not exist/i.test((err as Error).message)) {
          await this.#create();
          continue;
        }
        throw err;
      }
    }
  }

  async #create(): Promise<void> {
    try {
      await this.#dynamodb.send(
        new PutItemCommand({
          TableName: this.#tableName,
          Item: { pk: { S: this.#key }, n: { N: "0" }, recent: { M: {} } },
          ConditionExpression: "attribute_not_exists(pk)",
        }),
      );
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
    }
  }

  /** Forgets request ids older than the last REMEMBERED_REQUESTS increments. */
  async #prune(value: number): Promise<void> {
    const { Item } = await this.#dynamodb.send(
      new GetItemCommand({ TableName: this.#tableName, Key: { pk: { S: this.#key } }, ConsistentRead: true, ProjectionExpression: "recent" }),
    );
    const stale = Object.entries(Item?.["recent"]?.M ?? {})
      .filter(([, v]) => Number(v.N) <= value - REMEMBERED_REQUESTS)
      .map(([id]) => id)
      .slice(0, 100);
    if (stale.length === 0) return;
    const names = Object.fromEntries(stale.map((id, i) => [`#r${i}`, id]));
    await this.#dynamodb.send(
      new UpdateItemCommand({
        TableName: this.#tableName,
        Key: { pk: { S: this.#key } },
        UpdateExpression: `REMOVE ${stale.map((_, i) => `recent.#r${i}`).join(", ")}`,
        ExpressionAttributeNames: names,
      }),
    );
  }
}
