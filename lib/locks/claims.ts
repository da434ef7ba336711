/**
 * Uniqueness claims: "this username / email / order number belongs to one owner", the
 * uniqueness constraint DDIA shows needs linearizability.
 *
 * Guarantees: a value in a namespace is claimed by at most one owner; claiming is one
 * conditional write, idempotent for the owner that holds it (safe to retry after a lost
 * response); `claimWith` writes the claim and your own items in one TransactWriteItems,
 * so a user row never exists without its claim or the other way round; release is
 * owner-only.
 * Assumes: a table with string partition key `pk` (the lock table is fine).
 */
import {
  ConditionalCheckFailedException,
  DeleteItemCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  TransactionCanceledException,
  TransactWriteItemsCommand,
  type TransactWriteItem,
} from "@aws-sdk/client-dynamodb";
import { validateName } from "./client.js";
import { ClaimTakenError, NotLockOwnerError } from "./errors.js";

export interface ClaimsOptions {
  tableName: string;
  dynamodb?: DynamoDBClient;
}

export class Claims {
  readonly #dynamodb: DynamoDBClient;
  readonly #tableName: string;

  constructor(options: ClaimsOptions) {
    validateName("tableName", options.tableName);
    this.#dynamodb = options.dynamodb ?? new DynamoDBClient({});
    this.#tableName = options.tableName;
  }

  /** Claims `value` in `namespace` for `owner`. ClaimTakenError if another owner holds it. */
  async claim(namespace: string, value: string, owner: string): Promise<void> {
    const put = this.claimItem(namespace, value, owner).Put!;
    try {
      await this.#dynamodb.send(new PutItemCommand({ ...put, ReturnValuesOnConditionCheckFailure: "ALL_OLD" }));
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) throw new ClaimTakenError(namespace, value, err.Item?.["owner"]?.S);
      throw err;
    }
  }

  /**
   * Claims `value` and writes `items` (your own puts, updates, condition checks) in one
   * transaction: all or nothing. ClaimTakenError if the value is taken; your items'
   * failed conditions surface as the SDK's TransactionCanceledException.
   */
  async claimWith(namespace: string, value: string, owner: string, items: TransactWriteItem[], clientRequestToken?: string): Promise<void> {
    try {
      await this.#dynamodb.send(
        new TransactWriteItemsCommand({ TransactItems: [this.claimItem(namespace, value, owner), ...items], ClientRequestToken: clientRequestToken }),
      );
    } catch (err) {
      if (err instanceof TransactionCanceledException && err.CancellationReasons?.[0]?.Code === "ConditionalCheckFailed") {
        throw new ClaimTakenError(namespace, value, err.CancellationReasons[0].Item?.["owner"]?.S);
      }
      throw err;
    }
  }

  /** The claim as a TransactWriteItem, to put in a transaction of your own. */
  claimItem(namespace: string, value: string, owner: string): TransactWriteItem {
    validateName("owner", owner);
    return {
      Put: {
        TableName: this.#tableName,
        Item: { pk: { S: claimKey(namespace, value) }, owner: { S: owner }, claimedAt: { N: String(Date.now()) } },
        ConditionExpression: "attribute_not_exists(pk) OR #owner = :owner",
        ExpressionAttributeNames: { "#owner": "owner" },
        ExpressionAttributeValues: { ":owner": { S: owner } },
        ReturnValuesOnConditionCheckFailure: "ALL_OLD",
      },
    };
  }

  /** The owner of `value` in `namespace`, or undefined (consistent read). */
  async owner(namespace: string, value: string): Promise<string | undefined> {
    const { Item } = await this.#dynamodb.send(
      new GetItemCommand({ TableName: this.#tableName, Key: { pk: { S: claimKey(namespace, value) } }, ConsistentRead: true }),
    );
    return Item?.["owner"]?.S;
  }

  /** Releases the claim; owner-only (NotLockOwnerError otherwise), idempotent when already free. */
  async release(namespace: string, value: string, owner: string): Promise<void> {
    try {
      await this.#dynamodb.send(
        new DeleteItemCommand({
          TableName: this.#tableName,
          Key: { pk: { S: claimKey(namespace, value) } },
          ConditionExpression: "attribute_not_exists(pk) OR #owner = :owner",
          ExpressionAttributeNames: { "#owner": "owner" },
          ExpressionAttributeValues: { ":owner": { S: owner } },
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) throw new NotLockOwnerError(`${namespace}/${value}`, owner, err.Item?.["owner"]?.S);
      throw err;
    }
  }
}

function claimKey(namespace: string, value: string): string {
  validateName("namespace", namespace);
  validateName("value", value);
  // The namespace's length makes the key unambiguous whatever characters either part holds.
  return `claim#${namespace.length}:${namespace}#${value}`;
}
