/**
 * DynamoDbParticipant: DynamoDB writes that take part in two-phase commit, on one table.
 *
 * Its input is a list of writes (`put`, `update`, `delete`, `check`), each on its own item.
 * Its state is a lock on each item (`fp_tx` = the transaction; `fp_fresh` if the prepare
 * created the item) and one *ledger* item per participant and transaction in the
 * transaction table, `part#<participant id>#<txId>`, whose `state` is `prepared`,
 * `committed` or `aborted`.
 * - prepare is one TransactWriteItems: create the ledger as `prepared` (only if it does
 *   not exist yet) and lock every item under the write's own condition and
 *   `attribute_not_exists(fp_tx)`. The locks are the durable yes vote.
 * - commit is one TransactWriteItems: the ledger from `prepared` to `committed`, and every
 *   write applied under `fp_tx = <this transaction>`, which removes the lock.
 * - abort writes the ledger as `aborted` (refused if committed), then releases the locks
 *   if the ledger's previous state says there may be some (deleting items the prepare
 *   created).
 *
 * Why duplicate runs, duplicate messages and late requests are harmless:
 * 1. The ledger only moves forward: absent → prepared → committed, absent | prepared →
 *   aborted. Locks are placed only in the same atomic write that creates the ledger, and
 *   removed only in the write that moves it to committed (applied) or after it moved to
 *   aborted (released). So a prepare that lands late (after the abort or the commit
 *   reached this participant), or the prepare of a second run of the same transaction
 *   id, meets the ledger and changes nothing: no lock can appear once this participant
 *   has heard the decision, however late the request, and however many later
 *   transactions wrote the item meanwhile.
 * 2. Hence, while the ledger says `prepared`, every item holds this transaction's lock,
 *   placed by the prepare that created the ledger, whichever run sent it. A prepare that
 *   meets a `prepared` ledger and sees its locks votes yes on them: it is the same vote.
 * 3. commit applies and records in one atomic write, so "already applied" is proven by
 *   the ledger saying `committed`, never guessed from a missing lock. A commit that finds
 *   anything else throws ProtocolViolationError; it never reports a lost write as done.
 * 4. abort records `aborted` first, so nothing can be locked after it (1), then releases
 *   what the previous state says may be locked. A crash in between leaves locks that the
 *   next delivery of the abort (recovery re-drives it) or the next transaction needing
 *   the item (which asks the decision log) releases.
 * 5. A prepare that meets another transaction's lock asks that transaction's decision
 *   log (the lock names it, `fp_log`): an aborted holder's lock is released; a committed
 *   holder's commit is applied (idempotent, by 3), so a transaction whose coordinator died
 *   or that an operator forgot never blocks an item for good. A lock placed under another
 *   transaction table is never presumed aborted; it stays until its own log settles it.
 * The fast path: when every participant of a transaction is a DynamoDbParticipant in the
 * coordinator's database, the coordinator writes all of them, plus the decision record, in
 * one TransactWriteItems (`directWrite` gives each write with its lock check).
 * Assumes: the transaction table is in the same account and region as this table (one
 * TransactWriteItems spans both); each item is written by at most one write per
 * transaction; your other writers respect the locks (`notLockedByTransaction()`).
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
import { jitter, sleep } from "../internal/time.js";
import { isDeepStrictEqual } from "node:util";
import { validateName } from "../internal/validation.js";
import { InvalidArgumentError, ProtocolViolationError } from "../errors.js";
import { DEFAULT_RETAIN_MS } from "./defaults.js";
import { voteNo, VOTE_YES, type Participant, type TxContext, type Vote } from "./participant.js";

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
export const LOCK_ATTRIBUTES = { tx: "fp_tx", fresh: "fp_fresh", log: "fp_log" } as const;

/** A condition fragment for writes made outside transactions: do not touch an item a transaction holds. */
export function notLockedByTransaction(): Condition {
  return { expression: "attribute_not_exists(#fp_tx)", names: { "#fp_tx": LOCK_ATTRIBUTES.tx } };
}

export interface DynamoDbParticipantOptions {
  readonly tableName: string;
  /** Its DynamoDB client. Transactions whose participants are all in the coordinator's database (same endpoint, region and credentials) take the fast path. */
  readonly dynamodb?: DynamoDBClient;
  /** Distinguishes several participants on one table (the id becomes `dynamodb:<table>#<label>`). */
  readonly label?: string;
  /**
   * The transaction table that holds this participant's ledger items. Default: the
   * decision log's table, from the coordinator (`TxContext.decisions`). Needed only
   * where the participant is driven without one (for example behind a Lambda handler).
   * It must be in the same account and region as `tableName`.
   */
  readonly transactionTable?: string;
  /** How long ledger items are kept after their last change. @default DEFAULT_RETAIN_MS (7 days, as decision records) */
  readonly retainMs?: number;
}

/** Test seams for the verification harness (lib/check); never set in production. */
export interface DynamoDbParticipantHooks {
  /**
   * NEGATIVE CONTROL: create the ledger on prepare without checking that none exists, so a
   * late prepare can lock again after the decision reached this participant. Exists so
   * verification can prove that late delivery exposes it.
   */
  readonly unsafeUnconditionalLedger?: boolean;
}

const LOCK_NAMES = { "#fptx": LOCK_ATTRIBUTES.tx, "#fpfresh": LOCK_ATTRIBUTES.fresh };
/** Marshalls a participant write's plain values into DynamoDB attributes. */
const toAttributes = (v: Record<string, NativeAttributeValue>): Item => marshall(v, { removeUndefinedValues: true, convertClassInstanceToMap: false });

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
  return { expression: parts.join(" AND "), names, values: write.condition?.values ? toAttributes(write.condition.values) : {} };
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
    names[`#fpa${i}`] = attr;
    values[`:fpa${i}`] = value;
    set.push(`#fpa${i} = :fpa${i}`);
    i++;
  }
  for (const [attr, value] of Object.entries(write.add ?? {})) {
    names[`#fpa${i}`] = attr;
    values[`:fpa${i}`] = value;
    add.push(`#fpa${i} :fpa${i}`);
    i++;
  }
  for (const attr of write.remove ?? []) {
    names[`#fpa${i}`] = attr;
    remove.push(`#fpa${i}`);
    i++;
  }
  return { set, add, remove, names, values: toAttributes(values) };
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
    // Inputs are logged as JSON and phase two applies them from the log: they must survive it unchanged.
    if (!isDeepStrictEqual(JSON.parse(JSON.stringify(w)), w)) throw new InvalidArgumentError(at, "must be plain JSON (strings, finite numbers, booleans, null, lists and maps; no undefined, Sets, binary or class instances): it is logged and applied from the log");
    const key = JSON.stringify(Object.entries(w.key).sort(([a], [b]) => (a < b ? -1 : 1)));
    if (seen.has(key)) throw new InvalidArgumentError(`${at}.key`, "is written twice in one participant; merge the writes");
    seen.add(key);
    const placeholders = [...Object.keys(w.condition?.names ?? {}), ...Object.keys(w.condition?.values ?? {})];
    const reserved = placeholders.find((p) => p.startsWith("#fp") || p.startsWith(":fp"));
    if (reserved) throw new InvalidArgumentError(`${at}.condition`, `may not use the placeholder '${reserved}': names starting with #fp and :fp belong to the transaction protocol`);
    const touched = [...Object.keys((w as { set?: object }).set ?? {}), ...Object.keys((w as { add?: object }).add ?? {}), ...((w as { remove?: string[] }).remove ?? []), ...Object.keys((w as { item?: object }).item ?? {})];
    for (const attr of touched) {
      if (Object.values(LOCK_ATTRIBUTES).includes(attr as never)) throw new InvalidArgumentError(`${at}`, `may not write '${attr}': the transaction protocol owns it`);
      if (attr in w.key) throw new InvalidArgumentError(`${at}`, `may not change key attribute '${attr}'`);
    }
    if (w.type === "check" && !w.condition) throw new InvalidArgumentError(`${at}.condition`, "is required for a check");
  });
}

/** Another transaction's lock met by a prepare: its id, the transaction table it was placed under, the item. */
interface ForeignLock {
  readonly txId: string;
  readonly log: string | undefined;
  readonly key: Key;
}

/** A ledger's state, as this participant records it (absent: never prepared here). */
type LedgerState = "prepared" | "committed" | "aborted";

/** The items a failed TransactWriteItems saw: undefined = that item's condition held; {} = it does not exist. */
type Found = (Item | undefined)[];

/** How many times a prepare retries a TransactionConflict (a concurrent transaction on the same items) before voting no. */
const CONFLICT_RETRIES = 3;

/**
 * A cancelled TransactWriteItems, read: conflicts, and the items whose conditions failed.
 * Undefined when it is no cancellation, or one for another reason (throttling, a
 * validation error): that error is rethrown as it is, for the caller to retry or report.
 */
function cancelled(err: unknown): { conflict: boolean; found: Found } | undefined {
  if (!(err instanceof TransactionCanceledException)) return undefined;
  const reasons = err.CancellationReasons ?? [];
  if (reasons.some((r) => r.Code && !["None", "ConditionalCheckFailed", "TransactionConflict"].includes(r.Code))) return undefined;
  return { conflict: reasons.some((r) => r.Code === "TransactionConflict"), found: reasons.map((r) => (r.Code === "ConditionalCheckFailed" ? (r.Item ?? {}) : undefined)) };
}

/** DynamoDB writes on one table that take part in two-phase commit (see the module comment). */
export class DynamoDbParticipant implements Participant<DynamoWrite[]> {
  readonly id: string;
  /** A branch's input must be a list of DynamoWrites (see validateWrites). */
  readonly validateInput: (input: unknown, field: string) => void = (input, field) => validateWrites(field, input);
  readonly tableName: string;
  readonly dynamodb: DynamoDBClient;
  readonly #transactionTable: string | undefined;
  readonly #retainMs: number;
  readonly #ledgerCondition: string | undefined;

  /**
   * @param options the participant's table, client and ledger settings.
   * @param hooks test seams for the verification harness (lib/check); never set in production.
   */
  constructor(options: DynamoDbParticipantOptions, hooks: DynamoDbParticipantHooks = {}) {
    validateName("tableName", options.tableName);
    if (options.transactionTable !== undefined) validateName("transactionTable", options.transactionTable);
    this.tableName = options.tableName;
    this.dynamodb = options.dynamodb ?? new DynamoDBClient({});
    this.id = `dynamodb:${options.tableName}${options.label ? `#${options.label}` : ""}`;
    this.#transactionTable = options.transactionTable;
    this.#retainMs = options.retainMs ?? DEFAULT_RETAIN_MS;
    this.#ledgerCondition = hooks.unsafeUnconditionalLedger ? undefined : "attribute_not_exists(pk)";
  }

  /** The write as one TransactWriteItems entry that applies it now, if the item is not locked (the fast path). */
  directWrite(write: DynamoWrite): TransactWriteItem {
    const cond = userCondition(write);
    const condition = {
      ConditionExpression: `attribute_not_exists(#fptx)${cond ? ` AND ${cond.expression}` : ""}`,
      ExpressionAttributeNames: { "#fptx": LOCK_ATTRIBUTES.tx, ...cond?.names },
      ...(cond && Object.keys(cond.values).length ? { ExpressionAttributeValues: cond.values } : {}),
    };
    const Key = toAttributes(write.key);
    switch (write.type) {
      case "put":
        return { Put: { TableName: this.tableName, Item: toAttributes({ ...write.item, ...write.key }), ...condition } };
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
    if (Date.now() > tx.deadline) return voteNo(`${this.id}: prepare arrived after the transaction's deadline`);
    const first = await this.#lock(tx, writes);
    if (first.kind !== "conflict") return first.vote;
    // Another transaction holds an item: release its locks if it aborted, then try once more.
    const settled = await this.#settleForeign(tx, first.locks);
    if (!settled) return voteNo(`${this.id}: an item is held by transaction '${first.locks[0]!.txId}', not yet finished`);
    const second = await this.#lock(tx, writes);
    return second.kind === "conflict" ? voteNo(`${this.id}: an item is held by transaction '${second.locks[0]!.txId}'`) : second.vote;
  }

  async commit(tx: TxContext, writes: DynamoWrite[]): Promise<void> {
    // `check` writes on items the prepare had to create are deleted; the first attempt assumes they were not created.
    const fresh = writes.map(() => false);
    for (let flips = 0; ; flips++) {
      try {
        await this.#explained(this.dynamodb.send(new TransactWriteItemsCommand({ TransactItems: [{ Update: this.#ledgerMove(tx, "committed", ["prepared"]) }, ...writes.map((w, i) => this.#applyItem(tx.txId, w, fresh[i]!))] })));
        return;
      } catch (err) {
        const c = cancelled(err);
        if (!c || c.conflict) throw err; // transient: phase two asks again
        const ledger = c.found[0];
        if (ledger) {
          const state = ledger["state"]?.S;
          if (state === "committed") return; // applied: the ledger moved in the same write
          throw new ProtocolViolationError(tx.txId, this.id, state === "aborted" ? "commit after abort" : "commit without a yes vote on record");
        }
        const wrongGuess = c.found.slice(1).map((item, i) => writes[i]!.type === "check" && item?.[LOCK_ATTRIBUTES.tx]?.S === tx.txId && item[LOCK_ATTRIBUTES.fresh]?.BOOL === !fresh[i]);
        if (flips > 0 || !wrongGuess.some(Boolean)) throw new ProtocolViolationError(tx.txId, this.id, "an item lost this transaction's lock although the yes vote is on record (a writer that ignores locks?)");
        wrongGuess.forEach((w, i) => w && (fresh[i] = !fresh[i]));
      }
    }
  }

  async abort(tx: TxContext, writes: DynamoWrite[]): Promise<void> {
    // Recorded first, so that no prepare of this transaction can lock anything here afterwards.
    let previous: LedgerState | undefined;
    try {
      const out = await this.#explained(
        this.dynamodb.send(new PutItemCommand({
          TableName: this.#ledgerTable(tx),
          Item: this.#ledgerItem(tx.txId, "aborted"),
          ConditionExpression: "attribute_not_exists(pk) OR #state <> :committed",
          ExpressionAttributeNames: { "#state": "state" },
          ExpressionAttributeValues: { ":committed": { S: "committed" } },
          ReturnValues: "ALL_OLD",
        })),
      );
      previous = out.Attributes?.["state"]?.S as LedgerState | undefined;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) throw new ProtocolViolationError(tx.txId, this.id, "abort after commit");
      throw err;
    }
    // Never prepared here: nothing is locked, and now nothing can be.
    if (previous === undefined) return;
    await Promise.all(writes.map((w) => this.#release(tx.txId, w.key)));
  }

  #ledgerTable(tx: TxContext): string {
    const table = tx.decisions?.tableName ?? this.#transactionTable;
    if (!table) throw new InvalidArgumentError("transactionTable", `${this.id} needs the transaction table for its ledger: run it through a Coordinator, or pass 'transactionTable'`);
    return table;
  }

  /** `part#<participant id, URI-encoded so it holds no '#'>#<txId>`: unambiguous for any id and txId. */
  #ledgerKey(txId: string): Item {
    return { pk: { S: `part#${encodeURIComponent(this.id)}#${txId}` } };
  }

  /** A ledger item; only a final state expires (a prepared ledger is kept until the decision reaches it). */
  #ledgerItem(txId: string, state: LedgerState): Item {
    return { ...this.#ledgerKey(txId), state: { S: state }, ...(state === "prepared" ? {} : { ttl: this.#expiry() }) };
  }

  #expiry(): AttributeValue {
    return { N: String(Math.ceil((Date.now() + this.#retainMs) / 1000)) };
  }

  /** The ledger's move to `state`, allowed only from one of `from`; reports what it found if not. */
  #ledgerMove(tx: TxContext, state: LedgerState, from: LedgerState[]) {
    return {
      TableName: this.#ledgerTable(tx),
      Key: this.#ledgerKey(tx.txId),
      UpdateExpression: "SET #state = :to, #ttl = :ttl",
      ConditionExpression: `#state IN (${from.map((_, i) => `:from${i}`).join(", ")})`,
      ExpressionAttributeNames: { "#state": "state", "#ttl": "ttl" },
      ExpressionAttributeValues: { ":to": { S: state }, ":ttl": this.#expiry(), ...Object.fromEntries(from.map((f, i) => [`:from${i}`, { S: f }])) },
      ReturnValuesOnConditionCheckFailure: "ALL_OLD" as const,
    };
  }

  /** Awaits a request, naming the likely cause when the transaction table is out of this client's reach. */
  async #explained<O>(request: Promise<O>): Promise<O> {
    try {
      return await request;
    } catch (err) {
      if ((err as Error).name === "ResourceNotFoundException") {
        throw new InvalidArgumentError("transactionTable", `${this.id}: a table was not found (${(err as Error).message}). The participant's table and the transaction table must both exist in the account and region of its DynamoDB client`);
      }
      throw err;
    }
  }

  /**
   * The prepare write of one item: the lock, under the write's condition and an explicit
   * assumption about whether the item exists (`fresh`: it does not, so an abort deletes it).
   */
  #lockUpdate(txId: string, log: string, write: DynamoWrite, fresh: boolean) {
    const cond = userCondition(write);
    return {
      TableName: this.tableName,
      Key: toAttributes(write.key),
      UpdateExpression: "SET #fptx = :fptx, #fpfresh = :fpfresh, #fplog = :fplog",
      ConditionExpression: `${fresh ? "attribute_not_exists" : "attribute_exists"}(#fppk) AND attribute_not_exists(#fptx)${cond ? ` AND ${cond.expression}` : ""}`,
      ExpressionAttributeNames: { ...cond?.names, ...LOCK_NAMES, "#fplog": LOCK_ATTRIBUTES.log, "#fppk": Object.keys(write.key)[0]! },
      ExpressionAttributeValues: { ...cond?.values, ":fptx": { S: txId }, ":fpfresh": { BOOL: fresh }, ":fplog": { S: log } },
      ReturnValuesOnConditionCheckFailure: "ALL_OLD" as const,
    };
  }

  /**
   * Creates the ledger and locks every item, in one TransactWriteItems (two if some item
   * must be created: the first attempt assumes items exist, and learns from the failure
   * which do not). A failure is judged from the ledger and the items as they were.
   */
  async #lock(tx: TxContext, writes: DynamoWrite[]): Promise<{ kind: "vote"; vote: Vote } | { kind: "conflict"; locks: ForeignLock[] }> {
    const fresh = writes.map((w) => w.type === "put" && w.ifAbsent === true);
    const flipped = writes.map(() => false);
    for (let conflicts = 0; ; ) {
      let found: Found;
      try {
        await this.#explained(this.dynamodb.send(
          new TransactWriteItemsCommand({
            TransactItems: [
              { Put: { TableName: this.#ledgerTable(tx), Item: this.#ledgerItem(tx.txId, "prepared"), ...(this.#ledgerCondition ? { ConditionExpression: this.#ledgerCondition, ReturnValuesOnConditionCheckFailure: "ALL_OLD" as const } : {}) } },
              ...writes.map((w, i) => ({ Update: this.#lockUpdate(tx.txId, this.#ledgerTable(tx), w, fresh[i]!) })),
            ],
          }),
        ));
        return { kind: "vote", vote: VOTE_YES };
      } catch (err) {
        const c = cancelled(err);
        if (!c) throw err;
        if (c.conflict) {
          if (++conflicts > CONFLICT_RETRIES || Date.now() > tx.deadline) return { kind: "vote", vote: voteNo(`${this.id}: concurrent transactions kept touching the same items`) };
          await sleep(jitter(10 * 2 ** conflicts));
          continue;
        }
        if (c.found.every((f) => f === undefined)) throw err;
        found = c.found;
      }
      // The ledger exists: this transaction was prepared, committed or aborted here before.
      if (found[0]) return { kind: "vote", vote: this.#voteOnRepeat(tx, found[0], found.slice(1)) };
      const items = found.slice(1);
      // A wrong guess about an item's existence is fixed once per write, then the lock is tried again.
      const wrong = items.map((item, i) => item !== undefined && Object.keys(item).length > 0 === fresh[i] && !flipped[i] && !(writes[i]!.type === "put" && writes[i]!.ifAbsent));
      if (!wrong.some(Boolean)) return this.#voteOn(writes, items);
      wrong.forEach((w, i) => {
        if (w) [fresh[i], flipped[i]] = [!fresh[i], true];
      });
    }
  }

  /** A prepare that met this transaction's ledger: the vote on record, if it still stands. */
  #voteOnRepeat(tx: TxContext, ledger: Item, items: Found): Vote {
    const state = ledger["state"]?.S as LedgerState | undefined;
    if (state === "committed") return voteNo(`${this.id}: this transaction already committed here (a stale prepare)`);
    if (state === "aborted") return voteNo(`${this.id}: this transaction was already aborted here`);
    // Prepared: the yes stands if every item still holds our lock (an aborted transaction's locks may have been released).
    const held = items.every((item) => item?.[LOCK_ATTRIBUTES.tx]?.S === tx.txId);
    return held ? VOTE_YES : voteNo(`${this.id}: this transaction's locks here were released (it was aborted)`);
  }

  /** What a failed lock attempt means, from the items as they were. */
  #voteOn(writes: DynamoWrite[], items: Found): { kind: "vote"; vote: Vote } | { kind: "conflict"; locks: ForeignLock[] } {
    const locks = items.flatMap((item, i) => {
      const holder = item?.[LOCK_ATTRIBUTES.tx]?.S;
      return holder ? [{ txId: holder, log: item[LOCK_ATTRIBUTES.log]?.S, key: writes[i]!.key }] : [];
    });
    if (locks.length > 0) return { kind: "conflict", locks };
    return { kind: "vote", vote: voteNo(`${this.id}: a write's condition does not hold`) };
  }

  /**
   * Settles other transactions' locks from the decision log: an aborted holder's lock is
   * released (one past its deadline is aborted first); a committed holder's commit is
   * applied here and now (idempotent by its ledger; this also finishes a transaction an
   * operator forgot). False if one must stay: undecided, held under another transaction
   * table (whose log this one cannot ask), or committed by a participant that is not this one.
   */
  async #settleForeign(tx: TxContext, locks: ForeignLock[]): Promise<boolean> {
    const decisions = tx.decisions;
    if (!decisions) return false;
    for (const { txId, log, key } of locks) {
      if (log !== undefined && log !== decisions.tableName) return false;
      const { status } = await decisions.settle(txId);
      if (status === "aborted") {
        await this.#release(txId, key);
        continue;
      }
      if (status !== "committed") return false;
      const branch = (await decisions.get(txId))?.branches.find((b) => b.participant === this.id);
      if (!branch) return false;
      const holder: TxContext = { txId, deadline: 0, decisions };
      await this.commit(holder, branch.input as DynamoWrite[]);
    }
    return true;
  }

  /** One write of the commit: applied under this transaction's lock, which it removes. */
  #applyItem(txId: string, write: DynamoWrite, fresh: boolean): TransactWriteItem {
    const held = { ConditionExpression: "#fptx = :fptx", ExpressionAttributeNames: { "#fptx": LOCK_ATTRIBUTES.tx }, ExpressionAttributeValues: { ":fptx": { S: txId } } };
    const Key = toAttributes(write.key);
    switch (write.type) {
      case "put":
        return { Put: { TableName: this.tableName, Item: toAttributes({ ...write.item, ...write.key }), ...held, ReturnValuesOnConditionCheckFailure: "ALL_OLD" } };
      case "delete":
        return { Delete: { TableName: this.tableName, Key, ...held, ReturnValuesOnConditionCheckFailure: "ALL_OLD" } };
      case "check": {
        // A check changes nothing: the lock goes, and so does an item the prepare created.
        const exact = { ConditionExpression: "#fptx = :fptx AND #fpfresh = :fpfresh", ExpressionAttributeNames: LOCK_NAMES, ExpressionAttributeValues: { ...held.ExpressionAttributeValues, ":fpfresh": { BOOL: fresh } }, ReturnValuesOnConditionCheckFailure: "ALL_OLD" as const };
        if (fresh) return { Delete: { TableName: this.tableName, Key, ...exact } };
        return { Update: { TableName: this.tableName, Key, UpdateExpression: "REMOVE #fptx, #fpfresh, #fplog", ...exact, ExpressionAttributeNames: { ...LOCK_NAMES, "#fplog": LOCK_ATTRIBUTES.log } } };
      }
      case "update": {
        const c = changeClauses(write);
        c.remove.push("#fptx", "#fpfresh", "#fplog");
        return {
          Update: {
            TableName: this.tableName,
            Key,
            UpdateExpression: updateExpression(c),
            ConditionExpression: held.ConditionExpression,
            ExpressionAttributeNames: { ...c.names, ...LOCK_NAMES, "#fplog": LOCK_ATTRIBUTES.log },
            ExpressionAttributeValues: { ...c.values, ...held.ExpressionAttributeValues },
            ReturnValuesOnConditionCheckFailure: "ALL_OLD",
          },
        };
      }
    }
  }

  /** Unlocks an item held by `txId`; deletes it if the prepare created it. Nothing if it is not held by `txId`. */
  async #release(txId: string, key: Key): Promise<void> {
    const Key = toAttributes(key);
    try {
      await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key,
          UpdateExpression: "REMOVE #fptx, #fpfresh, #fplog",
          ConditionExpression: "#fptx = :fptx AND #fpfresh = :fpfalse",
          ExpressionAttributeNames: { ...LOCK_NAMES, "#fplog": LOCK_ATTRIBUTES.log },
          ExpressionAttributeValues: { ":fptx": { S: txId }, ":fpfalse": { BOOL: false } },
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
      if (err.Item?.[LOCK_ATTRIBUTES.tx]?.S !== txId) return; // not ours (released, applied, or never locked)
      await this.dynamodb
        .send(
          new DeleteItemCommand({
            TableName: this.tableName,
            Key,
            ConditionExpression: "#fptx = :fptx AND #fpfresh = :fptrue",
            ExpressionAttributeNames: LOCK_NAMES,
            ExpressionAttributeValues: { ":fptx": { S: txId }, ":fptrue": { BOOL: true } },
          }),
        )
        .catch((e: unknown) => {
          if (!(e instanceof ConditionalCheckFailedException)) throw e;
        });
    }
  }
}
