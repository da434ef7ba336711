/**
 * Fenced writes: storage that rejects a write carrying a lower fencing token than one
 * that already wrote, so a lock holder that was paused past its lease cannot overwrite
 * the work of the holder that replaced it (DDIA, "fencing tokens").
 *
 * Guarantees: `put` applies only if no higher token has written the key, in one
 * conditional write. Under one token (one holder), writes apply in the order they were
 * made: each carries a sequence number, increasing within the process, so a request that
 * reaches DynamoDB late (after the SDK retried it, and after the holder's later writes)
 * cannot bring back an older value. `fenceCondition` gives the token check for your own
 * DynamoDB writes (order your own writes within a token, if requests can arrive late).
 * A put overwrites only items a FencedStore wrote (marked `fp_kind`), so a `keyPrefix` that
 * collides with lock items, the token floor or your own items fails with KeyInUseError
 * instead of destroying them. A put whose response was lost, met by a retry after a
 * newer write, rejects with OutcomeUnknownError (it may have landed).
 * Assumes: each key is guarded by one lock name (tokens of different names are unrelated);
 * the table has a string partition key `pk`.
 */
import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  type AttributeValue,
} from "@aws-sdk/client-dynamodb";
import { validateFencingToken, validateName } from "../internal/validation.js";
import { InvalidArgumentError, KeyInUseError, OutcomeUnknownError, StaleTokenError } from "../errors.js";
import { trackAttempts } from "./lease.js";

/** A fencing token: a lock grant's number, strictly increasing per lock name. */
export type FencingToken = number;

/** Pieces to merge into your own PutItem / UpdateItem / TransactWriteItems entry. */
export interface FenceCondition {
  /** `attribute_not_exists(#fp_token) OR #fp_token <= :fp_token` */
  ConditionExpression: string;
  ExpressionAttributeNames: Record<string, string>;
  ExpressionAttributeValues: Record<string, AttributeValue>;
  /** `#fp_token = :fp_token`, to add to an UpdateExpression's SET clause (or store `attribute` in a Put). */
  setExpression: string;
}

const checkToken: (token: unknown) => asserts token is FencingToken = validateFencingToken;

/**
 * The condition that makes one of your writes fenced: it succeeds only if the item was
 * never written with a higher token in `attribute`. Also set `attribute` to the token in
 * the same write (see `setExpression`).
 */
export function fenceCondition(fencingToken: FencingToken, attribute = "fencingToken"): FenceCondition {
  checkToken(fencingToken);
  return {
    ConditionExpression: "attribute_not_exists(#fp_token) OR #fp_token <= :fp_token",
    ExpressionAttributeNames: { "#fp_token": attribute },
    ExpressionAttributeValues: { ":fp_token": { N: String(fencingToken) } },
    setExpression: "#fp_token = :fp_token",
  };
}

export interface FencedStoreOptions {
  tableName: string;
  dynamodb?: DynamoDBClient;
  /**
   * Prefix of the items' keys, so a store can share a table. Default: "fenced#". A put
   * never overwrites an item a FencedStore did not write (KeyInUseError instead).
   */
  keyPrefix?: string;
}

/**
 * Marks items a FencedStore wrote. A put overwrites only marked items, so no keyPrefix can
 * make it destroy a lock item or the token floor (which would let tokens regress).
 */
const KIND_ATTRIBUTE = "fp_kind";
const FENCED_KIND = "fenced-value";

let lastSequence = 0;
/** Increasing within this process: microseconds of wall-clock time, or one more than the last. */
function nextSequence(): number {
  lastSequence = Math.max(lastSequence + 1, Date.now() * 1000);
  return lastSequence;
}

/** A key-value store whose writes are fenced by lock tokens. Values are JSON. */
export class FencedStore<T = unknown> {
  readonly #dynamodb: DynamoDBClient;
  readonly #tableName: string;
  readonly #prefix: string;

  constructor(options: FencedStoreOptions) {
    validateName("tableName", options.tableName);
    this.#dynamodb = options.dynamodb ?? new DynamoDBClient({});
    this.#tableName = options.tableName;
    if (options.keyPrefix !== undefined && options.keyPrefix !== "") validateName("keyPrefix", options.keyPrefix);
    this.#prefix = options.keyPrefix ?? "fenced#";
  }

  /**
   * Writes `value` under `key` unless a higher token already wrote it (StaleTokenError if
   * one did), or a later write under the same token did.
   *
   * If an attempt's response was lost and, by the time a retry arrived, another write
   * had replaced the item, whether this write landed (and was then overwritten) cannot be
   * known: OutcomeUnknownError, never StaleTokenError, which would claim it did not land.
   * KeyInUseError if the key names an item a FencedStore did not write.
   */
  async put(key: string, value: T, fencingToken: FencingToken): Promise<void> {
    validateName("key", key);
    const fence = fenceCondition(fencingToken);
    const sequence = nextSequence();
    const itemKey = this.#prefix + key;
    const command = new PutItemCommand({
      TableName: this.#tableName,
      Item: {
        pk: { S: itemKey },
        [KIND_ATTRIBUTE]: { S: FENCED_KIND },
        value: { S: JSON.stringify(value) },
        fencingToken: { N: String(fencingToken) },
        writeSeq: { N: String(sequence) },
      },
      ConditionExpression:
        "attribute_not_exists(pk) OR (#fp_kind = :fp_kind AND (attribute_not_exists(#fp_token) OR #fp_token < :fp_token OR (#fp_token = :fp_token AND (attribute_not_exists(#fp_seq) OR #fp_seq < :fp_seq))))",
      ExpressionAttributeNames: { ...fence.ExpressionAttributeNames, "#fp_seq": "writeSeq", "#fp_kind": KIND_ATTRIBUTE },
      ExpressionAttributeValues: { ...fence.ExpressionAttributeValues, ":fp_seq": { N: String(sequence) }, ":fp_kind": { S: FENCED_KIND } },
      ReturnValuesOnConditionCheckFailure: "ALL_OLD",
    });
    const attempts = trackAttempts(command);
    try {
      await this.#dynamodb.send(command);
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
      const item = err.Item ?? {};
      if (item[KIND_ATTRIBUTE]?.S !== FENCED_KIND) throw new KeyInUseError(itemKey);
      const found = { token: Number(item["fencingToken"]?.N ?? Number.NaN), sequence: Number(item["writeSeq"]?.N ?? Number.NaN) };
      // Our own earlier attempt of this very write (its response was lost): it applied.
      if (found.token === fencingToken && found.sequence === sequence) return;
      // An earlier attempt may have landed before the write we now see replaced it.
      if (attempts.uncertain) {
        throw new OutcomeUnknownError(
          `The write to '${key}' with fencing token ${fencingToken} lost its response, and the item now holds a write by token ${found.token}: ` +
            `it may have landed and been overwritten, or never landed. Read the key before relying on either.`,
          { cause: err },
        );
      }
      throw new StaleTokenError(key, fencingToken, found.token);
    }
  }

  /** The value and the token that wrote it (consistent read), or undefined. */
  async get(key: string): Promise<{ value: T; fencingToken: FencingToken } | undefined> {
    validateName("key", key);
    const { Item } = await this.#dynamodb.send(
      new GetItemCommand({ TableName: this.#tableName, Key: { pk: { S: this.#prefix + key } }, ConsistentRead: true }),
    );
    if (Item?.[KIND_ATTRIBUTE]?.S !== FENCED_KIND || !Item["value"]?.S) return undefined;
    return { value: JSON.parse(Item["value"].S) as T, fencingToken: Number(Item["fencingToken"]?.N) };
  }
}
