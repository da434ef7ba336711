/**
 * A linearizable compare-and-set register: one DynamoDB item, strongly consistent reads,
 * writes conditioned on the version.
 * (Guarantees and assumptions: see the TSDoc of Register below.)
 */
import { ConditionalCheckFailedException, DynamoDBClient, GetItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb";
import { randomUUID } from "node:crypto";
import { validateName } from "../internal/validation.js";
import { InvalidArgumentError, OutcomeUnknownError } from "../errors.js";
import { certainlyNotApplied } from "../internal/outcomes.js";
import { trackAttempts } from "./lease.js";


export interface Versioned<T> {
  readonly value: T;
  readonly version: number;
}

export type CasResult<T> = { ok: true; version: number } | { ok: false; current: Versioned<T> | undefined };

export interface RegisterOptions {
  tableName: string;
  name: string;
  dynamodb?: DynamoDBClient;
}

/**
 * A linearizable compare-and-set register: one DynamoDB item, strongly consistent reads,
 * writes conditioned on the version.
 *
 * Guarantees: versions start at 1 and increase by exactly 1 per successful write;
 * `compareAndSet(v, x)` succeeds only if the current version is `v` (0: absent). A write
 * whose response is lost is settled, not guessed: each carries a write id, recognised in
 * the old item a retry returns or in one consistent read. If the register has moved on
 * past our version by then and the write id is not there, whether our write landed is
 * unknowable and the call rejects with OutcomeUnknownError (never a wrong answer). That
 * includes a condition failure met by a retry (the SDK's or ours) after an attempt whose
 * answer was lost: it says nothing about whether that attempt landed.
 * Assumes: a table with string partition key `pk`; values are JSON.
 */
export class Register<T = unknown> {
  readonly name: string;
  readonly #dynamodb: DynamoDBClient;
  readonly #tableName: string;
  readonly #key: string;

  constructor(options: RegisterOptions) {
    validateName("tableName", options.tableName);
    validateName("name", options.name);
    this.name = options.name;
    this.#dynamodb = options.dynamodb ?? new DynamoDBClient({});
    this.#tableName = options.tableName;
    this.#key = `register#${options.name}`;
  }

  /** The current value and version (consistent read), or undefined if never written. */
  async get(): Promise<Versioned<T> | undefined> {
    const { Item } = await this.#dynamodb.send(new GetItemCommand({ TableName: this.#tableName, Key: { pk: { S: this.#key } }, ConsistentRead: true }));
    return parse<T>(Item);
  }

  /** Writes `value` if the current version is `expectedVersion` (0 = never written). */
  async compareAndSet(expectedVersion: number, value: T): Promise<CasResult<T>> {
    if (!Number.isSafeInteger(expectedVersion) || expectedVersion < 0) {
      throw new InvalidArgumentError("expectedVersion", `must be a non-negative integer, got ${expectedVersion}`);
    }
    const writeId = randomUUID();
    const next = expectedVersion + 1;
    // Did any attempt so far (ours or the SDK's retries) end without a definite answer?
    let uncertain = false;
    for (;;) {
      const put = new PutItemCommand({
        TableName: this.#tableName,
        Item: { pk: { S: this.#key }, value: { S: JSON.stringify(value) }, version: { N: String(next) }, writeId: { S: writeId } },
        ConditionExpression: expectedVersion === 0 ? "attribute_not_exists(pk)" : "#version = :expected",
        ExpressionAttributeNames: expectedVersion === 0 ? undefined : { "#version": "version" },
        ExpressionAttributeValues: expectedVersion === 0 ? undefined : { ":expected": { N: String(expectedVersion) } },
        ReturnValuesOnConditionCheckFailure: "ALL_OLD",
      });
      const attempts = trackAttempts(put);
      try {
        await this.#dynamodb.send(put);
        return { ok: true, version: next };
      } catch (err) {
        uncertain ||= attempts.uncertain;
        let found;
        if (err instanceof ConditionalCheckFailedException) found = err.Item;
        else if (certainlyNotApplied(err) && !uncertain) throw err;
        else {
          uncertain = true;
          found = (await this.#dynamodb.send(new GetItemCommand({ TableName: this.#tableName, Key: { pk: { S: this.#key } }, ConsistentRead: true }))).Item;
        }
        const current = parse<T>(found);
        if (found?.["writeId"]?.S === writeId) return { ok: true, version: next };
        // Versions only grow: still at the expected version means no attempt landed. Try again.
        if ((current?.version ?? 0) === expectedVersion) continue;
        if (!uncertain) return { ok: false, current };
        throw new OutcomeUnknownError(
          `compareAndSet on register '${this.name}' lost its response and the register has moved to version ${current?.version}; whether this write landed cannot be known. Read the register and decide.`,
        );
      }
    }
  }
}

function parse<T>(item: Record<string, { S?: string; N?: string }> | undefined): Versioned<T> | undefined {
  if (!item?.["value"]?.S || !item["version"]?.N) return undefined;
  return { value: JSON.parse(item["value"].S) as T, version: Number(item["version"].N) };
}
