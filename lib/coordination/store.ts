/**
 * CoordinationStore: the persistence layer of the coordination service, one DynamoDB
 * table (partition key `pk` (S), sort key `sk` (S); the Fencepost construct's
 * `coordinationTable`). Every other module in lib/coordination is a story told with
 * these reads and writes.
 * (Guarantees and assumptions: see the TSDoc of CoordinationStore below.)
 */
import {
  ConditionalCheckFailedException,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  paginateQuery,
  type QueryCommandInput,
  ScanCommand,
  TransactionCanceledException,
  TransactWriteItemsCommand,
  UpdateItemCommand,
  type AttributeValue,
  type DynamoDBClient,
  type TransactWriteItem,
} from "@aws-sdk/client-dynamodb";
import { randomUUID } from "node:crypto";
import { CoordinationBusyError, InvalidArgumentError, OutcomeUnknownError } from "../errors.js";
import { numberValue, stringValue, type Item } from "../internal/attributes.js";
import { certainlyNotApplied, isBusy } from "../internal/outcomes.js";
import { jitter, sleep } from "../internal/time.js";
import { trackAttempts } from "../locks/lease.js";

/** Revisions are written zero-padded in sort keys, so the change log sorts by number. */
const REVISION_DIGITS = 16;
/** Keys (and their changes) one commit writes at most: each takes two of a transaction's 100 items. */
export const MAX_CHANGES_PER_COMMIT = 40;
/** Tries of one commit whose outcome stayed unknown before it gives up with OutcomeUnknownError. */
const UNANSWERED_SENDS = 4;
/** Longest one commit keeps retrying contention before it gives up (then the caller sees OutcomeUnknownError or the last error). */
const MAX_COMMIT_MS = 15_000;

export const padRevision = (revision: number): string => String(revision).padStart(REVISION_DIGITS, "0");

/** The table items of one namespace. */
export const itemKeys = {
  head: (ns: string) => ({ pk: stringValue(`ns#${ns}`), sk: stringValue("head") }),
  key: (ns: string, key: string) => ({ pk: stringValue(`keys#${ns}`), sk: stringValue(key) }),
  change: (ns: string, revision: number) => ({ pk: stringValue(`changes#${ns}`), sk: stringValue(padRevision(revision)) }),
  session: (ns: string, id: string) => ({ pk: stringValue(`sessions#${ns}`), sk: stringValue(id) }),
  partition: (ns: string, group: string, partition: number) => ({ pk: stringValue(`partitions#${ns}#${group}`), sk: stringValue(padRevision(partition)) }),
};

/** A key's current state. */
export interface KeyRecord {
  readonly key: string;
  /** The value as stored (JSON text). */
  readonly value: string;
  /** Revision of the change that last wrote it. */
  readonly revision: number;
  /** Revision of the change that created it (since it last did not exist). */
  readonly createRevision: number;
  /** Writes since it was created (1 after the first). */
  readonly version: number;
  /** The session it is bound to (an ephemeral key), if any. */
  readonly session: string | undefined;
}

/** One recorded change: what watches deliver. */
export interface ChangeRecord {
  readonly revision: number;
  readonly type: "put" | "delete";
  readonly key: string;
  /** The new value (JSON text) of a put. */
  readonly value: string | undefined;
  /** The session a put binds the key to, or, for a delete, the session whose end deleted it. */
  readonly session: string | undefined;
  /** Why a delete happened: asked for, or the end of the key's session. */
  readonly cause: "request" | "session-expired" | "session-closed";
  /** Membership epoch of the key's group after this change (membership keys only). */
  readonly epoch: number | undefined;
  /** Lamport stamp of the writer, if it sent one. */
  readonly lamport: { readonly counter: number; readonly node: string } | undefined;
  /** Wall-clock time of the write (epoch ms), for people. */
  readonly at: number;
}

/** A session as stored. */
export interface SessionRecord {
  readonly id: string;
  readonly ttlMs: number;
  /** Changes with every keepalive: an observer that sees it unchanged for ttlMs may expire the session. */
  readonly version: string;
  readonly state: "live" | "expired" | "closed";
  /** Ephemeral keys bound to it (their deletion goes with its end). */
  readonly keys: readonly string[];
  readonly owner: string | undefined;
  readonly openedAt: number | undefined;
  readonly renewedAt: number | undefined;
  /** The stamp of the end that ended it (see SessionEnd). */
  readonly endStamp: string | undefined;
}

/** A partition of a group's work: its owner (a session), if any, and the token of its last grant. */
export interface PartitionRecord {
  readonly owner: string | undefined;
  readonly token: number;
}

/** One key operation of a commit. */
export interface KeyOperation {
  readonly type: "put" | "delete";
  readonly key: string;
  /** JSON text (put). */
  readonly value?: string;
  /** Put: bind the key to this live session (ephemeral). */
  readonly session?: string;
  /** The key's revision must be this (0: the key must not exist). */
  readonly ifRevision?: number;
  /** Delete: only if the key is still bound to this session. */
  readonly ifSession?: string;
  readonly cause?: ChangeRecord["cause"];
  /** The membership group whose epoch this change advances. */
  readonly group?: string;
}

/** What a session-ending commit does to the session item. */
export interface SessionEnd {
  readonly session: string;
  /** `expired`/`closed`: end a live session. `cleanup`: delete keys of a session that has already ended. */
  readonly state: "expired" | "closed" | "cleanup";
  /** Expiry: the version the observer saw unchanged for the session's ttl. */
  readonly ifVersion?: string;
  /** Written on the ended session item, so a lost answer to this end can be recognised. */
  readonly stamp?: string;
  /** Names to drop from the session's key set without a change (keys no longer bound to it). */
  readonly forget?: readonly string[];
}

/** A commit refused by a precondition (a key's revision, a session no longer live). */
export interface CommitRefusal {
  readonly committed: false;
  /** The operation whose condition failed (index in the commit), or "session". */
  readonly failed: number | "session";
  /** The key as found, for a key condition. */
  readonly current: KeyRecord | undefined;
}

export type CommitResult = { readonly committed: true; readonly revision: number; readonly changes: readonly ChangeRecord[] } | CommitRefusal;

/** The head of a namespace: its revision and the membership epoch of each group. */
interface Head {
  readonly revision: number;
  readonly epochs: ReadonlyMap<string, number>;
}

const EPOCH_PREFIX = "epoch:";

/** Test seams for the verification harness (lib/check); never set in production. */
export interface CoordinationStoreHooks {
  /**
   * NEGATIVE CONTROL: commits whose operations this returns true for are written without
   * their conditions on the head's revision and on their change-log slots being free (a
   * change, such as a membership change, without its condition), so two concurrent commits
   * can take the same revision and the same epoch. Exists so verification can prove that
   * its view-agreement and watch checks catch it.
   */
  readonly unsafeUnconditionalCommit?: (operations: readonly KeyOperation[]) => boolean;
  /**
   * NEGATIVE CONTROL: grants a partition without checking its previous grant (owner and
   * token) or that the previous owner's session has ended (a rebalance without fencing).
   * Exists so verification can prove that its partition checks catch it.
   */
  readonly unsafeUnfencedGrants?: boolean;
}

/**
 * The coordination service's table and the writes that move it.
 *
 * Guarantees:
 * - Every change of a namespace (put, delete, an ephemeral key's removal with its session)
 *   is written in one transaction with the namespace's head item, conditioned on the head's
 *   revision: changes are totally ordered, each gets the next revision (no gap, no
 *   duplicate), and its change-log item (`changes#ns`, sorted by revision) is written with
 *   it, so the log is exactly the sequence of changes. Membership epochs live on the head
 *   too, so they move in the same order.
 * - A commit whose response was lost is settled from the log, never guessed: each attempt
 *   is stamped with a request id in its change items; an attempt at revision r can only
 *   land while the head is at r - 1, so once the head has moved past it the log item at r
 *   says whether it was ours. A commit that cannot be settled rejects with
 *   OutcomeUnknownError.
 * - Conditions are part of the same transaction: a key's revision (compare-and-set), a
 *   session being live (every ephemeral write; a session expired or closed can never
 *   write again).
 * Assumes: strongly consistent reads; the head of a namespace is one item, so a namespace
 * takes about 1,000 changes/s on AWS (coordination data, not a database).
 */
export class CoordinationStore {
  /** The last head seen per namespace (a guess: conditions check it). */
  readonly #heads = new Map<string, Head>();

  constructor(
    readonly dynamodb: DynamoDBClient,
    readonly tableName: string,
    /** How long change-log items are kept (DynamoDB TTL); watches can resume within it. */
    readonly retainChangesMs: number,
    private readonly hooks: CoordinationStoreHooks = {},
  ) {}

  /** The namespace's current revision (one consistent read). */
  async revision(ns: string): Promise<number> {
    return (await this.#readHead(ns)).revision;
  }

  /** The group's current membership epoch (one consistent read of the head). */
  async epoch(ns: string, group: string): Promise<{ epoch: number; revision: number }> {
    const head = await this.#readHead(ns);
    return { epoch: head.epochs.get(group) ?? 0, revision: head.revision };
  }

  async getKey(ns: string, key: string): Promise<KeyRecord | undefined> {
    const { Item } = await this.dynamodb.send(new GetItemCommand({ TableName: this.tableName, Key: itemKeys.key(ns, key), ConsistentRead: true }));
    return parseKey(Item);
  }

  /** Keys starting with `prefix`, in key order (every page). */
  listKeys(ns: string, prefix: string): Promise<KeyRecord[]> {
    return this.#queryAll(
      {
        KeyConditionExpression: prefix ? "pk = :pk AND begins_with(sk, :prefix)" : "pk = :pk",
        ExpressionAttributeValues: { ":pk": itemKeys.key(ns, "").pk, ...(prefix ? { ":prefix": stringValue(prefix) } : {}) },
      },
      parseKey,
    );
  }

  /** Changes after `afterRevision`, in order, up to `limit` (consistent). */
  async readChanges(ns: string, afterRevision: number, limit: number): Promise<ChangeRecord[]> {
    const page = await this.dynamodb.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: "pk = :pk AND sk > :after",
        ExpressionAttributeValues: { ":pk": itemKeys.change(ns, 0).pk, ":after": stringValue(padRevision(afterRevision)) },
        ConsistentRead: true,
        Limit: limit,
      }),
    );
    return (page.Items ?? []).flatMap((item) => parseChange(item) ?? []);
  }

  async getSession(ns: string, id: string): Promise<SessionRecord | undefined> {
    const { Item } = await this.dynamodb.send(new GetItemCommand({ TableName: this.tableName, Key: itemKeys.session(ns, id), ConsistentRead: true }));
    return parseSession(Item);
  }

  /** Sessions of the namespace (every page); `liveOnly` filters out ended ones. */
  listSessions(ns: string, liveOnly = false): Promise<SessionRecord[]> {
    return this.#queryAll(
      {
        KeyConditionExpression: "pk = :pk",
        ...(liveOnly ? { FilterExpression: "#state = :live", ExpressionAttributeNames: { "#state": "state" } } : {}),
        ExpressionAttributeValues: { ":pk": itemKeys.session(ns, "").pk, ...(liveOnly ? { ":live": stringValue("live") } : {}) },
      },
      parseSession,
    );
  }

  /** Every item a consistent Query of this table returns, page after page, parsed (items that do not parse are skipped). */
  async #queryAll<T>(input: Omit<QueryCommandInput, "TableName" | "ConsistentRead" | "ExclusiveStartKey">, parse: (item: Item) => T | undefined): Promise<T[]> {
    const out: T[] = [];
    for await (const page of paginateQuery({ client: this.dynamodb }, { ...input, TableName: this.tableName, ConsistentRead: true })) {
      for (const item of page.Items ?? []) {
        const record = parse(item);
        if (record !== undefined) out.push(record);
      }
    }
    return out;
  }

  /** Namespaces that have sessions, found by a scan (for the reaper; needs dynamodb:Scan). */
  async sessionNamespaces(): Promise<string[]> {
    const found = new Set<string>();
    let start: Item | undefined;
    do {
      const page = await this.dynamodb.send(
        new ScanCommand({
          TableName: this.tableName,
          FilterExpression: "begins_with(pk, :prefix) AND (#state = :live OR size(#keys) > :zero)",
          ExpressionAttributeNames: { "#state": "state", "#keys": "keys" },
          ExpressionAttributeValues: { ":prefix": stringValue("sessions#"), ":live": stringValue("live"), ":zero": numberValue(0) },
          ProjectionExpression: "pk",
          ConsistentRead: true,
          ExclusiveStartKey: start,
        }),
      );
      for (const item of page.Items ?? []) found.add(item["pk"]!.S!.slice("sessions#".length));
      start = page.LastEvaluatedKey;
    } while (start);
    return [...found];
  }

  /**
   * Creates a live session item (one conditional put). `id` is fresh, so a put refused
   * because the item exists met an earlier attempt of this very call whose answer was lost
   * (the SDK retried it): the item, at `version`, says so.
   */
  async openSession(ns: string, id: string, ttlMs: number, version: string, owner: string | undefined): Promise<void> {
    try {
      await this.#putSession(ns, id, ttlMs, version, owner);
    } catch (err) {
      // A lost answer (the SDK's retry then finds the item): the item says whether it is ours.
      if (!(err instanceof ConditionalCheckFailedException) && certainlyNotApplied(err)) throw err;
      const found = await this.getSession(ns, id);
      if (found?.version !== version) throw err;
    }
  }

  async #putSession(ns: string, id: string, ttlMs: number, version: string, owner: string | undefined): Promise<void> {
    await this.dynamodb.send(
      new PutItemCommand({
        TableName: this.tableName,
        Item: {
          ...itemKeys.session(ns, id),
          ttlMs: numberValue(ttlMs),
          version: stringValue(version),
          state: stringValue("live"),
          openedAt: numberValue(Date.now()),
          renewedAt: numberValue(Date.now()),
          ...(owner ? { owner: stringValue(owner) } : {}),
        },
        ConditionExpression: "attribute_not_exists(pk)",
        ReturnValuesOnConditionCheckFailure: "ALL_OLD",
      }),
    );
  }

  /**
   * Keepalive: moves a live session's version from `current` to `next` (one conditional
   * update). A lost response is settled by a read: the item at `next` means it landed.
   */
  async keepalive(ns: string, id: string, current: string, next: string): Promise<{ ok: true } | { ok: false; found: SessionRecord | undefined }> {
    try {
      await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: itemKeys.session(ns, id),
          UpdateExpression: "SET #version = :next, renewedAt = :now",
          ConditionExpression: "#version = :current AND #state = :live",
          ExpressionAttributeNames: { "#state": "state", "#version": "version" },
          ExpressionAttributeValues: { ":next": stringValue(next), ":current": stringValue(current), ":live": stringValue("live"), ":now": numberValue(Date.now()) },
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
      return { ok: true };
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) {
        const found = parseSession(err.Item);
        return found?.version === next && found.state === "live" ? { ok: true } : { ok: false, found };
      }
      if (certainlyNotApplied(err)) throw err;
      const found = await this.getSession(ns, id);
      return found?.version === next && found.state === "live" ? { ok: true } : { ok: false, found };
    }
  }

  /**
   * Commits key operations (and a session's end) as consecutive changes of the namespace,
   * atomically. Resolves to the revision of the last change, or to a refusal naming the
   * condition that failed. Retries contention (another change took the revision) by
   * itself; see the class TSDoc for lost responses.
   */
  async commit(ns: string, operations: readonly KeyOperation[], options: { end?: SessionEnd; lamport?: { counter: number; node: string } } = {}): Promise<CommitResult> {
    if (operations.length > MAX_CHANGES_PER_COMMIT) throw new InvalidArgumentError("operations", `at most ${MAX_CHANGES_PER_COMMIT} changes fit one commit, got ${operations.length}`);
    if (new Set(operations.map((op) => op.key)).size !== operations.length) throw new InvalidArgumentError("operations", "each key may change at most once per commit");
    const request = randomUUID();
    const started = performance.now();
    // Revisions an attempt of this commit may have taken (its answer never came).
    const uncertainAt = new Set<number>();
    let unanswered = 0;
    let contention = 0;
    let head = this.#heads.get(ns) ?? (await this.#readHead(ns));
    for (;;) {
      if (performance.now() - started > MAX_COMMIT_MS) {
        if (uncertainAt.size > 0) throw new OutcomeUnknownError(`A change to namespace '${ns}' could not be confirmed within ${MAX_COMMIT_MS} ms (DynamoDB did not answer); it may have been applied. Read the keys to learn.`);
        throw new CoordinationBusyError(ns, contention);
      }
      // An earlier attempt may have landed at a revision the head has since moved past: the log says.
      try {
        for (const revision of uncertainAt) {
          if (head.revision < revision) continue;
          const landed = await this.#changeAt(ns, revision);
          if (landed?.["request"]?.S === request) return await this.#landed(ns, revision, operations.length);
          uncertainAt.delete(revision); // taken by another change: ours can never land now
        }
      } catch (err) {
        // The log could not be read: the outcome stays unknown; try again (bounded like any send).
        if (++unanswered >= UNANSWERED_SENDS) throw new OutcomeUnknownError(`A change to namespace '${ns}' could not be confirmed (its change log could not be read); it may have been applied. Read the keys to learn.`, { cause: err });
        await sleep(jitter(50 * unanswered));
        continue;
      }
      const first = head.revision + 1;
      const { items, headIndex, sessionIndex, changes } = this.#transaction(ns, head, operations, options, request);
      const write = new TransactWriteItemsCommand({ TransactItems: items });
      const attempts = trackAttempts(write);
      try {
        await this.dynamodb.send(write);
        this.#heads.set(ns, { revision: first + operations.length - 1, epochs: epochsAfter(head, operations) });
        return { committed: true, revision: first + operations.length - 1, changes };
      } catch (err) {
        if (attempts.uncertain) uncertainAt.add(first);
        if (err instanceof TransactionCanceledException) {
          const reasons = err.CancellationReasons ?? [];
          const headReason = reasons[headIndex];
          const logReason = reasons[headIndex + 1];
          if (logReason?.Code === "ConditionalCheckFailed" && logReason.Item?.["request"]?.S === request) return this.#landed(ns, first, operations.length);
          if (headReason?.Code === "ConditionalCheckFailed") {
            head = parseHead(headReason.Item);
            this.#heads.set(ns, head);
            if (++contention > 1) await sleep(jitter(Math.min(200, 5 * 2 ** Math.min(contention, 6))));
            continue;
          }
          // The head was as expected, so no attempt of ours landed since the last check (it
          // would have moved the head), and a copy still in flight meets the same conditions.
          const refused = this.#refusal(reasons, operations.length, sessionIndex);
          if (refused) return refused;
          if (reasons.some((r) => r.Code === "TransactionConflict" || r.Code === "ThrottlingError")) {
            await sleep(jitter(Math.min(500, 10 * 2 ** Math.min(++contention, 6))));
            continue;
          }
          throw err;
        }
        if (isBusy(err)) {
          await sleep(jitter(Math.min(1000, 20 * 2 ** Math.min(++contention, 6))));
          continue;
        }
        if (certainlyNotApplied(err) && !attempts.uncertain && uncertainAt.size === 0) throw err;
        if (++unanswered >= UNANSWERED_SENDS) {
          throw new OutcomeUnknownError(`A change to namespace '${ns}' could not be confirmed (DynamoDB did not answer ${unanswered} times); it may have been applied. Read the keys to learn.`, { cause: err });
        }
        await sleep(jitter(50 * unanswered));
        head = await this.#readHead(ns).catch(() => head);
      }
    }
  }

  /** The change-log items of a commit that landed (read back: an earlier attempt's answer was lost). */
  async #landed(ns: string, first: number, count: number): Promise<CommitResult> {
    this.#heads.delete(ns);
    for (let tries = 1; ; tries++) {
      try {
        return { committed: true, revision: first + count - 1, changes: await this.readChanges(ns, first - 1, count) };
      } catch (err) {
        // It was applied; only reading its changes back failed.
        if (tries >= UNANSWERED_SENDS) throw new OutcomeUnknownError(`A change to namespace '${ns}' was applied at revision ${first}, but its record could not be read back.`, { cause: err });
        await sleep(jitter(50 * tries));
      }
    }
  }

  async #changeAt(ns: string, revision: number): Promise<Item | undefined> {
    const { Item } = await this.dynamodb.send(new GetItemCommand({ TableName: this.tableName, Key: itemKeys.change(ns, revision), ConsistentRead: true }));
    return Item;
  }

  async #readHead(ns: string): Promise<Head> {
    const { Item } = await this.dynamodb.send(new GetItemCommand({ TableName: this.tableName, Key: itemKeys.head(ns), ConsistentRead: true }));
    const head = parseHead(Item);
    this.#heads.set(ns, head);
    return head;
  }

  /** The transaction of one commit attempt: the head, then per operation its change-log item and key item, then the session. */
  #transaction(ns: string, head: Head, operations: readonly KeyOperation[], options: { end?: SessionEnd; lamport?: { counter: number; node: string } }, request: string) {
    const items: TransactWriteItem[] = [];
    const next = head.revision + operations.length;
    const epochs = epochsAfter(head, operations);
    const names: Record<string, string> = {};
    const values: Record<string, AttributeValue> = { ":next": numberValue(next), ":current": numberValue(head.revision) };
    let set = "#revision = :next";
    names["#revision"] = "revision";
    let i = 0;
    for (const [group, epoch] of epochs) {
      if (head.epochs.get(group) === epoch) continue;
      names[`#e${i}`] = `${EPOCH_PREFIX}${group}`;
      values[`:e${i}`] = numberValue(epoch);
      set += `, #e${i} = :e${i}`;
      i++;
    }
    const headIndex = 0;
    const unconditional = this.hooks.unsafeUnconditionalCommit?.(operations) ?? false;
    const { ":current": _current, ...setValues } = values; // what an unconditional head write uses
    items.push({
      Update: {
        TableName: this.tableName,
        Key: itemKeys.head(ns),
        UpdateExpression: `SET ${set}`,
        ...(unconditional ? {} : { ConditionExpression: head.revision === 0 ? "attribute_not_exists(#revision) OR #revision = :current" : "#revision = :current", ReturnValuesOnConditionCheckFailure: "ALL_OLD" as const }),
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: unconditional ? setValues : values,
      },
    });
    const changes = changesOf(head.revision + 1, operations, head, options.lamport);
    const ttl = numberValue(Math.ceil((Date.now() + this.retainChangesMs) / 1000));
    operations.forEach((op, k) => {
      const change = changes[k]!;
      items.push({
        Put: {
          TableName: this.tableName,
          Item: { ...itemKeys.change(ns, change.revision), ...changeItem(change), request: stringValue(request), ttl },
          ...(unconditional ? {} : { ConditionExpression: "attribute_not_exists(pk)", ReturnValuesOnConditionCheckFailure: "ALL_OLD" as const }),
        },
      });
      items.push(keyWrite(this.tableName, ns, op, change.revision));
    });
    const sessionUpdate = this.#sessionWrite(ns, operations, options.end);
    const sessionIndex = sessionUpdate ? items.length : -1;
    if (sessionUpdate) items.push(sessionUpdate);
    return { items, headIndex, sessionIndex, changes };
  }

  /** The session item's part of a commit: ephemeral puts add their keys (the session must be live); an end sets the state. */
  #sessionWrite(ns: string, operations: readonly KeyOperation[], end: SessionEnd | undefined): TransactWriteItem | undefined {
    const bound = operations.filter((op) => op.type === "put" && op.session !== undefined);
    const session = end?.session ?? bound[0]?.session;
    if (session === undefined) return undefined;
    const values: Record<string, AttributeValue> = { ":live": stringValue("live") };
    const names: Record<string, string> = { "#state": "state" };
    let condition = end?.state === "cleanup" ? "#state <> :live" : "#state = :live";
    const parts: string[] = [];
    if (end) {
      if (end.state !== "cleanup") {
        // The item expires with the change log's retention; a cleanup still pending by then is long overdue.
        parts.push(`SET #state = :ended, endedAt = :now, #ttl = :ttl${end.stamp !== undefined ? ", endStamp = :stamp" : ""}`);
        values[":ended"] = stringValue(end.state);
        values[":now"] = numberValue(Date.now());
        values[":ttl"] = numberValue(Math.ceil((Date.now() + this.retainChangesMs) / 1000));
        names["#ttl"] = "ttl";
        if (end.stamp !== undefined) values[":stamp"] = stringValue(end.stamp);
      }
      if (end.ifVersion !== undefined) {
        condition += " AND #version = :version";
        values[":version"] = stringValue(end.ifVersion);
        names["#version"] = "version";
      }
      const deleted = [...new Set([...operations.filter((op) => op.type === "delete").map((op) => op.key), ...(end.forget ?? [])])];
      if (deleted.length > 0) {
        parts.push("DELETE #keys :deleted");
        values[":deleted"] = { SS: deleted };
        names["#keys"] = "keys";
      }
      if (parts.length === 0) {
        // A cleanup with nothing to delete: only its condition matters.
        return { ConditionCheck: { TableName: this.tableName, Key: itemKeys.session(ns, session), ConditionExpression: condition, ExpressionAttributeNames: names, ExpressionAttributeValues: values } };
      }
    } else {
      names["#keys"] = "keys";
      parts.push("ADD #keys :bound");
      values[":bound"] = { SS: [...new Set(bound.map((op) => op.key))] };
    }
    return {
      Update: {
        TableName: this.tableName,
        Key: itemKeys.session(ns, session),
        UpdateExpression: parts.join(" "),
        ConditionExpression: condition,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
        ReturnValuesOnConditionCheckFailure: "ALL_OLD",
      },
    };
  }

  /** The refusal a cancelled commit's reasons describe, if a precondition (not the head) failed. */
  #refusal(reasons: readonly { Code?: string; Item?: Item }[], operations: number, sessionIndex: number): CommitRefusal | undefined {
    for (let k = 0; k < operations; k++) {
      const reason = reasons[2 + 2 * k];
      if (reason?.Code === "ConditionalCheckFailed") return { committed: false, failed: k, current: parseKey(reason.Item) };
    }
    if (sessionIndex >= 0 && reasons[sessionIndex]?.Code === "ConditionalCheckFailed") return { committed: false, failed: "session", current: undefined };
    return undefined;
  }

  /**
   * Grants a partition of a group's work to `session`, if the partition item is still as
   * `found` (read just before): nobody ever owned it, its owner released it, or its owner's
   * session is no longer live (checked in the same transaction). `session` must be live.
   * The grant's fencing token is one more than every earlier grant's.
   */
  async grantPartition(ns: string, group: string, partition: number, session: string, found: PartitionRecord | undefined): Promise<{ granted: true; token: number } | { granted: false; found: PartitionRecord | undefined }> {
    const token = (found?.token ?? 0) + 1;
    const values: Record<string, AttributeValue> = { ":me": stringValue(session), ":token": numberValue(token), ":now": numberValue(Date.now()) };
    const unfenced = this.hooks.unsafeUnfencedGrants ?? false;
    let condition = "attribute_not_exists(#token)";
    if (found && !unfenced) {
      values[":previous"] = numberValue(found.token);
      condition = "#token = :previous AND " + (found.owner === undefined ? "attribute_not_exists(#owner)" : "#owner = :owner");
      if (found.owner !== undefined) values[":owner"] = stringValue(found.owner);
    }
    const items: TransactWriteItem[] = [
      {
        Update: {
          TableName: this.tableName,
          Key: itemKeys.partition(ns, group, partition),
          UpdateExpression: "SET #owner = :me, #token = :token, grantedAt = :now REMOVE releasedAt",
          ...(unfenced ? {} : { ConditionExpression: condition }),
          ExpressionAttributeNames: { "#owner": "owner", "#token": "token" },
          ExpressionAttributeValues: values,
        },
      },
      {
        ConditionCheck: {
          TableName: this.tableName,
          Key: itemKeys.session(ns, session),
          ConditionExpression: "#state = :live",
          ExpressionAttributeNames: { "#state": "state" },
          ExpressionAttributeValues: { ":live": stringValue("live") },
        },
      },
    ];
    if (found?.owner !== undefined && found.owner !== session && !unfenced) {
      items.push({
        ConditionCheck: {
          TableName: this.tableName,
          Key: itemKeys.session(ns, found.owner),
          // The previous owner's belief has ended: its session expired or closed (or never existed).
          ConditionExpression: "attribute_not_exists(pk) OR #state <> :live",
          ExpressionAttributeNames: { "#state": "state" },
          ExpressionAttributeValues: { ":live": stringValue("live") },
        },
      });
    }
    try {
      await this.dynamodb.send(new TransactWriteItemsCommand({ TransactItems: items }));
      return { granted: true, token };
    } catch (err) {
      if (!(err instanceof TransactionCanceledException) && certainlyNotApplied(err)) throw err;
      // Refused, or no answer: the item says whether this grant is ours.
      const now = await this.getPartition(ns, group, partition);
      if (now?.owner === session && now.token === token) return { granted: true, token };
      if (!(err instanceof TransactionCanceledException)) throw err;
      return { granted: false, found: now };
    }
  }

  /** Ends `session`'s ownership of a partition (its token stays, so the next grant's is higher). */
  async releasePartition(ns: string, group: string, partition: number, session: string, token: number): Promise<boolean> {
    try {
      await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: itemKeys.partition(ns, group, partition),
          UpdateExpression: "REMOVE #owner SET releasedAt = :now",
          ConditionExpression: "#owner = :me AND #token = :token",
          ExpressionAttributeNames: { "#owner": "owner", "#token": "token" },
          ExpressionAttributeValues: { ":me": stringValue(session), ":token": numberValue(token), ":now": numberValue(Date.now()) },
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  async getPartition(ns: string, group: string, partition: number): Promise<PartitionRecord | undefined> {
    const { Item } = await this.dynamodb.send(new GetItemCommand({ TableName: this.tableName, Key: itemKeys.partition(ns, group, partition), ConsistentRead: true }));
    if (!Item) return undefined;
    return { owner: Item["owner"]?.S, token: Number(Item["token"]?.N ?? 0) };
  }
}

/** The change records a commit writes, numbered from `first`. */
function changesOf(first: number, operations: readonly KeyOperation[], head: Head, lamport: { counter: number; node: string } | undefined): ChangeRecord[] {
  const epochs = new Map(head.epochs);
  const at = Date.now();
  return operations.map((op, k) => {
    let epoch: number | undefined;
    if (op.group !== undefined) {
      epoch = (epochs.get(op.group) ?? 0) + 1;
      epochs.set(op.group, epoch);
    }
    return {
      revision: first + k,
      type: op.type,
      key: op.key,
      value: op.type === "put" ? op.value : undefined,
      session: op.session ?? op.ifSession,
      cause: op.cause ?? "request",
      epoch,
      lamport,
      at,
    };
  });
}

function epochsAfter(head: Head, operations: readonly KeyOperation[]): Map<string, number> {
  const epochs = new Map(head.epochs);
  for (const op of operations) if (op.group !== undefined) epochs.set(op.group, (epochs.get(op.group) ?? 0) + 1);
  return epochs;
}

/** The key item's write for one operation at `revision`. */
function keyWrite(tableName: string, ns: string, op: KeyOperation, revision: number): TransactWriteItem {
  const values: Record<string, AttributeValue> = {};
  const conditions: string[] = [];
  if (op.ifRevision !== undefined) {
    if (op.ifRevision === 0) conditions.push("attribute_not_exists(pk)");
    else {
      conditions.push("#revision = :expected");
      values[":expected"] = numberValue(op.ifRevision);
    }
  }
  if (op.type === "delete" && op.ifRevision === undefined && op.ifSession === undefined) conditions.push("attribute_exists(pk)");
  if (op.ifSession !== undefined) {
    conditions.push("#session = :owner");
    values[":owner"] = stringValue(op.ifSession);
  }
  const condition = conditions.length > 0 ? { ConditionExpression: conditions.join(" AND "), ReturnValuesOnConditionCheckFailure: "ALL_OLD" as const } : {};
  if (op.type === "delete") {
    return {
      Delete: {
        TableName: tableName,
        Key: itemKeys.key(ns, op.key),
        ...condition,
        ...(op.ifSession !== undefined || (op.ifRevision ?? 0) > 0 ? { ExpressionAttributeNames: { ...(op.ifSession !== undefined ? { "#session": "session" } : {}), ...((op.ifRevision ?? 0) > 0 ? { "#revision": "revision" } : {}) } } : {}),
        ...(Object.keys(values).length > 0 ? { ExpressionAttributeValues: values } : {}),
      },
    };
  }
  values[":value"] = stringValue(op.value ?? "null");
  values[":rev"] = numberValue(revision);
  values[":zero"] = numberValue(0);
  values[":one"] = numberValue(1);
  let update = "SET #value = :value, #revision = :rev, #created = if_not_exists(#created, :rev), #version = if_not_exists(#version, :zero) + :one";
  if (op.session !== undefined) {
    update += ", #session = :session";
    values[":session"] = stringValue(op.session);
  } else update += " REMOVE #session";
  return {
    Update: {
      TableName: tableName,
      Key: itemKeys.key(ns, op.key),
      UpdateExpression: update,
      ExpressionAttributeNames: { "#value": "value", "#session": "session", "#revision": "revision", "#created": "createRevision", "#version": "version" },
      ExpressionAttributeValues: values,
      ...condition,
    },
  };
}

function changeItem(change: ChangeRecord): Item {
  return {
    revision: numberValue(change.revision),
    type: stringValue(change.type),
    key: stringValue(change.key),
    cause: stringValue(change.cause),
    at: numberValue(change.at),
    ...(change.value !== undefined ? { value: stringValue(change.value) } : {}),
    ...(change.session !== undefined ? { session: stringValue(change.session) } : {}),
    ...(change.epoch !== undefined ? { epoch: numberValue(change.epoch) } : {}),
    ...(change.lamport ? { lamportCounter: numberValue(change.lamport.counter), lamportNode: stringValue(change.lamport.node) } : {}),
  };
}

function parseHead(item: Item | undefined): Head {
  const epochs = new Map<string, number>();
  for (const [name, value] of Object.entries(item ?? {})) {
    if (name.startsWith(EPOCH_PREFIX) && value.N !== undefined) epochs.set(name.slice(EPOCH_PREFIX.length), Number(value.N));
  }
  return { revision: Number(item?.["revision"]?.N ?? 0), epochs };
}

export function parseKey(item: Item | undefined): KeyRecord | undefined {
  if (!item?.["sk"]?.S || item["revision"]?.N === undefined) return undefined;
  return {
    key: item["sk"].S,
    value: item["value"]?.S ?? "null",
    revision: Number(item["revision"].N),
    createRevision: Number(item["createRevision"]?.N ?? item["revision"].N),
    version: Number(item["version"]?.N ?? 1),
    session: item["session"]?.S,
  };
}

export function parseChange(item: Item | undefined): ChangeRecord | undefined {
  if (!item || item["revision"]?.N === undefined || !item["key"]?.S) return undefined;
  const type = item["type"]?.S === "delete" ? "delete" : "put";
  const cause = item["cause"]?.S;
  return {
    revision: Number(item["revision"].N),
    type,
    key: item["key"].S,
    value: item["value"]?.S,
    session: item["session"]?.S,
    cause: cause === "session-expired" || cause === "session-closed" ? cause : "request",
    epoch: item["epoch"]?.N === undefined ? undefined : Number(item["epoch"].N),
    lamport: item["lamportCounter"]?.N !== undefined && item["lamportNode"]?.S !== undefined ? { counter: Number(item["lamportCounter"].N), node: item["lamportNode"].S } : undefined,
    at: Number(item["at"]?.N ?? 0),
  };
}

export function parseSession(item: Item | undefined): SessionRecord | undefined {
  if (!item?.["sk"]?.S || !item["version"]?.S) return undefined;
  const state = item["state"]?.S;
  return {
    id: item["sk"].S,
    ttlMs: Number(item["ttlMs"]?.N ?? 0),
    version: item["version"].S,
    state: state === "expired" || state === "closed" ? state : "live",
    keys: item["keys"]?.SS ?? [],
    owner: item["owner"]?.S,
    openedAt: item["openedAt"]?.N === undefined ? undefined : Number(item["openedAt"].N),
    renewedAt: item["renewedAt"]?.N === undefined ? undefined : Number(item["renewedAt"].N),
    endStamp: item["endStamp"]?.S,
  };
}
