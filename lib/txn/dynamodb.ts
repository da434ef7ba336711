/**
 * DynamoDbParticipant: DynamoDB writes that take part in two-phase commit, on one table.
 *
 * Its input is a list of writes (`put`, `update`, `delete`, `check`), each on its own item.
 * - prepare locks every item with one conditional write (a TransactWriteItems when there
 *   are several): `fp_tx` = the transaction, under the write's own condition and
 *   `attribute_not_exists(fp_tx)`. The lock is the durable yes vote; the condition is
 *   checked once, and holds until the decision because every Fencepost write respects
 *   the lock (your other writers add `notLockedByTransaction()`).
 * - commit applies each write under `fp_tx = <this transaction>` and removes the lock in
 *   the same request; abort removes the lock (deleting an item the prepare had to create).
 *   A condition failure means it was already done: both are idempotent.
 * - A prepare that placed its locks reads the decision log once more: if the transaction
 *   was decided meanwhile (the prepare landed late, after an abort that found nothing to
 *   release; or a stale duplicate after the commit), it releases them and votes no.
 *   `fp_last` (the last transaction that finished on an existing item) also refuses a
 *   stale duplicate prepare when no log is at hand.
 * - A prepare that meets another transaction's lock asks the decision log about it. An
 *   aborted one (or one past its deadline, which this aborts) is released right there;
 *   so is one that committed and finished phase two, because every participant then
 *   acknowledged its commit and any lock it still holds is a stale prepare's. A committed
 *   one still in phase two is left to its coordinator or recovery, which apply it. Then
 *   the prepare tries once more. Locks of crashed coordinators never block an item for good.
 * The fast path: when every participant of a transaction is a DynamoDbParticipant on the
 * coordinator's client, the coordinator writes all of them, plus the decision record, in
 * one TransactWriteItems (`directWrite` gives each write with its lock check).
 * Assumes: each item is written by at most one write per transaction.
 */
import {
  ConditionalCheckFailedException,
  DeleteItemCommand,
  DynamoDBClient,
  PutItemCommand,
  TransactionCanceledException,
  TransactWriteItemsCommand,
  UpdateItemCommand,
  type AttributeValue,
  type TransactWriteItem,
} from "@aws-sdk/client-dynamodb";
import { marshall, type NativeAttributeValue } from "@aws-sdk/util-dynamodb";
import { validateName } from "../locks/client.js";
import { InvalidArgumentError } from "../locks/errors.js";
import type { TransactionStatus } from "./log.js";
import { no, YES, type Participant, type TxContext, type Vote } from "./participant.js";
import { persistently } from "./retry.js";

type Item = Record<string, AttributeValue>;
export type Key = Record<string, NativeAttributeValue>;

/** A condition on the item as it is before the write, in DynamoDB's expression language. */
export interface Condition {
  readonly expression: string;
  readonly names?: Record<string, string>;
  readonly values?: Record<string, NativeAttributeValue>;
}

/** One write of a DynamoDbParticipant. Attribute names are top-level names. */
export type DynamoWrite =
  | { readonly type: "put"; readonly key: Key; readonly item?: Record<string, NativeAttributeValue>; readonly ifAbsent?: boolean; readonly condition?: Condition }
  | { readonly type: "update"; readonly key: Key; readonly set?: Record<string, NativeAttributeValue>; readonly add?: Record<string, number>; readonly remove?: readonly string[]; readonly condition?: Condition }
  | { readonly type: "delete"; readonly key: Key; readonly condition?: Condition }
  | { readonly type: "check"; readonly key: Key; readonly condition: Condition };

/** Attributes the protocol keeps on a locked item. */
export const LOCK_ATTRIBUTES = { tx: "fp_tx", fresh: "fp_fresh", last: "fp_last" } as const;

/** A condition fragment for writes made outside transactions: do not touch an item a transaction holds. */
export function notLockedByTransaction(): Condition {
  return { expression: "attribute_not_exists(#fp_tx)", names: { "#fp_tx": LOCK_ATTRIBUTES.tx } };
}

export interface DynamoDbParticipantOptions {
  readonly tableName: string;
  /** Share the coordinator's client to make transactions over these participants eligible for the fast path. */
  readonly dynamodb?: DynamoDBClient;
  /** Distinguishes several participants on one table (the id becomes `dynamodb:<table>#<label>`). */
  readonly label?: string;
}

const LOCK_NAMES = { "#fptx": LOCK_ATTRIBUTES.tx, "#fpfresh": LOCK_ATTRIBUTES.fresh, "#fplast": LOCK_ATTRIBUTES.last };
const m = (v: Record<string, NativeAttributeValue>): Item => marshall(v, { removeUndefinedValues: true, convertClassInstanceToMap: false });

/** An expression with its placeholders, ready to merge. */
interface Expr {
  expression: string;
  names: Record<string, string>;
  values: Item;
}

function userCondition(write: DynamoWrite): Expr | undefined {
  const parts: string[] = [];
  const names: Record<string, string> = {};
  if (write.type === "put" && write.ifAbsent) {
    parts.push(`attribute_not_exists(#fpk)`);
    names["#fpk"] = Object.keys(write.key)[0]!;
  }
  if (write.condition) {
    parts.push(`(${write.condition.expression})`);
    Object.assign(names, write.condition.names);
  }
  if (parts.length === 0) return undefined;
  return { expression: parts.join(" AND "), names, values: write.condition?.values ? m(write.condition.values) : {} };
}

/** The write's own change, as update clauses (update) — without the lock bookkeeping. */
function changeClauses(write: Extract<DynamoWrite, { type: "update" }>): { set: string[]; add: string[]; remove: string[]; names: Record<string, string>; values: Item } {
  const set: string[] = [];
  const add: string[] = [];
  const remove: string[] = [];
  const names: Record<string, string> = {};
  const values: Record<string, NativeAttributeValue> = {};
  let i = 0;
  for (const [attr, value] of Object.entries(write.set ?? {})) {
    names[`#fa${i}`] = attr;
    values[`:fa${i}`] = value;
    set.push(`#fa${i} = :fa${i}`);
    i++;
  }
  for (const [attr, value] of Object.entries(write.add ?? {})) {
    names[`#fa${i}`] = attr;
    values[`:fa${i}`] = value;
    add.push(`#fa${i} :fa${i}`);
    i++;
  }
  for (const attr of write.remove ?? []) {
    names[`#fa${i}`] = attr;
    remove.push(`#fa${i}`);
    i++;
  }
  return { set, add, remove, names, values: m(values) };
}

function updateExpression(clauses: { set: string[]; add: string[]; remove: string[] }): string {
  return [clauses.set.length ? `SET ${clauses.set.join(", ")}` : "", clauses.add.length ? `ADD ${clauses.add.join(", ")}` : "", clauses.remove.length ? `REMOVE ${clauses.remove.join(", ")}` : ""]
    .filter(Boolean)
    .join(" ");
}

export function validateWrites(field: string, writes: unknown): asserts writes is DynamoWrite[] {
  if (!Array.isArray(writes) || writes.length === 0) throw new InvalidArgumentError(field, "must be a non-empty list of writes");
  if (writes.length > 99) throw new InvalidArgumentError(field, `has ${writes.length} writes; at most 99 fit one participant`);
  const seen = new Set<string>();
  writes.forEach((w: Partial<DynamoWrite>, i) => {
    const at = `${field}[${i}]`;
    if (!w || !["put", "update", "delete", "check"].includes(String(w.type))) throw new InvalidArgumentError(`${at}.type`, "must be put, update, delete or check");
    if (!w.key || typeof w.key !== "object" || Object.keys(w.key).length === 0) throw new InvalidArgumentError(`${at}.key`, "must name the item's key attributes");
    const key = JSON.stringify(w.key);
    if (seen.has(key)) throw new InvalidArgumentError(`${at}.key`, "is written twice in one participant; merge the writes");
    seen.add(key);
    const touched = [...Object.keys((w as { set?: object }).set ?? {}), ...Object.keys((w as { add?: object }).add ?? {}), ...((w as { remove?: string[] }).remove ?? []), ...Object.keys((w as { item?: object }).item ?? {})];
    for (const attr of touched) {
      if (Object.values(LOCK_ATTRIBUTES).includes(attr as never)) throw new InvalidArgumentError(`${at}`, `may not write '${attr}': the transaction protocol owns it`);
      if (attr in w.key) throw new InvalidArgumentError(`${at}`, `may not change key attribute '${attr}'`);
    }
    if (w.type === "check" && !w.condition) throw new InvalidArgumentError(`${at}.condition`, "is required for a check");
  });
}

export class DynamoDbParticipant implements Participant<DynamoWrite[]> {
  readonly id: string;
  readonly tableName: string;
  readonly dynamodb: DynamoDBClient;

  constructor(options: DynamoDbParticipantOptions) {
    validateName("tableName", options.tableName);
    this.tableName = options.tableName;
    this.dynamodb = options.dynamodb ?? new DynamoDBClient({});
    this.id = `dynamodb:${options.tableName}${options.label ? `#${options.label}` : ""}`;
  }

  /** The write as one TransactWriteItems entry that applies it now, if the item is not locked (the fast path). */
  directWrite(write: DynamoWrite): TransactWriteItem {
    const cond = userCondition(write);
    const condition = {
      ConditionExpression: `attribute_not_exists(#fptx)${cond ? ` AND ${cond.expression}` : ""}`,
      ExpressionAttributeNames: { "#fptx": LOCK_ATTRIBUTES.tx, ...cond?.names },
      ...(cond && Object.keys(cond.values).length ? { ExpressionAttributeValues: cond.values } : {}),
    };
    const Key = m(write.key);
    switch (write.type) {
      case "put":
        return { Put: { TableName: this.tableName, Item: m({ ...write.item, ...write.key }), ...condition } };
      case "delete":
        return { Delete: { TableName: this.tableName, Key, ...condition } };
      case "check":
        return { ConditionCheck: { TableName: this.tableName, Key, ...condition } };
      case "update": {
        const c = changeClauses(write);
        if (!c.set.length && !c.add.length && !c.remove.length) return { ConditionCheck: { TableName: this.tableName, Key, ...condition } };
        return {
          Update: {
            TableName: this.tableName,
            Key,
            UpdateExpression: updateExpression(c),
            ConditionExpression: condition.ConditionExpression,
            ExpressionAttributeNames: { ...condition.ExpressionAttributeNames, ...c.names },
            ...(Object.keys({ ...cond?.values, ...c.values }).length ? { ExpressionAttributeValues: { ...cond?.values, ...c.values } } : {}),
          },
        };
      }
    }
  }

  async prepare(tx: TxContext, writes: DynamoWrite[]): Promise<Vote> {
    if (Date.now() > tx.deadline) return no(`${this.id}: prepare arrived after the transaction's deadline`);
    try {
      const first = await this.#lock(tx, writes);
      if (first.kind === "locked") return await this.#confirm(tx, writes);
      if (first.kind !== "conflict") return first.vote;
      // Another transaction holds an item: settle it if it is decided or stale, then try once more.
      const settled = await this.#settleForeign(tx, first.locks);
      if (!settled) return no(`${this.id}: an item is held by transaction '${first.locks[0]!.txId}', still undecided`);
      const second = await this.#lock(tx, writes);
      if (second.kind === "locked") return await this.#confirm(tx, writes);
      return second.kind === "conflict" ? no(`${this.id}: an item is held by transaction '${second.locks[0]!.txId}'`) : second.vote;
    } catch (err) {
      // A lock may have landed although we got an error. If the transaction is aborted
      // already, its abort came and went: release here (else the coming abort will). If it
      // committed, the lock may be the one its commit is on the way to apply: leave it.
      await this.#releaseUnless(tx, writes, (status) => status === "preparing" || status === "committed").catch(() => undefined);
      throw err;
    }
  }

  /**
   * After placing locks, make sure the transaction is still undecided. A prepare can land
   * late (a slow or retried request) after the coordinator gave up on it, decided abort
   * and delivered the abort, which found nothing to release; or a stale duplicate can land
   * after the commit was applied. The log is read after the lock is written, so if it
   * still says `preparing`, any decision (and its delivery) comes after the lock and will
   * find it; otherwise this prepare releases its own locks and votes no. Retried through
   * transient errors: nobody else would release these locks (the next transaction on an
   * item would, from the log).
   */
  async #confirm(tx: TxContext, writes: DynamoWrite[]): Promise<Vote> {
    const status = await this.#releaseUnless(tx, writes, (s) => s === "preparing");
    return status === "preparing" || status === "no log" ? YES : no(`${this.id}: the transaction was already ${status ?? "forgotten"} when this prepare landed`);
  }

  /**
   * Reads this transaction's status from the log and releases our locks unless `keep`
   * says otherwise, through transient errors. Without a log at hand, keeps them.
   */
  async #releaseUnless(tx: TxContext, writes: DynamoWrite[], keep: (status: TransactionStatus | undefined) => boolean): Promise<TransactionStatus | undefined | "no log"> {
    const decisions = tx.decisions;
    if (!decisions) return "no log";
    return persistently(async () => {
      const status = await decisions.status(tx.txId);
      if (!keep(status)) await this.abort(tx, writes);
      return status;
    });
  }

  async commit(tx: TxContext, writes: DynamoWrite[]): Promise<void> {
    await Promise.all(writes.map((w) => this.#apply(tx.txId, w)));
  }

  async abort(tx: TxContext, writes: DynamoWrite[]): Promise<void> {
    await Promise.all(writes.map((w) => this.#release(tx.txId, w.key)));
  }

  /**
   * The prepare write of one item: the lock, under the write's condition and an explicit
   * assumption about whether the item exists (`fresh`: it does not, so an abort deletes it).
   */
  #lockUpdate(txId: string, write: DynamoWrite, fresh: boolean) {
    const cond = userCondition(write);
    return {
      TableName: this.tableName,
      Key: m(write.key),
      UpdateExpression: "SET #fptx = :fptx, #fpfresh = :fpfresh",
      ConditionExpression: `${fresh ? "attribute_not_exists" : "attribute_exists"}(#fppk) AND attribute_not_exists(#fptx) AND (attribute_not_exists(#fplast) OR #fplast <> :fptx)${cond ? ` AND ${cond.expression}` : ""}`,
      ExpressionAttributeNames: { ...LOCK_NAMES, "#fppk": Object.keys(write.key)[0]!, ...cond?.names },
      ExpressionAttributeValues: { ":fptx": { S: txId }, ":fpfresh": { BOOL: fresh }, ...cond?.values },
      ReturnValuesOnConditionCheckFailure: "ALL_OLD" as const,
    };
  }

  /**
   * Locks all items in one request (two if some item must be created: the first attempt
   * assumes items exist, and learns from the failure which do not). A condition failure
   * is read from the items as they were.
   */
  async #lock(tx: TxContext, writes: DynamoWrite[]): Promise<{ kind: "locked" } | { kind: "vote"; vote: Vote } | { kind: "conflict"; locks: { txId: string; key: Key }[] }> {
    const fresh = writes.map((w) => w.type === "put" && w.ifAbsent === true);
    const flipped = writes.map(() => false);
    for (;;) {
      let found: (Item | undefined)[];
      try {
        if (writes.length === 1) await this.dynamodb.send(new UpdateItemCommand(this.#lockUpdate(tx.txId, writes[0]!, fresh[0]!)));
        else await this.dynamodb.send(new TransactWriteItemsCommand({ TransactItems: writes.map((w, i) => ({ Update: this.#lockUpdate(tx.txId, w, fresh[i]!) })) }));
        return { kind: "locked" };
      } catch (err) {
        if (err instanceof ConditionalCheckFailedException) found = [err.Item ?? {}];
        else if (err instanceof TransactionCanceledException) {
          const reasons = err.CancellationReasons ?? [];
          if (reasons.some((r) => r.Code === "TransactionConflict")) return { kind: "vote", vote: no(`${this.id}: a concurrent transaction touched the same items`) };
          found = reasons.map((r) => (r.Code === "ConditionalCheckFailed" ? (r.Item ?? {}) : undefined));
          if (found.every((f) => f === undefined)) throw err;
        } else throw err;
      }
      // found[i]: undefined = write i did not fail; {} = failed, the item does not exist; else the item as it was.
      // A wrong guess about existence is fixed once per write, then the lock is tried again.
      const wrong = found.map((item, i) => item !== undefined && Object.keys(item).length > 0 === fresh[i] && !flipped[i] && !(writes[i]!.type === "put" && writes[i]!.ifAbsent));
      if (!wrong.some(Boolean)) return this.#judge(tx, writes, found);
      wrong.forEach((w, i) => {
        if (w) [fresh[i], flipped[i]] = [!fresh[i], true];
      });
    }
  }

  /** What a failed lock attempt means, from the items as they were. */
  #judge(tx: TxContext, writes: DynamoWrite[], found: (Item | undefined)[]): { kind: "vote"; vote: Vote } | { kind: "conflict"; locks: { txId: string; key: Key }[] } {
    const failed = found.filter((i): i is Item => i !== undefined);
    // Our own lock: an earlier attempt of this prepare applied (all-or-nothing), so the yes stands.
    if (failed.some((i) => i[LOCK_ATTRIBUTES.tx]?.S === tx.txId)) return { kind: "vote", vote: YES };
    const locks = found.flatMap((item, i) => {
      const holder = item?.[LOCK_ATTRIBUTES.tx]?.S;
      return holder ? [{ txId: holder, key: writes[i]!.key }] : [];
    });
    if (locks.length > 0) return { kind: "conflict", locks };
    if (failed.some((i) => i[LOCK_ATTRIBUTES.last]?.S === tx.txId)) return { kind: "vote", vote: no(`${this.id}: this transaction already finished here (a stale prepare)`) };
    return { kind: "vote", vote: no(`${this.id}: a write's condition does not hold`) };
  }

  /**
   * Releases other transactions' locks that the log shows are finished with (see the
   * module comment); false if one must stay (undecided, or committed and still in phase two).
   */
  async #settleForeign(tx: TxContext, locks: { txId: string; key: Key }[]): Promise<boolean> {
    if (!tx.decisions) return false;
    for (const { txId, key } of locks) {
      const { status, done } = await tx.decisions.settle(txId);
      if (status === "preparing" || (status === "committed" && !done)) return false;
      await this.#release(txId, key);
    }
    return true;
  }

  /** Applies a prepared write and unlocks the item; nothing if it is no longer locked by `txId`. */
  async #apply(txId: string, write: DynamoWrite): Promise<void> {
    // Only while the item is still held by this transaction: a repeat finds it unlocked.
    const held = { ConditionExpression: "#fptx = :fptx", ExpressionAttributeNames: { "#fptx": LOCK_ATTRIBUTES.tx }, ExpressionAttributeValues: { ":fptx": { S: txId } } };
    const Key = m(write.key);
    try {
      switch (write.type) {
        case "put":
          await this.dynamodb.send(new PutItemCommand({ TableName: this.tableName, Item: m({ ...write.item, ...write.key, [LOCK_ATTRIBUTES.last]: txId }), ...held }));
          return;
        case "delete":
          await this.dynamodb.send(new DeleteItemCommand({ TableName: this.tableName, Key, ...held }));
          return;
        case "check":
          return await this.#release(txId, write.key);
        case "update": {
          const c = changeClauses(write);
          c.set.push("#fplast = :fptx");
          c.remove.push("#fptx", "#fpfresh");
          await this.dynamodb.send(
            new UpdateItemCommand({
              TableName: this.tableName,
              Key,
              UpdateExpression: updateExpression(c),
              ConditionExpression: held.ConditionExpression,
              ExpressionAttributeNames: { ...LOCK_NAMES, ...c.names },
              ExpressionAttributeValues: { ...held.ExpressionAttributeValues, ...c.values },
            }),
          );
          return;
        }
      }
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err; // else: already applied
    }
  }

  /** Unlocks an item held by `txId`; deletes it if the prepare created it. */
  async #release(txId: string, key: Key): Promise<void> {
    const Key = m(key);
    try {
      await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key,
          UpdateExpression: "SET #fplast = :fptx REMOVE #fptx, #fpfresh",
          ConditionExpression: "#fptx = :fptx AND #fpfresh = :fpfalse",
          ExpressionAttributeNames: { "#fptx": LOCK_ATTRIBUTES.tx, "#fpfresh": LOCK_ATTRIBUTES.fresh, "#fplast": LOCK_ATTRIBUTES.last },
          ExpressionAttributeValues: { ":fptx": { S: txId }, ":fpfalse": { BOOL: false } },
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
      if (err.Item?.[LOCK_ATTRIBUTES.tx]?.S !== txId) return; // already released or applied
      await this.dynamodb
        .send(
          new DeleteItemCommand({
            TableName: this.tableName,
            Key,
            ConditionExpression: "#fptx = :fptx AND #fpfresh = :fptrue",
            ExpressionAttributeNames: { "#fptx": LOCK_ATTRIBUTES.tx, "#fpfresh": LOCK_ATTRIBUTES.fresh },
            ExpressionAttributeValues: { ":fptx": { S: txId }, ":fptrue": { BOOL: true } },
          }),
        )
        .catch((e: unknown) => {
          if (!(e instanceof ConditionalCheckFailedException)) throw e;
        });
    }
  }
}
