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
 *   message (`kind` = message, the payload, the writer's attempt id) or an explicit no-op.
 * - `dedup#<stream>#<dedupId>`, 0: which sequence number a dedup id was published at.
 * - `cursor#<stream>#<group>`, 0: how far a consumer group has delivered (`position`).
 *
 * Hole filling: a slot below the sequencer's `next` that stays empty for a timeout (its
 * producer crashed, or is slow) is filled with a no-op by a conditional write. Exactly
 * one of the producer's write and the fill succeeds, so every reader sees the same
 * content of every slot forever: agreement without consensus, because the sequencer
 * and each slot are single linearizable items. `fillAll` fills a run of holes (a crashed
 * producer's whole chunk) with one transaction of such conditional puts per 100 slots;
 * a put that loses to a message only drops that slot from the transaction.
 */
import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  TransactionCanceledException,
  TransactWriteItemsCommand,
  UpdateItemCommand,
  type AttributeValue,
  type Update,
} from "@aws-sdk/client-dynamodb";

type Item = Record<string, AttributeValue>;

/** What a slot holds. */
export type Slot = { seq: number; kind: "message"; payload: string; writer: string; dedupId?: string } | { seq: number; kind: "noop" };

/** Slots one fill transaction writes at most (DynamoDB's limit on a transaction's items). */
export const SLOTS_PER_FILL_TRANSACTION = 100;

const s = (v: string): AttributeValue => ({ S: v });
const n = (v: number): AttributeValue => ({ N: String(v) });

export function parseSlot(item: Item | undefined): Slot | undefined {
  if (!item?.["kind"]?.S) return undefined;
  const seq = Number(item["sk"]?.N);
  if (item["kind"].S === "noop") return { seq, kind: "noop" };
  const dedupId = item["dedupId"]?.S;
  return { seq, kind: "message", payload: item["payload"]?.S ?? "null", writer: item["writer"]?.S ?? "", ...(dedupId ? { dedupId } : {}) };
}

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
        Key: { pk: s(`seq#${stream}`), sk: n(0) },
        UpdateExpression: "ADD #next :count",
        ExpressionAttributeNames: { "#next": "next" },
        ExpressionAttributeValues: { ":count": n(count) },
        ReturnValues: "UPDATED_NEW",
      }),
    );
    return Number(out.Attributes?.["next"]?.N) - count + 1;
  }

  /** The last allocated sequence number (0 if none). */
  async head(stream: string): Promise<number> {
    const { Item } = await this.dynamodb.send(new GetItemCommand({ TableName: this.tableName, Key: { pk: s(`seq#${stream}`), sk: n(0) }, ConsistentRead: true }));
    return Number(Item?.["next"]?.N ?? 0);
  }

  /** The put that writes a message into its slot, only if the slot is empty. */
  messagePut(stream: string, seq: number, payload: string, writer: string, dedupId?: string) {
    return {
      TableName: this.tableName,
      Item: { pk: s(`log#${stream}`), sk: n(seq), kind: s("message"), payload: s(payload), writer: s(writer), ...(dedupId ? { dedupId: s(dedupId) } : {}) },
      ConditionExpression: "attribute_not_exists(pk)",
    };
  }

  /** The put that records `dedupId` as published at `seq`, only if it was not already. */
  dedupPut(stream: string, dedupId: string, seq: number, conditional = true) {
    return { TableName: this.tableName, Item: { pk: s(`dedup#${stream}#${dedupId}`), sk: n(0), seq: n(seq) }, ...(conditional ? { ConditionExpression: "attribute_not_exists(pk)" } : {}) };
  }

  /** The sequence number `dedupId` was published at, if it was. */
  async dedupSeq(stream: string, dedupId: string): Promise<number | undefined> {
    const { Item } = await this.dynamodb.send(new GetItemCommand({ TableName: this.tableName, Key: { pk: s(`dedup#${stream}#${dedupId}`), sk: n(0) }, ConsistentRead: true }));
    return Item?.["seq"]?.N ? Number(Item["seq"].N) : undefined;
  }

  /** The put that writes a no-op into slot `seq`, only if the slot is empty; a failed condition returns what is there. */
  noopPut(stream: string, seq: number) {
    return {
      TableName: this.tableName,
      Item: { pk: s(`log#${stream}`), sk: n(seq), kind: s("noop") },
      ConditionExpression: "attribute_not_exists(pk)",
      ReturnValuesOnConditionCheckFailure: "ALL_OLD" as const,
    };
  }

  /**
   * Fills `seq` with a no-op unless something is already there. Resolves to what the
   * slot holds afterwards (the no-op, or the message that won the race).
   */
  async fill(stream: string, seq: number): Promise<Slot> {
    try {
      await this.dynamodb.send(new PutItemCommand(this.noopPut(stream, seq)));
      return { seq, kind: "noop" };
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return parseSlot(err.Item) ?? (await this.read(stream, seq))!;
      // Unknown outcome: the slot is written either way now (by us or by the producer); read it.
      const found = await this.read(stream, seq);
      if (found) return found;
      throw err;
    }
  }

  /**
   * Fills every slot of `seqs` that is still empty with a no-op, each by the same
   * conditional put as `fill`, batched: one transaction per 100 slots. A slot already
   * written (a late producer's message won it) makes the transaction fail as a whole;
   * that slot is dropped and the rest are written again, so each slot is settled once
   * and for all. A transaction that neither applies nor loses to a written slot (a
   * conflict with another writer, an unknown outcome) leaves its slots to `fill`, one
   * request each. Resolves to what each slot holds afterwards, in the order of `seqs`.
   */
  async fillAll(stream: string, seqs: readonly number[]): Promise<Slot[]> {
    const settled = new Map<number, Slot>();
    for (let i = 0; i < seqs.length; i += SLOTS_PER_FILL_TRANSACTION) {
      let empty = seqs.slice(i, i + SLOTS_PER_FILL_TRANSACTION);
      while (empty.length > 1) {
        const written = await this.#fillTogether(stream, empty);
        if (!written) break;
        if (written.length === 0) for (const seq of empty) settled.set(seq, { seq, kind: "noop" });
        for (const slot of written) settled.set(slot.seq, slot);
        empty = empty.filter((seq) => !settled.has(seq));
      }
      for (const slot of await Promise.all(empty.map((seq) => this.fill(stream, seq)))) settled.set(slot.seq, slot);
    }
    return seqs.map((seq) => settled.get(seq)!);
  }

  /**
   * One transaction filling all of `seqs`. Resolves to [] if it applied, to the slots
   * that were already written if it lost to them (nothing applied), or to undefined if it
   * did neither as far as we know (a conflict with another transaction, an unknown outcome).
   */
  async #fillTogether(stream: string, seqs: readonly number[]): Promise<Slot[] | undefined> {
    try {
      await this.dynamodb.send(new TransactWriteItemsCommand({ TransactItems: seqs.map((seq) => ({ Put: this.noopPut(stream, seq) })) }));
      return [];
    } catch (err) {
      if (!(err instanceof TransactionCanceledException)) return undefined;
      const written = (err.CancellationReasons ?? []).flatMap((reason) => (reason.Code === "ConditionalCheckFailed" ? (parseSlot(reason.Item) ?? []) : []));
      return written.length > 0 ? written : undefined;
    }
  }

  /** One slot (consistent read), or undefined while empty. */
  async read(stream: string, seq: number): Promise<Slot | undefined> {
    const { Item } = await this.dynamodb.send(new GetItemCommand({ TableName: this.tableName, Key: { pk: s(`log#${stream}`), sk: n(seq) }, ConsistentRead: true }));
    return parseSlot(Item);
  }

  /** Written slots after `after`, in order, at most `limit` (consistent). Empty slots are simply absent. */
  async readAfter(stream: string, after: number, limit: number): Promise<Slot[]> {
    const out = await this.dynamodb.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: "pk = :pk AND sk > :after",
        ExpressionAttributeValues: { ":pk": s(`log#${stream}`), ":after": n(after) },
        ConsistentRead: true,
        Limit: limit,
      }),
    );
    return (out.Items ?? []).flatMap((item) => parseSlot(item) ?? []);
  }

  cursorKey(stream: string, group: string) {
    return { pk: s(`cursor#${stream}#${group}`), sk: n(0) };
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
        ? { ConditionExpression: condition, ExpressionAttributeValues: { ":to": n(to), ":from": n(from) } }
        : { ExpressionAttributeValues: { ":to": n(to) } }),
    };
  }
}
