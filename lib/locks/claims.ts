/**
 * Uniqueness claims: "this username / email / order number belongs to one owner", the
 * uniqueness constraint DDIA shows needs linearizability.
 *
 * Guarantees:
 * - A value in a namespace is claimed by at most one claim at a time. Each claim is an
 *   incarnation: `claim` returns a `Claim` handle naming it (`incarnation`, fresh per
 *   call unless you pass your own), and `release` takes that handle. A release ends only
 *   the incarnation it names (the delete is conditioned on it), so a release delivered
 *   late, after the value was released and claimed again (by anyone, the same owner
 *   included), deletes nothing.
 * - Claiming is one conditional write, idempotent per incarnation: the write succeeds
 *   if the value is free or already holds this incarnation, so the SDK's retry after a
 *   lost response is recognised as the same claim. A claim whose answer never came is
 *   settled by one consistent read of the item, never guessed. The same owner holding
 *   the value under another incarnation is not this claim (ClaimHeldByOtherIncarnationError).
 * - `claimWith` writes the claim and your own items in one TransactWriteItems, so a user
 *   row never exists without its claim or the other way round.
 * - `release` reports success once the item proves the incarnation has ended: deleted by
 *   this call or an earlier attempt, or gone, or replaced by another claim. It never
 *   deletes another incarnation.
 * Assumes: a table with string partition key `pk` (the lock table is fine); incarnation
 * ids are unique (random UUIDs, or your own unique ids). Claims never expire: a claim
 * ends only by `release`. Not covered: a claim attempt delivered late (after its claim
 * was confirmed by a retry and then released, while the value is free) re-creates that
 * claim: the value stays with its owner, never with two, until released again.
 */
import {
  ConditionalCheckFailedException,
  DeleteItemCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  TransactionCanceledException,
  TransactWriteItemsCommand,
  type AttributeValue,
  type TransactWriteItem,
} from "@aws-sdk/client-dynamodb";
import { randomUUID } from "node:crypto";
import { validateName } from "./client.js";
import { ClaimHeldByOtherIncarnationError, ClaimTakenError } from "./errors.js";
import { certainlyNotApplied, trackAttempts, type AttemptLog } from "./lease.js";

/** Sends of a release that end with no answer before it gives up (the SDK retries each). */
const RELEASE_SENDS = 3;

export interface ClaimsOptions {
  tableName: string;
  dynamodb?: DynamoDBClient;
}

/** One claim of a value: what `claim` returns and `release` takes. Plain data: store it, send it, rebuild it. */
export interface Claim {
  readonly namespace: string;
  readonly value: string;
  readonly owner: string;
  /** Names this claim among every claim the value has had or will have; release ends only this one. */
  readonly incarnation: string;
}

export interface ClaimOptions {
  /**
   * Your own id for this claim: a retry of the call (after a crash, a Lambda retry)
   * passing the same id is recognised as the same claim. Must be unique per claim.
   * @default a fresh random UUID per call
   */
  incarnation?: string;
}

export interface ClaimWithOptions extends ClaimOptions {
  /** ClientRequestToken of the transaction. @default chosen by the SDK */
  clientRequestToken?: string;
}

type Item = Record<string, AttributeValue>;

export class Claims {
  readonly #dynamodb: DynamoDBClient;
  readonly #tableName: string;

  constructor(options: ClaimsOptions) {
    validateName("tableName", options.tableName);
    this.#dynamodb = options.dynamodb ?? new DynamoDBClient({});
    this.#tableName = options.tableName;
  }

  /**
   * Claims `value` in `namespace` for `owner` and returns the claim's handle.
   * @throws ClaimTakenError another claim holds it (ClaimHeldByOtherIncarnationError when it is the same owner's).
   */
  async claim(namespace: string, value: string, owner: string, options: ClaimOptions = {}): Promise<Claim> {
    const claim = this.newClaim(namespace, value, owner, options.incarnation);
    const put = new PutItemCommand(this.claimItem(claim).Put!);
    const attempts = trackAttempts(put);
    try {
      await this.#dynamodb.send(put);
      return claim;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) throw taken(claim, err.Item);
      return this.#settle(claim, err, attempts);
    }
  }

  /**
   * Claims `value` and writes `items` (your own puts, updates, condition checks) in one
   * transaction: all or nothing. Returns the claim's handle.
   * @throws ClaimTakenError the value is taken; your items' failed conditions surface as
   * the SDK's TransactionCanceledException.
   */
  async claimWith(namespace: string, value: string, owner: string, items: TransactWriteItem[], options: ClaimWithOptions = {}): Promise<Claim> {
    const claim = this.newClaim(namespace, value, owner, options.incarnation);
    const write = new TransactWriteItemsCommand({ TransactItems: [this.claimItem(claim), ...items], ClientRequestToken: options.clientRequestToken });
    const attempts = trackAttempts(write);
    try {
      await this.#dynamodb.send(write);
      return claim;
    } catch (err) {
      if (err instanceof TransactionCanceledException && err.CancellationReasons?.[0]?.Code === "ConditionalCheckFailed") {
        throw taken(claim, err.CancellationReasons[0].Item);
      }
      // The claim is written only with your items: finding it proves the whole transaction applied.
      return this.#settle(claim, err, attempts);
    }
  }

  /** A handle for a claim you will write yourself with `claimItem` (nothing is sent). */
  newClaim(namespace: string, value: string, owner: string, incarnation: string = randomUUID()): Claim {
    claimKey(namespace, value);
    validateName("owner", owner);
    validateName("incarnation", incarnation);
    return { namespace, value, owner, incarnation };
  }

  /**
   * The claim as a TransactWriteItem, to put in a transaction of your own. Its condition
   * fails (ConditionalCheckFailed, with the holder's item) if another claim holds the value.
   */
  claimItem(claim: Claim): TransactWriteItem {
    const { namespace, value, owner, incarnation } = this.newClaim(claim.namespace, claim.value, claim.owner, claim.incarnation);
    return {
      Put: {
        TableName: this.#tableName,
        Item: { pk: { S: claimKey(namespace, value) }, owner: { S: owner }, incarnation: { S: incarnation }, claimedAt: { N: String(Date.now()) } },
        ConditionExpression: "attribute_not_exists(pk) OR (incarnation = :incarnation AND #owner = :owner)",
        ExpressionAttributeNames: { "#owner": "owner" },
        ExpressionAttributeValues: { ":owner": { S: owner }, ":incarnation": { S: incarnation } },
        ReturnValuesOnConditionCheckFailure: "ALL_OLD",
      },
    };
  }

  /** The owner of `value` in `namespace`, or undefined (consistent read). */
  async owner(namespace: string, value: string): Promise<string | undefined> {
    return (await this.current(namespace, value))?.owner;
  }

  /** The claim holding `value` in `namespace`, or undefined (consistent read). An operator's way to end a claim whose handle was lost. */
  async current(namespace: string, value: string): Promise<Claim | undefined> {
    return claimOf(namespace, value, await this.#read(namespace, value));
  }

  /**
   * Ends `claim`: resolves once the item proves this incarnation is over (deleted now,
   * by an earlier attempt, or already replaced by another claim). Never deletes another
   * incarnation, so calling it again, or late, is safe.
   * @throws the SDK's error when DynamoDB stayed unreachable; the claim may still hold: call again.
   */
  async release(claim: Claim): Promise<void> {
    const { namespace, value, owner, incarnation } = this.newClaim(claim.namespace, claim.value, claim.owner, claim.incarnation);
    for (let send = 1; ; send++) {
      try {
        await this.#dynamodb.send(
          new DeleteItemCommand({
            TableName: this.#tableName,
            Key: { pk: { S: claimKey(namespace, value) } },
            ConditionExpression: "incarnation = :incarnation AND #owner = :owner",
            ExpressionAttributeNames: { "#owner": "owner" },
            ExpressionAttributeValues: { ":owner": { S: owner }, ":incarnation": { S: incarnation } },
          }),
        );
        return;
      } catch (err) {
        // The condition holds exactly while this incarnation holds the value: failing, it proves it over.
        if (err instanceof ConditionalCheckFailedException) return;
        if (send >= RELEASE_SENDS) throw err;
        if (certainlyNotApplied(err)) continue;
        if (claimOf(namespace, value, await this.#read(namespace, value))?.incarnation !== incarnation) return;
      }
    }
  }

  /** After a claim write ended without an answer: one consistent read says whether it landed. */
  async #settle(claim: Claim, err: unknown, attempts: AttemptLog): Promise<Claim> {
    if (certainlyNotApplied(err) && !attempts.uncertain) throw err;
    const found = await this.#read(claim.namespace, claim.value);
    const holder = claimOf(claim.namespace, claim.value, found);
    if (holder?.incarnation === claim.incarnation) return claim;
    if (holder) throw taken(claim, found);
    throw err; // not applied yet; call again with { incarnation: claim.incarnation } to stay the same claim
  }

  async #read(namespace: string, value: string): Promise<Item | undefined> {
    const { Item } = await this.#dynamodb.send(
      new GetItemCommand({ TableName: this.#tableName, Key: { pk: { S: claimKey(namespace, value) } }, ConsistentRead: true }),
    );
    return Item;
  }
}

function claimKey(namespace: string, value: string): string {
  validateName("namespace", namespace);
  validateName("value", value);
  // The namespace's length makes the key unambiguous whatever characters either part holds.
  return `claim#${namespace.length}:${namespace}#${value}`;
}

function claimOf(namespace: string, value: string, item: Item | undefined): Claim | undefined {
  const owner = item?.["owner"]?.S;
  if (owner === undefined) return undefined;
  // Claims written before incarnations existed: the empty incarnation, which no release names.
  return { namespace, value, owner, incarnation: item?.["incarnation"]?.S ?? "" };
}

/** The error for a claim that found the value held: by another owner, or by another incarnation of its own. */
function taken(claim: Claim, item: Item | undefined): ClaimTakenError {
  const holder = claimOf(claim.namespace, claim.value, item);
  if (holder?.owner === claim.owner) return new ClaimHeldByOtherIncarnationError(claim.namespace, claim.value, holder.owner, holder.incarnation);
  return new ClaimTakenError(claim.namespace, claim.value, holder?.owner);
}
