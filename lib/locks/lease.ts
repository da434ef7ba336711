/**
 * LeaseRecord: the one DynamoDB item behind a lock, an election, and their fencing token,
 * and the conditional writes that move it. Every other module in lib/locks is a story
 * told with these writes.
 *
 * Guarantees:
 * - Each write is one conditional request. A grant sets the holder and increments the
 *   fencing token in the same write, so the token is issued exactly when the lock is.
 * - Every write stamps `version` with a fresh attempt id. When a response is lost, the
 *   write is resolved, not guessed: a retry whose condition fails but finds our own
 *   attempt id in the returned old item was applied; an unknown outcome is settled by
 *   one consistent read of the item.
 * - Tokens never regress. Deleting an idle item (`sweep`) first raises a table-wide
 *   token floor to at least the item's token; a grant that recreates a missing item takes
 *   floor + 1 in a transaction that checks the floor did not move.
 * - The waiter queue (`queue`, a list of waiter ids) only orders grants; it is never
 *   needed for safety.
 * Assumes: a table with a string partition key `pk`, strongly consistent reads.
 */
import {
  ConditionalCheckFailedException,
  DeleteItemCommand,
  GetItemCommand,
  ScanCommand,
  TransactionCanceledException,
  TransactWriteItemsCommand,
  UpdateItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from "@aws-sdk/client-dynamodb";
import { randomUUID } from "node:crypto";
import { ReleaseIncompleteError } from "./errors.js";
import { setTimeout as sleep } from "node:timers/promises";

type Item = Record<string, AttributeValue>;

/** How many times a release is sent while the item shows it never arrived (about 5 s of backoff in all). */
const RELEASE_TRIES = 8;

/** The item of one lock, as last read or written. */
export interface LeaseRecord {
  readonly key: string;
  readonly fencingToken: number;
  /** Owner id of the current holder; undefined when released. */
  readonly holder: string | undefined;
  /** Attempt id of the last write (grant, heartbeat or release). */
  readonly version: string;
  /** Lease the holder declared; a waiter may take over after seeing `version` unchanged this long. */
  readonly leaseMs: number;
  /** Value the holder attached (a leader's address, say). */
  readonly data: string | undefined;
  /** Waiter ids in arrival order. */
  readonly queue: readonly string[];
  readonly releasedBy: string | undefined;
  /** Wall-clock times (epoch ms), informational only: never used for safety. */
  readonly acquiredAt: number | undefined;
  /** The last heartbeat's wall-clock time (or the grant's): for display only. */
  readonly renewedAt: number | undefined;
  readonly releasedAt: number | undefined;
}

/** Key of the table-wide token floor item. */
export const TOKEN_FLOOR_KEY = "fencepost#token-floor";

const s = (v: string): AttributeValue => ({ S: v });
const n = (v: number): AttributeValue => ({ N: String(v) });

export function parseLease(item: Item | undefined): LeaseRecord | undefined {
  if (!item?.["pk"]?.S || item["token"]?.N === undefined) return undefined;
  const num = (a: string) => (item[a]?.N === undefined ? undefined : Number(item[a]!.N));
  return {
    key: item["pk"].S,
    fencingToken: Number(item["token"].N),
    holder: item["holder"]?.S,
    version: item["version"]?.S ?? "",
    leaseMs: num("leaseMs") ?? 0,
    data: item["data"]?.S,
    queue: (item["queue"]?.L ?? []).map((w) => w.S ?? ""),
    releasedBy: item["releasedBy"]?.S,
    acquiredAt: num("acquiredAt"),
    renewedAt: num("renewedAt") ?? num("acquiredAt"),
    releasedAt: num("releasedAt"),
  };
}

/**
 * True when the error says for certain the write was not applied (a 4xx answer:
 * throttling, validation, condition). Anything else (timeouts, connection resets, 5xx) is
 * an unknown outcome.
 */
export function certainlyNotApplied(err: unknown): boolean {
  const status = (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
  return typeof status === "number" && status >= 400 && status < 500;
}

/** Whether any attempt of one SDK command ended with an unknown outcome. */
export interface AttemptLog {
  uncertain: boolean;
}

/**
 * Watches every attempt the SDK makes for `command` (its retries included): the returned
 * log's `uncertain` turns true once an attempt fails in a way that may have applied the
 * write. A later attempt's condition failure then proves nothing about the earlier one.
 * Sits inside the SDK's retry loop (finalizeRequest, above the transport).
 */
export function trackAttempts(command: { middlewareStack: { add(mw: unknown, options: Record<string, unknown>): void } }): AttemptLog {
  const log: AttemptLog = { uncertain: false };
  command.middlewareStack.add(
    (next: (args: unknown) => Promise<unknown>) => async (args: unknown) => {
      try {
        return await next(args);
      } catch (err) {
        if (!certainlyNotApplied(err)) log.uncertain = true;
        throw err;
      }
    },
    { step: "finalizeRequest", priority: "normal", name: "fencepostAttempts" },
  );
  return log;
}

/** What a grant attempt achieved. `record` is the item after (granted) or as found (contended). */
export type GrantOutcome = { granted: true; record: LeaseRecord } | { granted: false; record: LeaseRecord | undefined };

/** How the grant expects to find the item. */
export interface GrantExpectation {
  /** `free`: no holder. `expired`: still at `version`, observed unchanged for a full lease. */
  readonly kind: "free" | "expired";
  readonly version?: string;
  /** This waiter's id when it believes it heads the queue; undefined to require an empty queue. */
  readonly queueHead?: string;
}

export interface GrantRequest {
  readonly key: string;
  readonly owner: string;
  readonly attempt: string;
  readonly leaseMs: number;
  readonly data?: string;
  readonly expect: GrantExpectation;
}

export class LeaseStore {
  constructor(
    readonly dynamodb: DynamoDBClient,
    readonly tableName: string,
  ) {}

  /** Consistent read of one record. */
  async read(key: string): Promise<LeaseRecord | undefined> {
    const { Item } = await this.dynamodb.send(new GetItemCommand({ TableName: this.tableName, Key: { pk: s(key) }, ConsistentRead: true }));
    return parseLease(Item);
  }

  /**
   * One conditional write whose success carries `attempt` in `version`. Resolves to the
   * record after the write, or `{ applied: false, found }` when the condition failed for
   * someone else's reason. A lost response is settled by the old item a retry returns,
   * or failing that by one consistent read.
   */
  private async stamped(
    key: string,
    attempt: string,
    send: () => Promise<Item | undefined>,
  ): Promise<{ applied: true; record: LeaseRecord } | { applied: false; found: LeaseRecord | undefined }> {
    try {
      const after = parseLease(await send());
      if (!after) throw new Error(`write to ${key} returned no item`);
      return { applied: true, record: after };
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) {
        const found = parseLease(err.Item);
        if (found?.version === attempt) return { applied: true, record: found };
        return { applied: false, found };
      }
      if (certainlyNotApplied(err)) throw err;
      const found = await this.read(key);
      if (found?.version === attempt) return { applied: true, record: found };
      // Not applied (the item may still be as we left it: callers check), or applied and
      // already superseded.
      return { applied: false, found };
    }
  }

  /** Grants the lock in one conditional write if the item is as `expect` says. */
  async grant(req: GrantRequest): Promise<GrantOutcome> {
    const { expect } = req;
    const names: Record<string, string> = { "#token": "token", "#data": "data", "#queue": "queue", "#version": "version" };
    const values: Item = { ":me": s(req.owner), ":attempt": s(req.attempt), ":lease": n(req.leaseMs), ":one": n(1), ":now": n(Date.now()) };
    const conditions = ["attribute_exists(pk)"];
    if (expect.kind === "free") conditions.push("attribute_not_exists(holder)");
    else {
      conditions.push("#version = :observed");
      values[":observed"] = s(expect.version ?? "");
    }
    const set = ["holder = :me", "#version = :attempt", "leaseMs = :lease", "#token = #token + :one", "acquiredAt = :now", "renewedAt = :now"];
    const remove = ["releasedBy", "releasedAt"];
    if (req.data !== undefined) {
      set.push("#data = :data");
      values[":data"] = s(req.data);
    } else remove.push("#data");
    if (expect.queueHead !== undefined) {
      conditions.push("#queue[0] = :waiter");
      values[":waiter"] = s(expect.queueHead);
      remove.push("#queue[0]");
    } else {
      conditions.push("(attribute_not_exists(#queue) OR size(#queue) = :zero)");
      values[":zero"] = n(0);
    }
    const result = await this.stamped(req.key, req.attempt, async () => {
      const out = await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { pk: s(req.key) },
          UpdateExpression: `SET ${set.join(", ")} REMOVE ${remove.join(", ")}`,
          ConditionExpression: conditions.join(" AND "),
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValues: "ALL_NEW",
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
      return out.Attributes;
    });
    return result.applied ? { granted: true, record: result.record } : { granted: false, record: result.found };
  }

  /**
   * Creates a missing lock item already granted to `req.owner`, with token floor + 1.
   * `floorGuess` is the floor the caller believes in (0 if it has never seen one); a wrong
   * guess fails cleanly and the actual floor comes back for the next try.
   */
  async grantMissing(req: GrantRequest, floorGuess: number): Promise<GrantOutcome | { floor: number }> {
    const item: Item = {
      pk: s(req.key),
      token: n(floorGuess + 1),
      holder: s(req.owner),
      version: s(req.attempt),
      leaseMs: n(req.leaseMs),
      acquiredAt: n(Date.now()),
    };
    if (req.data !== undefined) item["data"] = s(req.data);
    try {
      await this.dynamodb.send(
        new TransactWriteItemsCommand({
          // Fresh per request: a later request of the same attempt (another floor guess, a
          // retry after a conflict) has another payload, and a reused token would be refused.
          // The SDK's own retries resend this one request, token included.
          ClientRequestToken: randomUUID(),
          TransactItems: [
            {
              Put: {
                TableName: this.tableName,
                Item: item,
                ConditionExpression: "attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure: "ALL_OLD",
              },
            },
            {
              ConditionCheck: {
                TableName: this.tableName,
                Key: { pk: s(TOKEN_FLOOR_KEY) },
                ConditionExpression: floorGuess === 0 ? "attribute_not_exists(maxToken) OR maxToken = :floor" : "maxToken = :floor",
                ExpressionAttributeValues: { ":floor": n(floorGuess) },
                ReturnValuesOnConditionCheckFailure: "ALL_OLD",
              },
            },
          ],
        }),
      );
      return { granted: true, record: parseLease(item)! };
    } catch (err) {
      if (err instanceof TransactionCanceledException) {
        const [put, floor] = err.CancellationReasons ?? [];
        if (put?.Code === "ConditionalCheckFailed") {
          const found = parseLease(put.Item);
          return found?.version === req.attempt ? { granted: true, record: found } : { granted: false, record: found };
        }
        if (floor?.Code === "ConditionalCheckFailed") return { floor: Number(floor.Item?.["maxToken"]?.N ?? 0) };
        // Concurrent first grants of other names touch the same floor item: try again shortly.
        if ((err.CancellationReasons ?? []).some((r) => r.Code === "TransactionConflict")) {
          await sleep(10 + Math.random() * 40);
          return { floor: floorGuess };
        }
        throw err;
      }
      if (certainlyNotApplied(err)) throw err;
      const found = await this.read(req.key);
      return found?.version === req.attempt ? { granted: true, record: found } : { granted: false, record: found };
    }
  }

  /** The current token floor (0 when no item was ever swept). */
  async tokenFloor(): Promise<number> {
    const { Item } = await this.dynamodb.send(
      new GetItemCommand({ TableName: this.tableName, Key: { pk: s(TOKEN_FLOOR_KEY) }, ConsistentRead: true }),
    );
    return Number(Item?.["maxToken"]?.N ?? 0);
  }

  /**
   * Extends the holder's lease: moves `version` from `current` to `next` if `owner` still
   * holds at `current`. Resolves to the record after, or `{ lost }` with what was found.
   */
  async heartbeat(key: string, owner: string, current: string, next: string, leaseMs: number): Promise<{ ok: true; record: LeaseRecord } | { ok: false; found: LeaseRecord | undefined }> {
    const result = await this.stamped(key, next, async () => {
      const out = await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { pk: s(key) },
          UpdateExpression: "SET #version = :next, leaseMs = :lease, renewedAt = :now",
          ConditionExpression: "#version = :current AND holder = :me",
          ExpressionAttributeNames: { "#version": "version" },
          ExpressionAttributeValues: { ":next": s(next), ":current": s(current), ":me": s(owner), ":lease": n(leaseMs), ":now": n(Date.now()) },
          ReturnValues: "ALL_NEW",
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
      return out.Attributes;
    });
    return result.applied ? { ok: true, record: result.record } : { ok: false, found: result.found };
  }

  /**
   * Releases the lock if `owner` holds it with `fencingToken`. Idempotent: a release whose
   * response was lost is recognised by `releasedBy` and the token. Resolves to false when
   * `owner` does not hold the lock with that token and never released it.
   */
  async release(key: string, owner: string, fencingToken: number, attempt: string): Promise<{ released: boolean; found: LeaseRecord | undefined }> {
    // A release that never reached the item (its attempts lost, throttled or 5xx) finds the
    // lock still ours: it is sent again (with a new attempt id), never reported as a takeover.
    for (let tries = 1, backoff = 25; ; tries++, backoff = Math.min(backoff * 2, 1000)) {
      const last = tries >= RELEASE_TRIES;
      let outcome: { released: boolean; found: LeaseRecord | undefined; stillOurs: boolean };
      try {
        outcome = await this.#releaseOnce(key, owner, fencingToken, tries === 1 ? attempt : randomUUID());
      } catch (err) {
        if (last) throw new ReleaseIncompleteError(key, fencingToken, tries, { cause: err });
        await sleep(backoff * (0.5 + Math.random() / 2));
        continue;
      }
      if (!outcome.stillOurs) return { released: outcome.released, found: outcome.found };
      if (last) throw new ReleaseIncompleteError(key, fencingToken, tries);
      await sleep(backoff * (0.5 + Math.random() / 2));
    }
  }

  async #releaseOnce(key: string, owner: string, fencingToken: number, attempt: string): Promise<{ released: boolean; found: LeaseRecord | undefined; stillOurs: boolean }> {
    const result = await this.stamped(key, attempt, async () => {
      const out = await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { pk: s(key) },
          UpdateExpression: "SET #version = :attempt, releasedBy = :me, releasedAt = :now REMOVE holder",
          ConditionExpression: "holder = :me AND #token = :token",
          ExpressionAttributeNames: { "#version": "version", "#token": "token" },
          ExpressionAttributeValues: { ":attempt": s(attempt), ":me": s(owner), ":token": n(fencingToken), ":now": n(Date.now()) },
          ReturnValues: "ALL_NEW",
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
      return out.Attributes;
    });
    if (result.applied) return { released: true, found: result.record, stillOurs: false };
    const found = result.found;
    const alreadyReleasedByUs = found !== undefined && found.holder === undefined && found.fencingToken === fencingToken && found.releasedBy === owner;
    const stillOurs = found !== undefined && found.holder === owner && found.fencingToken === fencingToken;
    return { released: alreadyReleasedByUs, found, stillOurs };
  }

  /** Appends `waiter` to the queue unless it is already there. Resolves to the record after. */
  async enqueue(key: string, waiter: string): Promise<LeaseRecord | undefined> {
    try {
      const out = await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { pk: s(key) },
          UpdateExpression: "SET #queue = list_append(if_not_exists(#queue, :empty), :waiter)",
          ConditionExpression: "attribute_exists(pk) AND NOT contains(#queue, :id)",
          ExpressionAttributeNames: { "#queue": "queue" },
          ExpressionAttributeValues: { ":empty": { L: [] }, ":waiter": { L: [s(waiter)] }, ":id": s(waiter) },
          ReturnValues: "ALL_NEW",
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
      return parseLease(out.Attributes);
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return parseLease(err.Item);
      throw err;
    }
  }

  /**
   * Removes `waiter` from the queue at `index` if it is still there and, when `version`
   * is given, the lock has not moved since it was observed. Used by a waiter that gives
   * up, and to skip a dead waiter at the head. Best effort: false if anything changed.
   */
  async dequeue(key: string, waiter: string, index: number, version?: string): Promise<boolean> {
    const values: Item = { ":waiter": s(waiter) };
    let condition = `#queue[${index}] = :waiter`;
    if (version !== undefined) {
      condition += " AND #version = :version";
      values[":version"] = s(version);
    }
    try {
      await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { pk: s(key) },
          UpdateExpression: `REMOVE #queue[${index}]`,
          ConditionExpression: condition,
          ExpressionAttributeNames: { "#queue": "queue", ...(version !== undefined ? { "#version": "version" } : {}) },
          ExpressionAttributeValues: values,
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  /**
   * Deletes released lock items (keys starting with `prefix`) idle since before
   * `releasedBefore` (epoch ms) with nobody queued. For each, the token floor is raised to
   * the item's token first, so a later grant of the same name continues above it.
   * Resolves to the number of items deleted.
   */
  async sweep(prefix: string, releasedBefore: number): Promise<number> {
    let deleted = 0;
    let start: Item | undefined;
    do {
      const page = await this.dynamodb.send(
        new ScanCommand({
          TableName: this.tableName,
          ConsistentRead: true,
          ExclusiveStartKey: start,
          FilterExpression: "begins_with(pk, :prefix) AND attribute_not_exists(holder) AND releasedAt < :before",
          ExpressionAttributeValues: { ":prefix": s(prefix), ":before": n(releasedBefore) },
        }),
      );
      for (const item of page.Items ?? []) {
        const record = parseLease(item);
        if (!record || record.queue.length > 0) continue;
        await this.raiseFloor(record.fencingToken);
        try {
          await this.dynamodb.send(
            new DeleteItemCommand({
              TableName: this.tableName,
              Key: { pk: s(record.key) },
              ConditionExpression: "#version = :version AND attribute_not_exists(holder) AND (attribute_not_exists(#queue) OR size(#queue) = :zero)",
              ExpressionAttributeNames: { "#version": "version", "#queue": "queue" },
              ExpressionAttributeValues: { ":version": s(record.version), ":zero": n(0) },
            }),
          );
          deleted++;
        } catch (err) {
          if (!(err instanceof ConditionalCheckFailedException)) throw err;
        }
      }
      start = page.LastEvaluatedKey;
    } while (start);
    return deleted;
  }

  /** Raises the table-wide token floor to at least `token`. */
  async raiseFloor(token: number): Promise<void> {
    try {
      await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { pk: s(TOKEN_FLOOR_KEY) },
          UpdateExpression: "SET maxToken = :token",
          ConditionExpression: "attribute_not_exists(maxToken) OR maxToken < :token",
          ExpressionAttributeValues: { ":token": n(token) },
        }),
      );
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
    }
  }
}
