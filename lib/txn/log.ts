/**
 * DecisionLog: the coordinator's durable state, one item per transaction in the
 * transaction table (partition key `pk` (S); the Fencepost construct's `txnTable`).
 * (Guarantees and assumptions: see the TSDoc of DecisionLog below.)
 */
import { DEFAULT_LIST_LIMIT, DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_RETAIN_MS } from "./defaults.js";
import { UndecidedTransactionError } from "../errors.js";
import { numberValue, stringValue } from "../internal/attributes.js";
import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
  type AttributeValue,
  type Put,
} from "@aws-sdk/client-dynamodb";

type Item = Record<string, AttributeValue>;

export type Decision = "committed" | "aborted";
export type TransactionStatus = "preparing" | Decision;

/** One participant's part of a transaction, as logged. */
export interface BranchRecord {
  /** The participant's id (`dynamodb:<table>`, `outbox:<queue url>`, `lambda:<function>`, or a custom name). */
  readonly participant: string;
  /** What it is asked to do (JSON). */
  readonly input: unknown;
}

export interface AuditEntry {
  readonly at: number;
  readonly operator: string;
  readonly action: string;
  readonly reason: string;
}

/** Which unfinished transactions to look at. */
export interface InDoubtQuery {
  /** Deadline at or before this (epoch ms). Default: now. `Infinity`: every unfinished one. */
  readonly staleAt?: number;
  /** Only transaction ids starting with this (a tenant's, an application's). */
  readonly prefix?: string;
}

export interface TransactionRecord {
  readonly txId: string;
  readonly status: TransactionStatus;
  readonly branches: readonly BranchRecord[];
  /** Epoch ms after which an undecided transaction may be aborted by anyone. */
  readonly deadline: number;
  readonly createdAt: number;
  readonly decidedAt?: number;
  /** Why it was aborted (the first no vote, a timeout, recovery, an operator). */
  readonly reason?: string;
  /** Phase two finished: every participant acknowledged (or an operator forgot the rest). */
  readonly done: boolean;
  readonly doneAt?: number;
  /** `fast`: one TransactWriteItems; `protocol`: two-phase commit. */
  readonly path: "fast" | "protocol";
  readonly audit: readonly AuditEntry[];
}

/** Name of the sparse index over unfinished transactions. */
export const IN_DOUBT_INDEX = "in-doubt";
const transactionKey = (txId: string) => ({ pk: stringValue(`tx#${txId}`) });

export function parseRecord(item: Item | undefined): TransactionRecord | undefined {
  const pk = item?.["pk"]?.S;
  if (!item || !pk?.startsWith("tx#") || !item["status"]?.S) return undefined;
  const num = (k: string) => (item[k]?.N === undefined ? undefined : Number(item[k]!.N));
  return {
    txId: pk.slice(3),
    status: item["status"].S as TransactionStatus,
    branches: JSON.parse(item["branches"]?.S ?? "[]") as BranchRecord[],
    deadline: num("deadline") ?? 0,
    createdAt: num("createdAt") ?? 0,
    ...(num("decidedAt") !== undefined ? { decidedAt: num("decidedAt")! } : {}),
    ...(item["reason"]?.S ? { reason: item["reason"].S } : {}),
    done: item["done"]?.BOOL ?? false,
    ...(num("doneAt") !== undefined ? { doneAt: num("doneAt")! } : {}),
    path: (item["path"]?.S ?? "protocol") as "fast" | "protocol",
    audit: (item["audit"]?.L ?? []).map((e) => JSON.parse(e.S ?? "{}") as AuditEntry),
  };
}

/**
 * DecisionLog: the coordinator's durable state, one item per transaction in the
 * transaction table (partition key `pk` (S); the Fencepost construct's `txnTable`).
 *
 * Item `tx#<txId>`:
 * - `status`: `preparing` until the decision, then `committed` or `aborted`, forever. The
 *   decision is one conditional write (`status = preparing`), so exactly one decision
 *   wins, whoever writes it: the coordinator, another coordinator running the same
 *   transaction id, recovery, an operator, or a participant asking about a transaction
 *   whose deadline has passed. That single linearizable item is what makes 2PC safe
 *   here; clocks only decide when it is worth aborting (liveness), never what is decided.
 * - `branches`: the participants and their inputs (JSON), so anyone can finish phase two.
 * - `deadline` (epoch ms): after it, an undecided transaction may be aborted by anyone.
 * - `inDoubt` = `open` while phase two is unfinished: the sparse index `in-doubt`
 *   (partition `inDoubt`, sort `deadline`) lists exactly the transactions recovery must
 *   look at. `done` removes it and sets `ttl` (records are kept for `retainMs`, which is
 *   also how long `run` stays idempotent by transaction id).
 * - `audit`: operator actions (who, what, why, when).
 *
 * Presumed abort: a transaction with no record is aborted. Asking about it writes an
 * `aborted` record, so a coordinator that begins it late finds it aborted.
 */
export class DecisionLog {
  constructor(
    readonly dynamodb: DynamoDBClient,
    readonly tableName: string,
    readonly retainMs: number = DEFAULT_RETAIN_MS,
    /** Wall clock (epoch ms) for deadlines and timestamps. */
    readonly now: () => number = Date.now,
    /** Each request to the log (with the SDK's retries) is abandoned after this long: a `TimeoutError`. */
    readonly requestTimeoutMs: number = DEFAULT_REQUEST_TIMEOUT_MS,
  ) {}

  /** Sends with the request timeout: a hung endpoint must not hang a transaction step. */
  #send<O = unknown>(command: PutItemCommand | GetItemCommand | UpdateItemCommand | QueryCommand): Promise<O> {
    const client = this.dynamodb as unknown as { send(command: unknown, options: { abortSignal: AbortSignal }): Promise<O> };
    return client.send(command, { abortSignal: AbortSignal.timeout(this.requestTimeoutMs) });
  }

  /** Records a transaction before any participant hears of it; returns the existing record if the id was used. */
  async begin(txId: string, branches: readonly BranchRecord[], deadline: number): Promise<{ created: boolean; record: TransactionRecord }> {
    const now = this.now();
    const item: Item = {
      ...transactionKey(txId),
      status: stringValue("preparing"),
      branches: stringValue(JSON.stringify(branches)),
      deadline: numberValue(deadline),
      createdAt: numberValue(now),
      done: { BOOL: false },
      path: stringValue("protocol"),
      inDoubt: stringValue("open"),
    };
    try {
      await this.#send(
        new PutItemCommand({ TableName: this.tableName, Item: item, ConditionExpression: "attribute_not_exists(pk)", ReturnValuesOnConditionCheckFailure: "ALL_OLD" }),
      );
      return { created: true, record: parseRecord(item)! };
    } catch (err) {
      // Found: an earlier run of this id (or our own retried write, whose first attempt applied).
      if (err instanceof ConditionalCheckFailedException && err.Item) return { created: false, record: parseRecord(err.Item)! };
      throw err;
    }
  }

  /** The whole record (a consistent read). */
  async get(txId: string): Promise<TransactionRecord | undefined> {
    return parseRecord(await this.#read(txId));
  }

  /**
   * The item, or only the attributes named (participants ask on their hot path, and the
   * branches can be hundreds of kilobytes they have no use for).
   */
  async #read(txId: string, attributes?: readonly string[]): Promise<Item | undefined> {
    const projection = attributes ? { ProjectionExpression: attributes.map((_, i) => `#a${i}`).join(", "), ExpressionAttributeNames: Object.fromEntries(attributes.map((a, i) => [`#a${i}`, a])) } : {};
    const { Item } = await this.#send<{ Item?: Item }>(new GetItemCommand({ TableName: this.tableName, Key: transactionKey(txId), ConsistentRead: true, ...projection }));
    return Item;
  }

  async status(txId: string): Promise<TransactionStatus | undefined> {
    return (await this.#read(txId, ["status"]))?.["status"]?.S as TransactionStatus | undefined;
  }

  /**
   * Writes `decision` if none is logged yet, and returns the decision that stands (which
   * may be another writer's). Aborting a transaction with no record writes one (presumed
   * abort made durable); committing requires the record, with status `preparing`.
   */
  async decide(txId: string, decision: Decision, reason?: string, audit?: AuditEntry): Promise<Decision> {
    const condition = decision === "aborted" ? "attribute_not_exists(pk) OR #status = :preparing" : "#status = :preparing";
    const now = this.now();
    try {
      await this.#send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: transactionKey(txId),
          UpdateExpression:
            "SET #status = :decision, decidedAt = :now, createdAt = if_not_exists(createdAt, :now), deadline = if_not_exists(deadline, :now), branches = if_not_exists(branches, :none), done = if_not_exists(done, :false), #path = if_not_exists(#path, :protocol), inDoubt = if_not_exists(inDoubt, :open)" +
            (reason ? ", reason = :reason" : "") +
            (audit ? ", audit = list_append(if_not_exists(audit, :empty), :entry)" : ""),
          ConditionExpression: condition,
          ExpressionAttributeNames: { "#status": "status", "#path": "path" },
          ExpressionAttributeValues: {
            ":decision": stringValue(decision),
            ":preparing": stringValue("preparing"),
            ":now": numberValue(now),
            ":none": stringValue("[]"),
            ":false": { BOOL: false },
            ":protocol": stringValue("protocol"),
            ":open": stringValue("open"),
            ...(reason ? { ":reason": stringValue(reason.slice(0, 1000)) } : {}),
            ...(audit ? { ":empty": { L: [] }, ":entry": { L: [stringValue(JSON.stringify(audit))] } } : {}),
          },
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
      return decision;
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
      const found = parseRecord(err.Item);
      if (found && found.status !== "preparing") return found.status; // decided before us (or our retried write applied)
      // Committing an id with no record: nobody began it, so presumed abort stands.
      return this.decide(txId, "aborted", reason ?? "no record of the transaction (presumed abort)");
    }
  }

  /** NEGATIVE CONTROL, never in production: writes `decision` whatever is logged (see CoordinatorHooks.unsafeBlindDecision). */
  async unsafeOverwriteDecision(txId: string, decision: Decision, reason?: string): Promise<Decision> {
    await this.#send(
      new UpdateItemCommand({
        TableName: this.tableName,
        Key: transactionKey(txId),
        UpdateExpression: "SET #status = :decision, decidedAt = :now" + (reason ? ", reason = :reason" : ""),
        ConditionExpression: "attribute_exists(pk)",
        ExpressionAttributeNames: { "#status": "status" },
        ExpressionAttributeValues: { ":decision": stringValue(decision), ":now": numberValue(this.now()), ...(reason ? { ":reason": stringValue(reason.slice(0, 1000)) } : {}) },
      }),
    );
    return decision;
  }

  /** Marks phase two finished: removes the record from the in-doubt index and starts its retention clock. */
  async complete(txId: string, audit?: AuditEntry): Promise<void> {
    const now = this.now();
    await this.#send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: transactionKey(txId),
          UpdateExpression: "SET done = :true, doneAt = if_not_exists(doneAt, :now), #ttl = :ttl" + (audit ? ", audit = list_append(if_not_exists(audit, :empty), :entry)" : "") + " REMOVE inDoubt",
          ConditionExpression: "#status IN (:committed, :aborted)",
          ExpressionAttributeNames: { "#status": "status", "#ttl": "ttl" },
          ExpressionAttributeValues: {
            ":true": { BOOL: true },
            ":now": numberValue(now),
            ":ttl": numberValue(Math.ceil((now + this.retainMs) / 1000)),
            ":committed": stringValue("committed"),
            ":aborted": stringValue("aborted"),
            ...(audit ? { ":empty": { L: [] }, ":entry": { L: [stringValue(JSON.stringify(audit))] } } : {}),
          },
        }),
      )
      .catch((err: unknown) => {
        if (!(err instanceof ConditionalCheckFailedException)) throw err;
        throw new UndecidedTransactionError(txId);
      });
  }

  /**
   * What a participant in doubt gets when it asks: the decision if there is one (and
   * whether phase two finished); an abort decided now if the transaction is unknown
   * (presumed abort) or past its deadline; otherwise `preparing` (ask again later).
   */
  async settle(txId: string): Promise<{ status: TransactionStatus; done: boolean }> {
    const record = parseRecord(await this.#read(txId, ["pk", "status", "done", "deadline"]));
    if (record && record.status !== "preparing") return { status: record.status, done: record.done };
    if (record && this.now() <= record.deadline) return { status: "preparing", done: false };
    const status = await this.decide(txId, "aborted", record ? "deadline passed with the decision pending" : "no record of the transaction (presumed abort)");
    return { status, done: false };
  }

  /** One page of unfinished transactions whose deadline is at or before `staleAt` (default: now), oldest first. */
  async listInDoubt(options: InDoubtQuery & { limit?: number; startAfter?: { deadline: number; txId: string } } = {}): Promise<{ records: TransactionRecord[]; next?: { deadline: number; txId: string } }> {
    const out = await this.#send<{ Items?: Item[]; LastEvaluatedKey?: Item }>(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: IN_DOUBT_INDEX,
        KeyConditionExpression: "inDoubt = :open AND deadline <= :stale",
        ...(options.prefix ? { FilterExpression: "begins_with(pk, :prefix)" } : {}),
        ExpressionAttributeValues: { ":open": stringValue("open"), ":stale": numberValue(Math.min(options.staleAt ?? this.now(), Number.MAX_SAFE_INTEGER)), ...(options.prefix ? { ":prefix": stringValue(`tx#${options.prefix}`) } : {}) },
        Limit: options.limit ?? DEFAULT_LIST_LIMIT,
        ...(options.startAfter ? { ExclusiveStartKey: { inDoubt: stringValue("open"), deadline: numberValue(options.startAfter.deadline), ...transactionKey(options.startAfter.txId) } } : {}),
      }),
    );
    const records = (out.Items ?? []).map((i) => parseRecord(i)!).filter(Boolean);
    const last = out.LastEvaluatedKey ? parseRecord({ ...out.LastEvaluatedKey, status: stringValue("preparing") }) : undefined;
    return { records, ...(last ? { next: { deadline: last.deadline, txId: last.txId } } : {}) };
  }

  /** Appends an operator action to the record's audit trail. */
  async audit(txId: string, entry: AuditEntry): Promise<void> {
    await this.#send(
      new UpdateItemCommand({
        TableName: this.tableName,
        Key: transactionKey(txId),
        UpdateExpression: "SET audit = list_append(if_not_exists(audit, :empty), :entry)",
        ConditionExpression: "attribute_exists(pk)",
        ExpressionAttributeValues: { ":empty": { L: [] }, ":entry": { L: [stringValue(JSON.stringify(entry))] } },
      }),
    );
  }

  /** The record a fast-path transaction writes inside its TransactWriteItems: decided and done at once. */
  fastPathPut(txId: string, branches: readonly BranchRecord[], decision: Decision, reason?: string): Put {
    const now = this.now();
    return {
      TableName: this.tableName,
      Item: {
        ...transactionKey(txId),
        status: stringValue(decision),
        branches: stringValue(JSON.stringify(branches)),
        deadline: numberValue(now),
        createdAt: numberValue(now),
        decidedAt: numberValue(now),
        done: { BOOL: true },
        doneAt: numberValue(now),
        path: stringValue("fast"),
        ttl: numberValue(Math.ceil((now + this.retainMs) / 1000)),
        ...(reason ? { reason: stringValue(reason.slice(0, 1000)) } : {}),
      },
      ConditionExpression: "attribute_not_exists(pk)",
    };
  }
}
