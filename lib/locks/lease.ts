/**
 * LeaseRecord: the one DynamoDB item behind a lock, an election, and their fencing token,
 * and the conditional writes that move it. Every other module in lib/locks is a story
 * told with these writes.
 * (Guarantees and assumptions: see the TSDoc of LeaseStore below.)
 *
 * Handover: why it is safe. A release may hand the lock to the waiter at the head of the
 * queue in the same write. What each write's condition proves:
 * - The handing release: `holder = me AND token = t` proves the releaser still holds grant
 *   t (nobody took it over: a takeover changes the holder or the token), and `queue[i] =`
 *   the exact strings proves the skipped places and the grantee's place are where the
 *   releaser planned. It sets holder = the grantee's owner, token = t + 1, `grantee` = the
 *   waiter id, and `handoffVersion` = `version` = the release's fresh attempt id, with the
 *   handover's short lease. The releaser stopped believing before it sent (Lock.release).
 *   Token t + 1 is issued in this write, once: it goes to that waiter or to nobody.
 * - The handover is pending exactly while `grantee` is set, `holder` is set and
 *   `handoffVersion = version`: every later write that moves the grant (a grant, takeover,
 *   release, heartbeat or accept, by any client, earlier ones too, which leave `grantee`
 *   behind) changes `version`, so no stale handover can be taken up. Queue writes leave
 *   `version`, and the handover pending with it.
 * - A waiter reading the handover to itself holds grant t + 1 without writing, until the
 *   send time of its latest request answered before the handover (that request was
 *   applied before the handover, which is before any taker's first sight of it) plus
 *   min(handover lease, its own lease), minus the safety margin: a taker must see
 *   `version` unchanged for the handover lease from a receipt after the handover (the
 *   takeover rule), so it comes after. Its first heartbeat (`version = current AND holder
 *   = me`, the handover's version being current) extends it to its own lease; so does
 *   `accept` (`grantee = me AND handoffVersion = version AND holder = me`), which it sends at
 *   once when the grant carries data. A waiter that holds handovers lazily sends an accept
 *   only for a handover it read, conditioned on that one (`handoffVersion = :seen`): the
 *   same waiter id may be handed the lock again later (its first handover taken over, its
 *   place taken anew), and an accept delivered late must not take up that later handover,
 *   which the waiter may already hold lazily by its version (the accept would change the
 *   version under it). A waiter that polls with accepts without having read a handover
 *   takes up handovers only by writing, and recognises each of its accepts by attempt id.
 * - A takeover of a pending handover (`version = observed`, after the handover lease on
 *   the taker's clock) and an accept or first heartbeat are mutually exclusive: each
 *   changes `version`, and each is conditioned on it. A waiter that died never held the
 *   lock; one that is slow finds its accept or heartbeat refused, with the item.
 * - A waiter that gives up while handed the lock passes it on (`decline`: conditioned on
 *   the handover still pending for it); if it cannot, the handover lease ends it. A late
 *   accept of a waiter that gave up can land only while a handover to it is still pending
 *   (the one it was sent for, if it names one), and leaves a grant that its lease ends,
 *   like any late grant.
 * - Lost answers: a handing release retried after its answer was lost is refused (the
 *   token moved); the item proves it landed, by its attempt id while the handover is
 *   pending, and after that by `lastRelease = <t>:<owner>`, which only a release of grant
 *   t by that owner writes, until a later release overwrites it (the grantee's, once it
 *   releases in turn): then a release with a lost answer, refused on retry, is reported
 *   as an unknown outcome (OutcomeUnknownError), never as not released. An accept or
 *   heartbeat is recognised by its attempt id.
 *   `releasedBy` with no holder proves a release only at the token it was written at: the
 *   handing release writes it at the grantee's token, so ending a handover never taken up
 *   (sweep) removes it, or a grantee sharing the releaser's owner id would read it as its own.
 * - Mutual exclusion for anyone who respects fencing, token monotonicity and owner-only
 *   release are as for any grant: the handover is a grant by the holder's own write.
 * - A grant applies at most once (a copy delivered late, an SDK retry's stuck first attempt
 *   or a write the client gave up on, must not grant the lock again to an owner no longer
 *   waiting, once it is free again). A grant from a read names the version read, which
 *   every grant and release changes. A blind grant is refused by `grantWait` (the id of the
 *   wait whose grant landed last, shared by all grant writes of one wait, each of which
 *   still has an attempt id of its own; kept by releases) and by `releasedAt` (set by every
 *   write that frees the lock: releases, decline, ending a handover) at or after its own
 *   send, less MAX_CLOCK_OFFSET_MS for the writers' wall clocks. A late copy of the creating
 *   transaction fails its floor check once the item was deleted: every delete moves the
 *   floor first. Beyond the clock bound, or for a wait that gave up before any grant of it
 *   landed, a late grant can still land on a lock freed since: a grant nobody believes it
 *   holds, which its lease ends (liveness, never safety).
 * - Earlier clients: their waiters' ids lack the `#h` mark (queue.ts), and a release frees
 *   the lock for them as before instead of handing it over; an earlier client's write
 *   ends a pending handover like any write (it changes `version`).
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
import { numberValue, stringValue } from "../internal/attributes.js";
import { randomUUID } from "node:crypto";
import { OutcomeUnknownError, ReleaseIncompleteError } from "../errors.js";
import { MAX_WAITER_LEASE_MS, MAX_WAITERS, parsePlace, PLACE_MARGIN_MS } from "./queue.js";
import { MAX_CLOCK_OFFSET_MS } from "./defaults.js";
import { sleep } from "../internal/time.js";
import { certainlyNotApplied, isBusy } from "../internal/outcomes.js";

type Item = Record<string, AttributeValue>;

/** How many times a release is sent while the item shows it never arrived (about 5 s of backoff in all). */
const RELEASE_TRIES = 8;

/** How many times a write to the token floor is sent while DynamoDB answers busy (a transaction on it in progress, throttling). */
const FLOOR_WRITE_TRIES = 8;

/** Most dead places one write removes (keeps condition expressions short). */
export const MAX_SKIP_PER_WRITE = 32;

/** Releases planned again after the queue turned out otherwise, before one frees the lock whatever the queue holds. */
const MAX_REPLANS = 3;

/**
 * What a release does with the waiter queue, planned from the item as the releasing client
 * last saw it; the write's condition checks the queue is still so.
 */
export interface ReleasePlan {
  /** Places at the head its client judged dead (queue.ts), removed by the release: exact strings. */
  readonly skip: readonly string[];
  /**
   * The place right after `skip`, whose waiter takes handovers: the release hands it the
   * lock. Undefined: the release frees the lock, and the queue must hold just `skip`.
   */
  readonly head?: { readonly place: string; readonly waiter: string; readonly owner: string; readonly leaseMs: number };
  /** Free the lock whatever the queue holds (waiters take it as from any free lock), as earlier clients did. */
  readonly anyQueue?: boolean;
}

/** The plan of a release that knows nothing of the queue. */
export const FREE_WHATEVER_THE_QUEUE: ReleasePlan = { skip: [], anyQueue: true };

/** Who ends a grant: its holder (by token), or the waiter it was handed to and not yet taken up by. */
type ReleaseParty = { kind: "holder"; owner: string; fencingToken: number } | { kind: "grantee"; owner: string; waiter: string };

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
  /** Waiters' places (see queue.ts) in arrival order. */
  readonly queue: readonly string[];
  readonly releasedBy: string | undefined;
  /**
   * A release handed the lock to this waiter (`holder` is its owner; `fencingToken` is its
   * token) and the waiter has not taken it up yet: it does with `accept`, or the short
   * lease in `leaseMs` runs out and the next waiter takes the lock over. Undefined otherwise.
   */
  readonly grantee: string | undefined;
  /**
   * The wait whose grant landed last (`GrantRequest.wait`): written by grants, and by the
   * accept that takes up a handover to that wait; kept by releases.
   */
  readonly grantWait: string | undefined;
  /** The last release a current client wrote, as `<token>:<owner>`: proves it landed after its answer was lost. */
  readonly lastRelease: string | undefined;
  /** About how long holders lately held the lock (ms, each on its own clock): a hint for waiters' polls, never used for safety. */
  readonly holdMs: number | undefined;
  /** Wall-clock times (epoch ms), informational only: never used for safety. */
  readonly acquiredAt: number | undefined;
  /** The last heartbeat's wall-clock time (or the grant's): for display only. */
  readonly renewedAt: number | undefined;
  readonly releasedAt: number | undefined;
}

/**
 * The write that ends a handover never taken up (sweep). It removes `releasedBy` too: the
 * handing release wrote it (the releaser of the previous token), and left at the grantee's
 * token with no holder it would read as the grantee's own release (the earlier clients'
 * proof in #releaseOnce) when both share an owner id.
 */
export const END_HANDOFF_UPDATE = "SET #version = :next, releasedAt = :now REMOVE holder, grantee, handoffVersion, releasedBy";

/** Key of the table-wide token floor item. */
export const TOKEN_FLOOR_KEY = "fencepost#token-floor";


export function parseLease(item: Item | undefined): LeaseRecord | undefined {
  if (!item?.["pk"]?.S || item["token"]?.N === undefined) return undefined;
  const num = (a: string) => (item[a]?.N === undefined ? undefined : Number(item[a]!.N));
  const version = item["version"]?.S ?? "";
  // Pending only while the item is exactly as the handing-over release left it: any later
  // write (an earlier client's too, which leaves these two attributes behind) changes `version`.
  const pending = item["holder"]?.S !== undefined && item["grantee"]?.S !== undefined && item["handoffVersion"]?.S === version;
  return {
    key: item["pk"].S,
    fencingToken: Number(item["token"].N),
    holder: item["holder"]?.S,
    version,
    leaseMs: num("leaseMs") ?? 0,
    data: item["data"]?.S,
    queue: (item["queue"]?.L ?? []).map((w) => w.S ?? ""),
    releasedBy: item["releasedBy"]?.S,
    grantee: pending ? item["grantee"]!.S : undefined,
    grantWait: item["grantWait"]?.S,
    lastRelease: item["lastRelease"]?.S,
    holdMs: num("holdMs"),
    acquiredAt: num("acquiredAt"),
    renewedAt: num("renewedAt") ?? num("acquiredAt"),
    releasedAt: num("releasedAt"),
  };
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
  /**
   * `free`: no holder; still at `version` if given (the item as the caller read it), else
   * (a blind grant) not released since the request was made. `expired`: still at
   * `version`, observed unchanged for a full lease.
   */
  readonly kind: "free" | "expired";
  readonly version?: string;
  /**
   * Dead places at the head of the queue that the grant removes, exactly as read (a run
   * longer than MAX_SKIP_PER_WRITE is pruned in writes of its own first).
   */
  readonly skip?: readonly string[];
  /**
   * This waiter's own place, right after `skip`: the grant requires it there and removes
   * it. Undefined for a grantee not in the queue: then the queue must hold only `skip`.
   */
  readonly mine?: string;
}

export interface GrantRequest {
  readonly key: string;
  readonly owner: string;
  /** This write's own attempt id (the item's `version` once it lands). */
  readonly attempt: string;
  /**
   * The id of the wait this write belongs to, shared by all its grant writes (default: the
   * attempt id): kept on the item as `grantWait`, it refuses a late blind copy of any of them.
   */
  readonly wait?: string;
  readonly leaseMs: number;
  readonly data?: string;
  readonly expect: GrantExpectation;
}

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
 * - The waiter queue (`queue`, places as queue.ts formats them) only orders grants; it is
 *   never needed for safety. A grant may remove places ahead of its grantee that the
 *   caller judged dead (queue.ts), named by their exact strings, in the same write.
 * - The item stays below DynamoDB's 400 KB limit: at most MAX_WAITERS queue entries of
 *   bounded size (owner ids and attached data are bounded by LockClient), so a release
 *   can always be written.
 * Assumes: a table with a string partition key `pk`, strongly consistent reads.
 */
export class LeaseStore {
  constructor(
    readonly dynamodb: DynamoDBClient,
    readonly tableName: string,
  ) {}

  /** Consistent read of one record. */
  async read(key: string): Promise<LeaseRecord | undefined> {
    const { Item } = await this.dynamodb.send(new GetItemCommand({ TableName: this.tableName, Key: { pk: stringValue(key) }, ConsistentRead: true }));
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
  ): Promise<{ applied: true; record: LeaseRecord } | { applied: false; found: LeaseRecord | undefined; refused: boolean }> {
    try {
      const after = parseLease(await send());
      if (!after) throw new OutcomeUnknownError(`The write to ${key} returned no item; its outcome is settled by reading it.`);
      return { applied: true, record: after };
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) {
        const found = parseLease(err.Item);
        if (found?.version === attempt) return { applied: true, record: found };
        // `refused`: DynamoDB answered that the condition failed on `found`. An earlier
        // attempt of the same request (an SDK retry) may still have applied and been
        // superseded since; callers that must know look for their own trace in the item.
        return { applied: false, found, refused: true };
      }
      if (certainlyNotApplied(err)) throw err;
      const found = await this.read(key);
      if (found?.version === attempt) return { applied: true, record: found };
      // Not applied (the item may still be as we left it: callers check), or applied and
      // already superseded.
      return { applied: false, found, refused: false };
    }
  }

  /** Grants the lock in one conditional write if the item is as `expect` says. */
  async grant(req: GrantRequest): Promise<GrantOutcome> {
    const { expect } = req;
    const names: Record<string, string> = { "#token": "token", "#data": "data", "#queue": "queue", "#version": "version" };
    const now = Date.now();
    const values: Item = { ":me": stringValue(req.owner), ":attempt": stringValue(req.attempt), ":wait": stringValue(req.wait ?? req.attempt), ":lease": numberValue(req.leaseMs), ":one": numberValue(1), ":now": numberValue(now) };
    const conditions = ["attribute_exists(pk)"];
    if (expect.kind === "free") conditions.push("attribute_not_exists(holder)");
    // A grant must not apply twice: a copy delivered late (the SDK retried it, or the client
    // gave up on it) would grant again, to an owner no longer waiting, once the lock is free
    // again. A grant from a read names the version it read (every grant and release changes
    // it). A blind one refuses the item its own wait last granted (`grantWait`, which
    // releases keep), and a lock freed after it was made (`releasedAt`, which every write
    // that frees the lock sets on the writer's wall clock), allowing for clocks up to
    // MAX_CLOCK_OFFSET_MS apart: a blind grant that soon after a release is refused, and
    // the caller grants from the item the refusal returns.
    if (expect.version !== undefined || expect.kind === "expired") {
      conditions.push("#version = :observed");
      values[":observed"] = stringValue(expect.version ?? "");
    } else {
      conditions.push("(attribute_not_exists(grantWait) OR grantWait <> :wait)", "(attribute_not_exists(releasedAt) OR releasedAt < :freedBefore)");
      values[":freedBefore"] = numberValue(now - MAX_CLOCK_OFFSET_MS);
    }
    const set = ["holder = :me", "#version = :attempt", "grantWait = :wait", "leaseMs = :lease", "#token = #token + :one", "acquiredAt = :now", "renewedAt = :now"];
    // A handover still pending (a taken-over one) ends with this grant; one left behind by an earlier client's write goes too.
    const remove = ["releasedBy", "releasedAt", "grantee", "handoffVersion"];
    if (req.data !== undefined) {
      set.push("#data = :data");
      values[":data"] = stringValue(req.data);
    } else remove.push("#data");
    let skip = expect.skip ?? [];
    // A long run of dead places goes in separate writes first, keeping expressions short.
    while (skip.length > MAX_SKIP_PER_WRITE) {
      if (!(await this.prune(req.key, skip.slice(0, MAX_SKIP_PER_WRITE)))) return { granted: false, record: await this.read(req.key) };
      skip = skip.slice(MAX_SKIP_PER_WRITE);
    }
    const ahead = expect.mine === undefined ? skip : [...skip, expect.mine];
    ahead.forEach((entry, i) => {
      conditions.push(`#queue[${i}] = :q${i}`);
      values[`:q${i}`] = stringValue(entry);
      remove.push(`#queue[${i}]`);
    });
    if (expect.mine === undefined) {
      conditions.push(skip.length === 0 ? "(attribute_not_exists(#queue) OR size(#queue) = :size)" : "size(#queue) = :size");
      values[":size"] = numberValue(skip.length);
    }
    const result = await this.stamped(req.key, req.attempt, async () => {
      const out = await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { pk: stringValue(req.key) },
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
      pk: stringValue(req.key),
      token: numberValue(floorGuess + 1),
      holder: stringValue(req.owner),
      version: stringValue(req.attempt),
      grantWait: stringValue(req.wait ?? req.attempt),
      leaseMs: numberValue(req.leaseMs),
      acquiredAt: numberValue(Date.now()),
    };
    if (req.data !== undefined) item["data"] = stringValue(req.data);
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
                Key: { pk: stringValue(TOKEN_FLOOR_KEY) },
                ConditionExpression: floorGuess === 0 ? "attribute_not_exists(maxToken) OR maxToken = :floor" : "maxToken = :floor",
                ExpressionAttributeValues: { ":floor": numberValue(floorGuess) },
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
      new GetItemCommand({ TableName: this.tableName, Key: { pk: stringValue(TOKEN_FLOOR_KEY) }, ConsistentRead: true }),
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
          Key: { pk: stringValue(key) },
          // A handover's holder heartbeats from the handover's version: that takes it up (see the module header).
          UpdateExpression: "SET #version = :next, leaseMs = :lease, renewedAt = :now REMOVE grantee, handoffVersion",
          ConditionExpression: "#version = :current AND holder = :me",
          ExpressionAttributeNames: { "#version": "version" },
          ExpressionAttributeValues: { ":next": stringValue(next), ":current": stringValue(current), ":me": stringValue(owner), ":lease": numberValue(leaseMs), ":now": numberValue(Date.now()) },
          ReturnValues: "ALL_NEW",
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
      return out.Attributes;
    });
    return result.applied ? { ok: true, record: result.record } : { ok: false, found: result.found };
  }

  /**
   * Takes up a lock a release handed to `waiter` (of `owner`): one conditional write that
   * succeeds only while the item is exactly as that release left it, and starts the
   * waiter's own lease (`leaseMs`, version `attempt`) in place of the short handover lease.
   * Its failure returns the item, so a waiter polls with it. `seen`: the version of the
   * handover it was sent for, which it then must still be (a lazy waiter always names it; a
   * waiter that takes up handovers by writing may poll without, and knows its attempt ids).
   * `wait`: the waiter's wait, which it names as a grant would (`grantWait`).
   * See the module header.
   */
  async accept(key: string, owner: string, waiter: string, attempt: string, leaseMs: number, data: string | undefined, seen: string | undefined, wait: string): Promise<GrantOutcome> {
    const values: Item = { ":me": stringValue(owner), ":waiter": stringValue(waiter), ":attempt": stringValue(attempt), ":wait": stringValue(wait), ":lease": numberValue(leaseMs), ":now": numberValue(Date.now()) };
    // Sent for a handover the waiter saw: only that one (a late delivery must not take up a
    // later handover to the same waiter, which the waiter may hold lazily by its version).
    if (seen !== undefined) values[":seen"] = stringValue(seen);
    const set = ["#version = :attempt", "grantWait = :wait", "leaseMs = :lease", "renewedAt = :now"];
    const remove = ["grantee", "handoffVersion", "releasedBy", "releasedAt"];
    if (data !== undefined) {
      set.push("#data = :data");
      values[":data"] = stringValue(data);
    } else remove.push("#data");
    const result = await this.stamped(key, attempt, async () => {
      const out = await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { pk: stringValue(key) },
          UpdateExpression: `SET ${set.join(", ")} REMOVE ${remove.join(", ")}`,
          ConditionExpression: `grantee = :waiter AND handoffVersion = #version AND holder = :me${seen !== undefined ? " AND handoffVersion = :seen" : ""}`,
          ExpressionAttributeNames: { "#version": "version", "#data": "data" },
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
   * Releases the lock if `owner` holds it with `fencingToken`. Idempotent: a release whose
   * response was lost is recognised by the item (its attempt id while it is the version,
   * `lastRelease` after that). Resolves to false when `owner` does not hold the lock with
   * that token and the item shows no release of it by `owner`, and no try may have landed
   * unseen; when one may have (its answer lost) and the item has moved on without a trace
   * of it (a later release overwrote `lastRelease`), rejects with OutcomeUnknownError:
   * "condition failed" is never "not applied" unless the item proves it.
   *
   * `plan` says what to do with the queue, from the item as the caller last saw it (the
   * first call gets `seen`): hand the lock to the waiter at its head (in the same write, see
   * the module header), or free it. When the queue turned out otherwise, the refused write
   * returns the item and the release is planned again from it; after MAX_REPLANS it frees
   * the lock whatever the queue holds (waiters then take it as from any free lock). Without
   * a plan the lock is freed whatever the queue holds, as earlier clients do.
   */
  async release(
    key: string,
    owner: string,
    fencingToken: number,
    attempt: string,
    options: { plan?: (seen: LeaseRecord | undefined) => ReleasePlan; seen?: LeaseRecord; holdMs?: number } = {},
  ): Promise<{ released: boolean; found: LeaseRecord | undefined }> {
    const outcome = await this.#settleRelease(key, { kind: "holder", owner, fencingToken }, attempt, options);
    return { released: outcome.done, found: outcome.found };
  }

  /**
   * A waiter that gives up while the lock is handed to it passes it on: to the next waiter
   * (planned as for a release) or free. Resolves once the item shows the handover to
   * `waiter` no longer pending (by this write, or because it was taken up or over).
   */
  async decline(key: string, owner: string, waiter: string, options: { plan?: (seen: LeaseRecord | undefined) => ReleasePlan; seen?: LeaseRecord } = {}): Promise<LeaseRecord | undefined> {
    return (await this.#settleRelease(key, { kind: "grantee", owner, waiter }, randomUUID(), options)).found;
  }

  async #settleRelease(
    key: string,
    party: ReleaseParty,
    attempt: string,
    options: { plan?: (seen: LeaseRecord | undefined) => ReleasePlan; seen?: LeaseRecord; holdMs?: number },
  ): Promise<{ done: boolean; found: LeaseRecord | undefined }> {
    const planFor = options.plan ?? (() => FREE_WHATEVER_THE_QUEUE);
    let seen = options.seen;
    let replans = 0;
    // Whether some try may have landed unseen (its answer lost): then a refusal that shows
    // neither our release nor the lock still ours proves nothing either way.
    let maybeApplied = false;
    // A release that never reached the item (its attempts lost, throttled or 5xx) finds the
    // lock still ours: it is sent again (with a new attempt id), never reported as a takeover.
    for (let tries = 1, backoff = 25; ; tries++, backoff = Math.min(backoff * 2, 1000)) {
      const last = tries >= RELEASE_TRIES;
      const plan = replans >= MAX_REPLANS ? FREE_WHATEVER_THE_QUEUE : planFor(seen);
      let outcome: { done: boolean; found: LeaseRecord | undefined; stillOurs: boolean; refused: boolean; uncertain: boolean };
      try {
        outcome = await this.#releaseOnce(key, party, tries === 1 && replans === 0 ? attempt : randomUUID(), plan, options.holdMs);
      } catch (err) {
        if (!certainlyNotApplied(err)) maybeApplied = true;
        if (last) throw new ReleaseIncompleteError(key, party.kind === "holder" ? party.fencingToken : 0, tries, { cause: err });
        await sleep(backoff * (0.5 + Math.random() / 2));
        continue;
      }
      maybeApplied ||= outcome.uncertain;
      if (!outcome.stillOurs) {
        if (!outcome.done && maybeApplied && party.kind === "holder") {
          // The grant moved on and the item keeps no trace of our release (a later release
          // overwrote `lastRelease`): it may have landed, or the lock was taken over first.
          throw new OutcomeUnknownError(
            `The release of ${key} (token ${party.fencingToken}) lost its answer and the lock has moved on (token ${outcome.found?.fencingToken ?? "none"}): it may have been applied, or the lock taken over first. Either way this owner no longer holds token ${party.fencingToken}.`,
          );
        }
        return { done: outcome.done, found: outcome.found };
      }
      seen = outcome.found;
      if (outcome.refused) {
        // Refused by the queue, not by ownership: plan again from what the refusal returned.
        replans++;
        tries--;
        continue;
      }
      if (last) throw new ReleaseIncompleteError(key, party.kind === "holder" ? party.fencingToken : 0, tries);
      await sleep(backoff * (0.5 + Math.random() / 2));
    }
  }

  async #releaseOnce(
    key: string,
    party: ReleaseParty,
    attempt: string,
    plan: ReleasePlan,
    holdMs: number | undefined,
  ): Promise<{ done: boolean; found: LeaseRecord | undefined; stillOurs: boolean; refused: boolean; uncertain: boolean }> {
    const names: Record<string, string> = { "#version": "version", "#token": "token", "#queue": "queue", "#data": "data" };
    const values: Item = { ":attempt": stringValue(attempt), ":me": stringValue(party.owner), ":now": numberValue(Date.now()) };
    const conditions: string[] = [];
    const set = ["#version = :attempt"];
    const remove: string[] = [];
    if (party.kind === "holder") {
      conditions.push("holder = :me", "#token = :token");
      values[":token"] = numberValue(party.fencingToken);
      set.push("lastRelease = :release");
      values[":release"] = stringValue(`${party.fencingToken}:${party.owner}`);
    } else {
      conditions.push("grantee = :waiter", "handoffVersion = #version", "holder = :me");
      values[":waiter"] = stringValue(party.waiter);
    }
    if (holdMs !== undefined) {
      set.push("holdMs = :hold");
      values[":hold"] = numberValue(Math.round(holdMs));
    }
    if (!plan.anyQueue) {
      const named = plan.head ? [...plan.skip, plan.head.place] : plan.skip;
      named.forEach((place, i) => {
        conditions.push(`#queue[${i}] = :q${i}`);
        values[`:q${i}`] = stringValue(place);
        remove.push(`#queue[${i}]`);
      });
      if (!plan.head) {
        conditions.push(named.length === 0 ? "(attribute_not_exists(#queue) OR size(#queue) = :size)" : "size(#queue) = :size");
        values[":size"] = numberValue(named.length);
      }
    }
    if (plan.head && !plan.anyQueue) {
      // The handover: the head waiter's owner holds the lock under the next token, pending
      // until that waiter takes it up (`accept`), for at most its place's lease.
      set.push("holder = :next", "#token = #token + :one", "grantee = :grantee", "handoffVersion = :attempt", "leaseMs = :handoffLease", "acquiredAt = :now", "renewedAt = :now");
      values[":next"] = stringValue(plan.head.owner);
      values[":one"] = numberValue(1);
      values[":grantee"] = stringValue(plan.head.waiter);
      values[":handoffLease"] = numberValue(plan.head.leaseMs);
      // releasedAt stays: until taken up, the lock is as idle as a released one (sweep, below).
      set.push("releasedBy = :me", "releasedAt = :now");
      remove.push("#data");
    } else {
      set.push("releasedBy = :me", "releasedAt = :now");
      remove.push("holder", "grantee", "handoffVersion");
    }
    const update = `SET ${set.join(", ")} REMOVE ${remove.join(", ")}`;
    const condition = conditions.join(" AND ");
    const command = new UpdateItemCommand({
      TableName: this.tableName,
      Key: { pk: stringValue(key) },
      UpdateExpression: update,
      ConditionExpression: condition,
      // Only the names the expressions use (DynamoDB refuses unused ones).
      ExpressionAttributeNames: Object.fromEntries(Object.entries(names).filter(([name]) => `${update} ${condition}`.includes(name))),
      ExpressionAttributeValues: values,
      ReturnValues: "ALL_NEW",
      ReturnValuesOnConditionCheckFailure: "ALL_OLD",
    });
    // An SDK retry refused after an attempt whose answer was lost proves nothing about that attempt.
    const log = trackAttempts(command);
    const result = await this.stamped(key, attempt, async () => (await this.dynamodb.send(command)).Attributes);
    if (result.applied) return { done: true, found: result.record, stillOurs: false, refused: false, uncertain: false };
    const found = result.found;
    const uncertain = log.uncertain || !result.refused;
    if (party.kind === "grantee") {
      // Done once the handover to this waiter is no longer pending: passed on by this write (its
      // answer lost), or taken up by an earlier accept of ours, or taken over after its lease.
      const stillOurs = found !== undefined && found.grantee === party.waiter && found.holder === party.owner;
      return { done: !stillOurs, found, stillOurs, refused: result.refused, uncertain };
    }
    const { owner, fencingToken } = party;
    // A release of ours whose answer was lost: the item says so even after the lock moved on
    // (`lastRelease`), or, as earlier clients left it, released at our token by us.
    const alreadyReleasedByUs =
      found !== undefined && (found.lastRelease === `${fencingToken}:${owner}` || (found.holder === undefined && found.fencingToken === fencingToken && found.releasedBy === owner));
    // (Ours also while it is a handover to us that we hold without having written: its token is ours alone.)
    const stillOurs = found !== undefined && found.holder === owner && found.fencingToken === fencingToken;
    return { done: alreadyReleasedByUs, found, stillOurs, refused: result.refused, uncertain };
  }

  /**
   * Appends `entry` (a formatted QueuePlace) to the queue unless the waiter already has a
   * place or the queue holds `maxWaiters` places. Resolves to the record after (or as
   * found, when the condition failed): the caller looks for its place in it.
   */
  async enqueue(key: string, entry: string, maxWaiters: number): Promise<LeaseRecord | undefined> {
    return this.#queueWrite(
      key,
      "SET #queue = list_append(if_not_exists(#queue, :empty), :entry)",
      // Only onto a busy lock (held, or with places queued): a free lock nobody waits for is
      // granted instead (the refusal returns it), so no waiter ever queues for a free lock alone.
      "attribute_exists(pk) AND (attribute_exists(holder) OR size(#queue) > :zero) AND (attribute_not_exists(#queue) OR (NOT contains(#queue, :id) AND size(#queue) < :max))",
      { ":empty": { L: [] }, ":entry": { L: [stringValue(entry)] }, ":id": stringValue(entry), ":max": numberValue(Math.min(maxWaiters, MAX_WAITERS)), ":zero": numberValue(0) },
    );
  }

  /**
   * Replaces the waiter's place `current` at `index` with `next` (a later stamp), if it is
   * still there. Resolves to the record after, or as found when it was not.
   */
  async renewPlace(key: string, index: number, current: string, next: string): Promise<LeaseRecord | undefined> {
    return this.#queueWrite(key, `SET #queue[${index}] = :next`, `#queue[${index}] = :current`, { ":next": stringValue(next), ":current": stringValue(current) });
  }

  /** One conditional write to the queue: the record after it, or as found when the condition failed. */
  async #queueWrite(key: string, update: string, condition: string, values: Item): Promise<LeaseRecord | undefined> {
    try {
      const out = await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { pk: stringValue(key) },
          UpdateExpression: update,
          ConditionExpression: condition,
          ExpressionAttributeNames: { "#queue": "queue" },
          ExpressionAttributeValues: values,
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
   * Removes `dead`, the first places of the queue exactly as read (at most
   * MAX_SKIP_PER_WRITE of them), if they are still there. False if the queue changed.
   */
  prune(key: string, dead: readonly string[]): Promise<boolean> {
    return this.removePlaces(key, dead.map((place, index) => ({ place, index })));
  }

  /**
   * Removes each place at its index (indexes into the queue as read; at most
   * MAX_SKIP_PER_WRITE of them), if every one is still there. False if the queue changed.
   */
  async removePlaces(key: string, places: ReadonlyArray<{ place: string; index: number }>): Promise<boolean> {
    const some = places.slice(0, MAX_SKIP_PER_WRITE);
    if (some.length === 0) return true;
    const values: Item = {};
    some.forEach(({ place }, i) => (values[`:q${i}`] = stringValue(place)));
    try {
      await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { pk: stringValue(key) },
          // Every index names a position in the list as it was before this update.
          UpdateExpression: `REMOVE ${some.map(({ index }) => `#queue[${index}]`).join(", ")}`,
          ConditionExpression: some.map(({ index }, i) => `#queue[${index}] = :q${i}`).join(" AND "),
          ExpressionAttributeNames: { "#queue": "queue" },
          ExpressionAttributeValues: values,
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  /** Removes the place `entry` at `index` if it is still there (a waiter that gives up). */
  async dequeue(key: string, entry: string, index: number): Promise<boolean> {
    try {
      await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { pk: stringValue(key) },
          UpdateExpression: `REMOVE #queue[${index}]`,
          ConditionExpression: `#queue[${index}] = :entry`,
          ExpressionAttributeNames: { "#queue": "queue" },
          ExpressionAttributeValues: { ":entry": stringValue(entry) },
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  /**
   * One page of a consistent scan for items whose keys start with `prefix`: at most `limit`
   * items are examined (DynamoDB's Limit), so a page may hold fewer. `next` continues it.
   */
  async page(prefix: string, limit: number, startAfter: string | undefined): Promise<{ records: LeaseRecord[]; next: string | undefined }> {
    const out = await this.dynamodb.send(
      new ScanCommand({
        TableName: this.tableName,
        FilterExpression: "begins_with(pk, :prefix)",
        ExpressionAttributeValues: { ":prefix": stringValue(prefix) },
        ConsistentRead: true,
        Limit: limit,
        ExclusiveStartKey: startAfter ? { pk: stringValue(startAfter) } : undefined,
      }),
    );
    const records = (out.Items ?? []).flatMap((item) => parseLease(item) ?? []);
    return { records, next: out.LastEvaluatedKey?.["pk"]?.S };
  }

  /**
   * Deletes released lock items (keys starting with `prefix`) idle since before
   * `releasedBefore` (epoch ms). For each, the token floor is raised to the item's token
   * first, so a later grant of the same name continues above it. An item that still has
   * places queued is watched for their lease plus margin: a live waiter would have taken
   * a lock released that long ago, so places left unchanged belong to waiters that are
   * gone, and are removed. So is a handover (see the module header) that its waiter never
   * took up: watched unchanged for its lease plus margin, on this client's clock, it is
   * ended with a write conditioned on that version (the takeover rule; its waiter never
   * believed it held the lock, and can no longer take it up). Resolves to the number of
   * items deleted.
   */
  async sweep(prefix: string, releasedBefore: number): Promise<number> {
    let deleted = 0;
    const queued: LeaseRecord[] = [];
    let start: Item | undefined;
    do {
      const page = await this.dynamodb.send(
        new ScanCommand({
          TableName: this.tableName,
          ConsistentRead: true,
          ExclusiveStartKey: start,
          FilterExpression: "begins_with(pk, :prefix) AND (attribute_not_exists(holder) OR attribute_exists(grantee)) AND releasedAt < :before",
          ExpressionAttributeValues: { ":prefix": stringValue(prefix), ":before": numberValue(releasedBefore) },
        }),
      );
      for (const item of page.Items ?? []) {
        const record = parseLease(item);
        if (!record || (record.holder !== undefined && record.grantee === undefined)) continue; // held (an earlier client's write left `grantee` behind)
        if (record.queue.length === 0 && record.holder === undefined) {
          if (await this.#deleteIdle(record)) deleted++;
        } else if (record.queue.every((place) => parsePlace(place).leaseMs <= MAX_WAITER_LEASE_MS) && record.leaseMs <= MAX_WAITER_LEASE_MS) queued.push(record);
      }
      start = page.LastEvaluatedKey;
    } while (start);
    if (queued.length === 0) return deleted;
    const longest = Math.max(...queued.flatMap((r) => [...r.queue.map((place) => parsePlace(place).leaseMs), r.holder !== undefined ? r.leaseMs : 0]));
    await sleep(longest + PLACE_MARGIN_MS);
    for (const seen of queued) {
      let record = await this.read(seen.key);
      if (!record || record.version !== seen.version || record.grantee !== seen.grantee || record.queue.join("\n") !== seen.queue.join("\n")) continue;
      if (record.holder !== undefined) {
        // Handed over, and never taken up in all that time: end the handover.
        record = await this.#endHandoff(record);
        if (!record) continue;
      }
      const version = record.version;
      // Only the places watched, chunk by chunk; a newcomer's place stops it (a condition fails).
      let pruned = true;
      for (let i = 0; pruned && i < seen.queue.length; i += MAX_SKIP_PER_WRITE) pruned = await this.prune(seen.key, seen.queue.slice(i, i + MAX_SKIP_PER_WRITE));
      record = pruned ? await this.read(seen.key) : undefined;
      if (record && record.queue.length === 0 && record.version === version && record.holder === undefined && (await this.#deleteIdle(record))) deleted++;
    }
    return deleted;
  }

  /** Frees a lock handed over and never taken up, if it is still exactly as `record` shows it: the record after, or undefined. */
  async #endHandoff(record: LeaseRecord): Promise<LeaseRecord | undefined> {
    try {
      const out = await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { pk: stringValue(record.key) },
          UpdateExpression: END_HANDOFF_UPDATE,
          ConditionExpression: "#version = :seen AND grantee = :grantee",
          ExpressionAttributeNames: { "#version": "version" },
          ExpressionAttributeValues: { ":next": stringValue(randomUUID()), ":now": numberValue(Date.now()), ":seen": stringValue(record.version), ":grantee": stringValue(record.grantee ?? "") },
          ReturnValues: "ALL_NEW",
        }),
      );
      return parseLease(out.Attributes);
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return undefined;
      throw err;
    }
  }

  /** Deletes a released, unqueued item if it is still as read, after raising the floor to its token. */
  async #deleteIdle(record: LeaseRecord): Promise<boolean> {
    await this.#moveFloor(record.fencingToken);
    try {
      await this.dynamodb.send(
        new DeleteItemCommand({
          TableName: this.tableName,
          Key: { pk: stringValue(record.key) },
          ConditionExpression: "#version = :version AND attribute_not_exists(holder) AND (attribute_not_exists(#queue) OR size(#queue) = :zero)",
          ExpressionAttributeNames: { "#version": "version", "#queue": "queue" },
          ExpressionAttributeValues: { ":version": stringValue(record.version), ":zero": numberValue(0) },
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  /** Raises the table-wide token floor to at least `token`; resolves to whether this call moved it. */
  async raiseFloor(token: number): Promise<boolean> {
    try {
      await this.#writeFloor(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { pk: stringValue(TOKEN_FLOOR_KEY) },
          UpdateExpression: "SET maxToken = :token",
          ConditionExpression: "attribute_not_exists(maxToken) OR maxToken < :token",
          ExpressionAttributeValues: { ":token": numberValue(token) },
        }),
      );
      return true;
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
      return false;
    }
  }

  /**
   * Before a delete: raises the floor to at least `token`, and moves it by one if it was
   * already there, so that every creating transaction sent before the delete (its floor
   * check names the floor it knew) fails, late copies included (the module header).
   */
  async #moveFloor(token: number): Promise<void> {
    if (await this.raiseFloor(token)) return;
    await this.#writeFloor(
      new UpdateItemCommand({
        TableName: this.tableName,
        Key: { pk: stringValue(TOKEN_FLOOR_KEY) },
        UpdateExpression: "ADD maxToken :one",
        ExpressionAttributeValues: { ":one": numberValue(1) },
      }),
    );
  }

  /**
   * One write to the floor item. Every first grant of a name checks that item in its
   * transaction, so on a busy table a write to it meets a transaction in progress
   * (TransactionConflict) now and then: nothing applied, and it is sent again shortly.
   */
  async #writeFloor(command: UpdateItemCommand): Promise<void> {
    for (let tries = 1; ; tries++) {
      try {
        await this.dynamodb.send(command);
        return;
      } catch (err) {
        if (!isBusy(err) || tries >= FLOOR_WRITE_TRIES) throw err;
        await sleep(10 * tries + Math.random() * 40);
      }
    }
  }
}
