/**
 * StreamLog: the persistence layer of total order broadcast, a write-once log per stream
 * in DynamoDB (Corfu's design on one table with partition key `pk` (S) and sort key
 * `sk` (N)).
 * (Guarantees and assumptions: see the TSDoc of StreamLog below.)
 */
import { GROUP_WRITE_TIMEOUT_MS } from "./defaults.js";
import { numberValue, stringValue } from "../internal/attributes.js";
import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
  type AttributeValue,
  type Update,
} from "@aws-sdk/client-dynamodb";
import { jitter, sleep } from "../internal/time.js";
import { certainlyNotApplied, isBusy } from "../internal/outcomes.js";
import type { LamportTimestamp } from "./lamport.js";

type Item = Record<string, AttributeValue>;

/**
 * What a slot holds: a message (its JSON payload, the attempt id of the write that placed
 * it, its dedup id and its Lamport stamp if it was published with them) or a no-op.
 */
export type Slot = { seq: number; kind: "message"; payload: string; writer: string; dedupId?: string; lamport?: LamportTimestamp } | { seq: number; kind: "noop" };

/** Fill puts `fillAll` keeps in flight at once. */
export const FILLS_IN_FLIGHT = 25;
/** Tries of one fill put before its last error is thrown (conflicts, throttling, unknown outcomes). */
const FILL_TRIES = 6;

/** Written slots after a position, and whether the log may hold more after the last of them. */
export interface SlotPage {
  /** Written slots, in order; empty slots are simply absent. */
  readonly slots: Slot[];
  /**
   * True when the read stopped early (its item limit, or DynamoDB's 1 MB page): slots
   * after the last one returned are unknown, not empty.
   */
  readonly truncated: boolean;
}


export function parseSlot(item: Item | undefined): Slot | undefined {
  if (!item?.["kind"]?.S) return undefined;
  const seq = Number(item["sk"]?.N);
  if (item["kind"].S === "noop") return { seq, kind: "noop" };
  const dedupId = item["dedupId"]?.S;
  const lamport = lamportOf(item["lamport"]);
  return { seq, kind: "message", payload: item["payload"]?.S ?? "null", writer: item["writer"]?.S ?? "", ...(dedupId ? { dedupId } : {}), ...(lamport ? { lamport } : {}) };
}

/** A message's Lamport stamp as a slot stores it: a map `{ counter: N, node: S }`. */
function lamportValue(ts: LamportTimestamp): AttributeValue {
  return { M: { counter: numberValue(ts.counter), node: stringValue(ts.node) } };
}

/** The stamp a slot stores, or undefined if it has none (or not one this version wrote). */
function lamportOf(value: AttributeValue | undefined): LamportTimestamp | undefined {
  const counter = Number(value?.M?.["counter"]?.N);
  const node = value?.M?.["node"]?.S;
  return node !== undefined && Number.isSafeInteger(counter) && counter >= 0 ? { counter, node } : undefined;
}

/**
 * StreamLog: the persistence layer of total order broadcast, a write-once log per stream
 * in DynamoDB (Corfu's design on one table with partition key `pk` (S) and sort key
 * `sk` (N)).
 *
 * Items:
 * - `seq#<stream>`, 0: the sequencer. `next` is the last sequence number allocated; an
 *   allocation is one atomic `ADD` of the batch size, so numbers are unique and
 *   increase. An allocation whose response is lost is simply retried: the numbers it
 *   took become holes, which are filled (below). Hence no idempotency key is needed.
 * - `log#<stream>`, seq: a slot, written once (`attribute_not_exists`), holding either a
 *   message (`kind` = message, the payload, the writer's attempt id, and the dedup id and
 *   the Lamport stamp (`lamport`, a map `{ counter, node }`) if it has them) or an
 *   explicit no-op.
 * - `dedup#<stream>#<dedupId>`, 0: which sequence number a dedup id was published at.
 * - `cursor#<stream>#<group>`, 0: how far a consumer group has delivered (`position`).
 *
 * Hole filling: a slot below the sequencer's `next` that stays empty for a timeout (its
 * producer crashed, or is slow) is filled with a no-op by a conditional write. Exactly
 * one of the producer's write and the fill succeeds, so every reader sees the same
 * content of every slot forever: agreement without consensus, because the sequencer
 * and each slot are single linearizable items. `fillAll` fills a run of holes (a crashed
 * producer's whole chunk) with one conditional PutItem per slot, up to FILLS_IN_FLIGHT at
 * once: about one round trip, one WCU per slot, and each slot settled on its own (a fill
 * needs no atomicity; a transaction would cost two WCUs per slot and be cancelled whole
 * by any conflict). A put that meets a transaction in progress on its slot
 * (TransactionConflictException), is throttled, or has an unknown outcome is tried again
 * with jittered backoff, a bounded number of times; trying again is safe because every
 * fill writes the same no-op.
 */
export class StreamLog {
  constructor(
    readonly dynamodb: DynamoDBClient,
    readonly tableName: string,
  ) {}

  /** Allocates `count` consecutive sequence numbers; returns the first. */
  async allocate(stream: string, count: number): Promise<number> {
    const out = await this.dynamodb.send(
      new UpdateItemCommand({
        TableName: this.tableName,
        Key: { pk: stringValue(`seq#${stream}`), sk: numberValue(0) },
        UpdateExpression: "ADD #next :count",
        ExpressionAttributeNames: { "#next": "next" },
        ExpressionAttributeValues: { ":count": numberValue(count) },
        ReturnValues: "UPDATED_NEW",
      }),
      // A hung allocation fails (numbers it may have taken become holes, which consumers fill).
      { abortSignal: AbortSignal.timeout(GROUP_WRITE_TIMEOUT_MS) },
    );
    return Number(out.Attributes?.["next"]?.N) - count + 1;
  }

  /** The last allocated sequence number (0 if none). */
  async head(stream: string): Promise<number> {
    const { Item } = await this.dynamodb.send(new GetItemCommand({ TableName: this.tableName, Key: { pk: stringValue(`seq#${stream}`), sk: numberValue(0) }, ConsistentRead: true }));
    return Number(Item?.["next"]?.N ?? 0);
  }

  /** The put that writes a message (with its dedup id and Lamport stamp, if given) into its slot, only if the slot is empty. */
  messagePut(stream: string, seq: number, payload: string, writer: string, dedupId?: string, lamport?: LamportTimestamp) {
    return {
      TableName: this.tableName,
      Item: {
        pk: stringValue(`log#${stream}`),
        sk: numberValue(seq),
        kind: stringValue("message"),
        payload: stringValue(payload),
        writer: stringValue(writer),
        ...(dedupId ? { dedupId: stringValue(dedupId) } : {}),
        ...(lamport ? { lamport: lamportValue(lamport) } : {}),
      },
      ConditionExpression: "attribute_not_exists(pk)",
    };
  }

  /** The put that records `dedupId` as published at `seq`, only if it was not already. */
  dedupPut(stream: string, dedupId: string, seq: number, conditional = true) {
    return { TableName: this.tableName, Item: { pk: stringValue(`dedup#${stream}#${dedupId}`), sk: numberValue(0), seq: numberValue(seq) }, ...(conditional ? { ConditionExpression: "attribute_not_exists(pk)" } : {}) };
  }

  /** The sequence number `dedupId` was published at, if it was. */
  async dedupSeq(stream: string, dedupId: string): Promise<number | undefined> {
    const { Item } = await this.dynamodb.send(new GetItemCommand({ TableName: this.tableName, Key: { pk: stringValue(`dedup#${stream}#${dedupId}`), sk: numberValue(0) }, ConsistentRead: true }));
    return Item?.["seq"]?.N ? Number(Item["seq"].N) : undefined;
  }

  /** The put that writes a no-op into slot `seq`, only if the slot is empty; a failed condition returns what is there. */
  noopPut(stream: string, seq: number) {
    return {
      TableName: this.tableName,
      Item: { pk: stringValue(`log#${stream}`), sk: numberValue(seq), kind: stringValue("noop") },
      ConditionExpression: "attribute_not_exists(pk)",
      ReturnValuesOnConditionCheckFailure: "ALL_OLD" as const,
    };
  }

  /**
   * Fills `seq` with a no-op unless something is already there. Resolves to what the
   * slot holds afterwards (the no-op, or the message that won the race). A conflict with
   * a transaction in progress on the slot, throttling or an unknown outcome is tried again
   * (jittered backoff from 10 ms, FILL_TRIES tries); after that the last error is thrown.
   */
  async fill(stream: string, seq: number): Promise<Slot> {
    for (let tries = 1; ; tries++) {
      try {
        await this.dynamodb.send(new PutItemCommand(this.noopPut(stream, seq)));
        return { seq, kind: "noop" };
      } catch (err) {
        if (err instanceof ConditionalCheckFailedException) return parseSlot(err.Item) ?? (await this.read(stream, seq))!;
        if (tries >= FILL_TRIES || !worthTryingAgain(err)) throw err;
        await sleep(jitter(10 * 2 ** tries));
      }
    }
  }

  /**
   * Fills every slot of `seqs` that is still empty with a no-op: `fill` for each, up to
   * FILLS_IN_FLIGHT at once. Each slot is settled on its own (a late producer's message
   * wins some, the no-op the others). Resolves to what each slot holds afterwards, in the
   * order of `seqs`; if any fill fails for good, waits for those in flight, then throws.
   */
  async fillAll(stream: string, seqs: readonly number[]): Promise<Slot[]> {
    const settled: Slot[] = new Array(seqs.length);
    let next = 0;
    let failure: { err: unknown } | undefined;
    const worker = async () => {
      while (!failure && next < seqs.length) {
        const i = next++;
        try {
          settled[i] = await this.fill(stream, seqs[i]!);
        } catch (err) {
          failure ??= { err };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(FILLS_IN_FLIGHT, seqs.length) }, worker));
    if (failure) throw failure.err;
    return settled;
  }

  /** One slot (consistent read), or undefined while empty. */
  async read(stream: string, seq: number): Promise<Slot | undefined> {
    const { Item } = await this.dynamodb.send(new GetItemCommand({ TableName: this.tableName, Key: { pk: stringValue(`log#${stream}`), sk: numberValue(seq) }, ConsistentRead: true }));
    return parseSlot(Item);
  }

  /**
   * Written slots after `after`, in order, at most `limit` (consistent): one Query, so at
   * most 1 MB of them. `truncated` says the page stopped before the end of the log.
   */
  async readAfter(stream: string, after: number, limit: number): Promise<SlotPage> {
    const out = await this.dynamodb.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: "pk = :pk AND sk > :after",
        ExpressionAttributeValues: { ":pk": stringValue(`log#${stream}`), ":after": numberValue(after) },
        ConsistentRead: true,
        Limit: limit,
      }),
    );
    return { slots: (out.Items ?? []).flatMap((item) => parseSlot(item) ?? []), truncated: out.LastEvaluatedKey !== undefined };
  }

  cursorKey(stream: string, group: string) {
    return { pk: stringValue(`cursor#${stream}#${group}`), sk: numberValue(0) };
  }

  /** How far `group` has delivered `stream` (0: nothing yet). */
  async cursor(stream: string, group: string): Promise<number> {
    const { Item } = await this.dynamodb.send(new GetItemCommand({ TableName: this.tableName, Key: this.cursorKey(stream, group), ConsistentRead: true }));
    return Number(Item?.["position"]?.N ?? 0);
  }

  /**
   * The update that moves `group`'s cursor from `from` to `to`, only if it is still at
   * `from`. (`checked: false` drops that condition: the negative control only.)
   */
  cursorAdvance(stream: string, group: string, from: number, to: number, checked = true): Update {
    const condition = from === 0 ? "attribute_not_exists(#position) OR #position = :from" : "#position = :from";
    return {
      TableName: this.tableName,
      Key: this.cursorKey(stream, group),
      UpdateExpression: "SET #position = :to",
      ExpressionAttributeNames: { "#position": "position" },
      ...(checked
        ? { ConditionExpression: condition, ExpressionAttributeValues: { ":to": numberValue(to), ":from": numberValue(from) } }
        : { ExpressionAttributeValues: { ":to": numberValue(to) } }),
    };
  }
}

/** A conflict with a transaction in progress, throttling, or an unknown outcome: asking again may succeed. */
function worthTryingAgain(err: unknown): boolean {
  return isBusy(err) || !certainlyNotApplied(err);
}
