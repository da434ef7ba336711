/**
 * Uniqueness claims: "this username / email / order number belongs to one owner", the
 * uniqueness constraint DDIA shows needs linearizability.
 * (Guarantees and assumptions: see the TSDoc of Claims below.)
 */
import {
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  ConditionalCheckFailedException,
  TransactionCanceledException,
  TransactWriteItemsCommand,
  UpdateItemCommand,
  type AttributeValue,
  type TransactWriteItem,
} from "@aws-sdk/client-dynamodb";
import { randomUUID } from "node:crypto";
import { jitter, sleep } from "../internal/time.js";
import { validateName } from "../internal/validation.js";
import { ClaimAlreadyReleasedError, ClaimHeldByOtherIncarnationError, ClaimOutcomeUnknownError, ClaimTakenError } from "../errors.js";
import { certainlyNotApplied } from "../internal/outcomes.js";
import { TOMBSTONE_RETENTION_MS } from "./defaults.js";
import { trackAttempts, type AttemptLog } from "./lease.js";

/** Sends of a release that end with no answer before it gives up (the SDK retries each). */
const RELEASE_SENDS = 3;
/** Tombstones one claim call follows (each found means another claim came and went meanwhile) before it gives up. */
const CLAIM_ATTEMPTS = 8;

export interface ClaimsOptions {
  tableName: string;
  dynamodb?: DynamoDBClient;
}

/** One claim of a value: what `claim` returns and `release` takes. Plain data: store it, send it, rebuild it. */
export interface Claim {
  readonly namespace: string;
  readonly value: string;
  readonly owner: string;
  /**
   * Names this claim among every claim the value has had or will have; release ends only
   * this one. The empty string names a claim written before incarnations existed.
   */
  readonly incarnation: string;
}

export interface ClaimOptions {
  /**
   * Your own id for this claim: a retry of the call (after a crash, a Lambda retry, a
   * ClaimOutcomeUnknownError) passing the same id is recognised as the same claim.
   * Must be unique per claim: once released, the same id is refused (ClaimAlreadyReleasedError).
   * @default a fresh random UUID per call
   */
  incarnation?: string;
}

/**
 * Options of `claimWith`. There is no ClientRequestToken option: an attempt that finds a
 * tombstone is retried with another condition, which a token would turn into
 * IdempotentParameterMismatch. Pass `incarnation` instead: a call retried with it finds
 * its claim and does not write your items again. A retry without it is another claim
 * (refused while the first holds the value, ClaimHeldByOtherIncarnationError).
 */
export type ClaimWithOptions = ClaimOptions;

type Item = Record<string, AttributeValue>;

/** What one claim attempt's condition expects to find: no item, or a released claim's tombstone at this epoch. */
type Expected = { epoch: number } | undefined;

/** The state of a claim item. */
type ClaimState =
  | { kind: "free"; expected: Expected }
  | { kind: "held"; claim: Claim }
  | { kind: "released"; claim: Claim; expected: Expected };

/**
 * Uniqueness claims: "this username / email / order number belongs to one owner", the
 * uniqueness constraint DDIA shows needs linearizability.
 *
 * Guarantees:
 * - A value in a namespace is claimed by at most one claim at a time. Each claim is an
 *   incarnation: `claim` returns a `Claim` handle naming it (`incarnation`, fresh per
 *   call unless you pass your own), and `release` takes that handle. A release ends only
 *   the incarnation it names (its write is conditioned on it), so a release delivered
 *   late, after the value was released and claimed again (by anyone, the same owner
 *   included), changes nothing.
 * - A claim attempt can apply only to the exact item state it was sent for, so no attempt
 *   lands after its call has returned: not after a ClaimTakenError, not after the claim
 *   was confirmed and released. Release does not delete the claim item: it turns it into
 *   a tombstone (`releasedAt`, kept a day by DynamoDB TTL on `ttl`), which counts as free.
 *   Every claim sets `epoch` to one more than the tombstone it replaces (1 on an absent
 *   item) and is conditioned on `attribute_not_exists(pk)` (first attempt) or on that
 *   tombstone's `epoch` (an attempt that found one). A late copy of any earlier attempt
 *   then fails: the item exists, or its epoch has moved. (Release keeps the epoch: the
 *   tombstone differs from the claim by `releasedAt`, which no claim attempt accepts.)
 * - Idempotent per incarnation: an attempt or call that finds the value held by its own
 *   incarnation (the SDK's retry after a lost response, or a call retried with the same
 *   `incarnation`) returns that claim without writing; one that finds its incarnation
 *   already released throws ClaimAlreadyReleasedError instead of claiming again. A claim
 *   whose answer never came is settled by one consistent read of the item, never
 *   guessed; if that cannot decide it, ClaimOutcomeUnknownError carries the claim.
 *   The same owner holding the value under another incarnation is not this claim
 *   (ClaimHeldByOtherIncarnationError).
 * - `claimWith` writes the claim and your own items in one TransactWriteItems, so a user
 *   row never exists without its claim or the other way round; finding its claim proves
 *   the whole transaction applied, so a call retried with the same `incarnation` does
 *   not write your items twice.
 * - `release` reports success once the item proves the incarnation has ended: released
 *   by this call or an earlier attempt, or gone, or replaced by another claim.
 * Assumes: a table with string partition key `pk` and TTL on `ttl` (the lock table);
 * incarnation ids are unique (random UUIDs, or your own unique ids); a signed request is
 * not delivered more than 15 minutes after it was signed (AWS rejects it), so a tombstone
 * kept a day outlives every attempt it must refuse, with the releaser's clock within
 * hours of DynamoDB's. Claims never expire: a claim ends only by `release`. Items of the
 * previous version (no `epoch`) count as epoch 0; clients of that version read a
 * tombstone as held and must not run alongside this one.
 */
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
   * @throws ClaimOutcomeUnknownError DynamoDB did not answer: call again with `{ incarnation: err.claim.incarnation }`.
   * @throws ClaimAlreadyReleasedError this incarnation was already claimed and released.
   */
  async claim(namespace: string, value: string, owner: string, options: ClaimOptions = {}): Promise<Claim> {
    const claim = this.newClaim(namespace, value, owner, options.incarnation);
    return this.#claimUntilSettled(claim, (claimItem) => {
      const put = new PutItemCommand(claimItem.Put!);
      return { attempts: trackAttempts(put), done: this.#dynamodb.send(put) };
    }, (err) => (err instanceof ConditionalCheckFailedException ? { found: err.Item } : undefined));
  }

  /**
   * Claims `value` and writes `items` (your own puts, updates, condition checks) in one
   * transaction: all or nothing. Returns the claim's handle. Pass `incarnation` to make a
   * call-level retry safe: without it, a retry is a new claim (refused while the first
   * holds); with it, a retry that finds its claim returns it and writes nothing.
   * @throws ClaimTakenError the value is taken; your items' failed conditions surface as
   * the SDK's TransactionCanceledException.
   * @throws ClaimOutcomeUnknownError DynamoDB did not answer: call again with `{ incarnation: err.claim.incarnation }`.
   * @throws ClaimAlreadyReleasedError this incarnation was already claimed and released.
   */
  async claimWith(namespace: string, value: string, owner: string, items: TransactWriteItem[], options: ClaimWithOptions = {}): Promise<Claim> {
    const claim = this.newClaim(namespace, value, owner, options.incarnation);
    return this.#claimUntilSettled(claim, (claimItem) => {
      const write = new TransactWriteItemsCommand({ TransactItems: [claimItem, ...items] });
      return { attempts: trackAttempts(write), done: this.#dynamodb.send(write) };
    }, (err) => {
      const reason = err instanceof TransactionCanceledException ? err.CancellationReasons?.[0] : undefined;
      return reason?.Code === "ConditionalCheckFailed" ? { found: reason.Item } : undefined;
    });
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
   * expects the item as `expected` says: absent (undefined, the default), or the tombstone
   * of a released claim at `expected.epoch`. It fails (ConditionalCheckFailed, with the
   * item found) otherwise; if the item found is a tombstone (it has `releasedAt`), send
   * again expecting its `epoch` (0 if it has none).
   */
  claimItem(claim: Claim, expected?: { epoch: number }): TransactWriteItem {
    const { namespace, value, owner, incarnation } = this.newClaim(claim.namespace, claim.value, claim.owner, claim.incarnation);
    const item: Item = { pk: { S: claimKey(namespace, value) }, owner: { S: owner }, incarnation: { S: incarnation }, claimedAt: { N: String(Date.now()) } };
    if (expected === undefined) {
      return { Put: { TableName: this.#tableName, Item: { ...item, epoch: { N: "1" } }, ConditionExpression: "attribute_not_exists(pk)", ReturnValuesOnConditionCheckFailure: "ALL_OLD" } };
    }
    return {
      Put: {
        TableName: this.#tableName,
        Item: { ...item, epoch: { N: String(expected.epoch + 1) } },
        // Items of the previous version carry no epoch: epoch 0.
        ConditionExpression: `attribute_exists(releasedAt) AND (epoch = :seen${expected.epoch === 0 ? " OR attribute_not_exists(epoch)" : ""})`,
        ExpressionAttributeValues: { ":seen": { N: String(expected.epoch) } },
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
    const state = stateOf(namespace, value, await this.#read(namespace, value));
    return state.kind === "held" ? state.claim : undefined;
  }

  /**
   * Ends `claim`: resolves once the item proves this incarnation is over (released now,
   * by an earlier attempt, or already replaced by another claim). Never ends another
   * incarnation, so calling it again, or late, is safe. The item stays as a tombstone
   * for `TOMBSTONE_RETENTION_MS`; the value is free meanwhile.
   * @throws the SDK's error when DynamoDB stayed unreachable; the claim may still hold: call again.
   */
  async release(claim: Claim): Promise<void> {
    const { namespace, value, owner, incarnation } = claim;
    claimKey(namespace, value);
    validateName("owner", owner);
    // The empty incarnation (current() of a claim older than incarnations) names the item without one.
    if (incarnation !== "") validateName("incarnation", incarnation);
    const now = Date.now();
    for (let send = 1; ; send++) {
      try {
        await this.#dynamodb.send(
          new UpdateItemCommand({
            TableName: this.#tableName,
            Key: { pk: { S: claimKey(namespace, value) } },
            UpdateExpression: "SET releasedAt = :now, #ttl = :ttl",
            ConditionExpression: `${incarnation === "" ? "attribute_not_exists(incarnation)" : "incarnation = :incarnation"} AND #owner = :owner AND attribute_not_exists(releasedAt)`,
            ExpressionAttributeNames: { "#owner": "owner", "#ttl": "ttl" },
            ExpressionAttributeValues: {
              ":owner": { S: owner },
              ":now": { N: String(now) },
              ":ttl": { N: String(Math.ceil((now + TOMBSTONE_RETENTION_MS) / 1000)) },
              ...(incarnation === "" ? {} : { ":incarnation": { S: incarnation } }),
            },
          }),
        );
        return;
      } catch (err) {
        // The condition holds exactly while this incarnation holds the value: failing, it proves it over.
        if (err instanceof ConditionalCheckFailedException) return;
        if (send >= RELEASE_SENDS) throw err;
        if (!certainlyNotApplied(err)) {
          const state = stateOf(namespace, value, await this.#read(namespace, value));
          if (state.kind !== "held" || state.claim.incarnation !== incarnation) return;
        }
        // Refused (throttled, say) or not applied yet: back off before sending again.
        await sleep(jitter(100 * 2 ** send));
      }
    }
  }

  /**
   * Sends claim attempts until one settles the claim: written, found held by this
   * incarnation, or refused by another claim. An attempt that finds a tombstone is sent
   * again expecting it; every attempt expects an item state that is gone once the call
   * returns, so none of them can land later.
   */
  async #claimUntilSettled(
    claim: Claim,
    send: (claimItem: TransactWriteItem) => { attempts: AttemptLog; done: Promise<unknown> },
    refusal: (err: unknown) => { found: Item | undefined } | undefined,
  ): Promise<Claim> {
    let expected: Expected;
    let uncertain = false;
    for (let attempt = 1; ; attempt++) {
      const { attempts, done } = send(this.claimItem(claim, expected));
      try {
        await done;
        return claim;
      } catch (err) {
        uncertain ||= attempts.uncertain;
        const refused = refusal(err);
        if (!refused) return this.#settle(claim, err, uncertain);
        const state = stateOf(claim.namespace, claim.value, refused.found);
        if (!isFreeFor(claim, state) || attempt >= CLAIM_ATTEMPTS) return settled(claim, state, refused.found);
        expected = state.expected;
      }
    }
  }

  /** After a claim write ended without a conclusive answer: one consistent read says whether it landed. */
  async #settle(claim: Claim, err: unknown, uncertain: boolean): Promise<Claim> {
    if (certainlyNotApplied(err) && !uncertain) throw err;
    const found = await this.#read(claim.namespace, claim.value);
    const state = stateOf(claim.namespace, claim.value, found);
    // Still free: an attempt may yet land (the item is as it expected). Only a retry with this incarnation can tell.
    if (isFreeFor(claim, state)) throw new ClaimOutcomeUnknownError(claim, { cause: err });
    return settled(claim, state, found);
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

/** Reads a claim item: absent, held, or the tombstone of a released claim (free, at its epoch). */
function stateOf(namespace: string, value: string, item: Item | undefined): ClaimState {
  const owner = item?.["owner"]?.S;
  if (item === undefined || owner === undefined) return { kind: "free", expected: undefined };
  // Claims written before incarnations existed: the empty incarnation.
  const claim: Claim = { namespace, value, owner, incarnation: item["incarnation"]?.S ?? "" };
  if (item["releasedAt"] === undefined) return { kind: "held", claim };
  const expected = { epoch: Number(item["epoch"]?.N ?? 0) };
  return { kind: "released", claim, expected };
}

/** Free for `claim` to take: absent, or the tombstone of another claim (its own tombstone means it already ended). */
function isFreeFor(claim: Claim, state: ClaimState): state is Extract<ClaimState, { expected: Expected }> {
  return state.kind === "free" || (state.kind === "released" && state.claim.incarnation !== claim.incarnation);
}

/**
 * What a claim call returns once it found the item in `state`: its own claim, or the
 * error for a value held by another claim, or for its own incarnation already released.
 */
function settled(claim: Claim, state: ClaimState, found: Item | undefined): Claim {
  const own = state.kind !== "free" && state.claim.incarnation === claim.incarnation && state.claim.owner === claim.owner;
  if (own && state.kind === "held") return claim;
  if (own) throw new ClaimAlreadyReleasedError(claim.namespace, claim.value, claim.incarnation);
  throw taken(claim, state.kind === "held" ? found : undefined);
}

/** The error for a claim that found the value held: by another owner, or by another incarnation of its own. */
function taken(claim: Claim, item: Item | undefined): ClaimTakenError {
  const holder = item ? stateOf(claim.namespace, claim.value, item) : undefined;
  if (holder?.kind === "held" && holder.claim.owner === claim.owner) return new ClaimHeldByOtherIncarnationError(claim.namespace, claim.value, holder.claim.owner, holder.claim.incarnation);
  return new ClaimTakenError(claim.namespace, claim.value, holder?.kind === "held" ? holder.claim.owner : undefined);
}
