/**
 * The lock workload's negative controls: deliberately broken locks and stores, each with
 * the one bug a fault of the workload must expose. None of them is used outside
 * verification; `acquireFreeOnly` runs the real LockClient, only without its takeover.
 *
 * - `UnfencedStore`: a store that ignores fencing tokens (exposed by paused holders).
 * - `unconditionalAcquire`: reads the item, and if it looks free writes it without a
 *   condition (the check-then-act race, exposed by contention).
 * - `reentrantAcquire`: a conditional grant that also lets the owner that already holds
 *   the lock have it again, with a new token (exposed by duplicate runs: the same acquire
 *   run twice at once, by one owner, or one grant request delivered twice).
 * - `acquireFreeOnly`: waits only for a released lock and never takes over an expired
 *   lease, trusting every holder to release (exposed by holders killed with SIGKILL).
 */
import { ConditionalCheckFailedException, DynamoDBClient, GetItemCommand, PutItemCommand, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { randomUUID } from "node:crypto";
import { LockTimeoutError } from "../../errors.js";
import type { LockClient } from "../../locks/client.js";
import type { MonotonicClock } from "../../locks/clock.js";
import type { Lock } from "../../locks/lock.js";
import { pauseFor } from "./workers.js";

/** What the lock workload needs of a held lock. */
export interface HeldLock {
  readonly fencingToken: number;
  readonly held: boolean;
  remainingMs(): number;
  release(): Promise<boolean>;
}

/** What the lock workload needs of the store its holders write to. */
export interface Store {
  put(key: string, value: string, token: number): Promise<void>;
  get(key: string): Promise<{ value: string; fencingToken: number } | undefined>;
}

/** Key prefixes of the broken locks' items (apart from the real locks' `lock#`). */
export const BROKEN_LOCK_PREFIX = { unconditional: "broken#", reentrant: "reentrant#" } as const;

/** Negative control: a store that ignores fencing tokens. */
export class UnfencedStore implements Store {
  constructor(
    private readonly dynamodb: DynamoDBClient,
    private readonly tableName: string,
  ) {}

  async put(key: string, value: string, token: number): Promise<void> {
    await this.dynamodb.send(
      new PutItemCommand({ TableName: this.tableName, Item: { pk: { S: `unfenced#${key}` }, value: { S: value }, fencingToken: { N: String(token) } } }),
    );
  }

  async get(key: string): Promise<{ value: string; fencingToken: number } | undefined> {
    const { Item } = await this.dynamodb.send(new GetItemCommand({ TableName: this.tableName, Key: { pk: { S: `unfenced#${key}` } }, ConsistentRead: true }));
    return Item?.["value"]?.S ? { value: Item["value"].S, fencingToken: Number(Item["fencingToken"]?.N) } : undefined;
  }
}

/** A lease held on `clock` from `sentAt` for 90% of `leaseMs`; `release` writes the item as freed. */
function heldLease(token: number, sentAt: number, leaseMs: number, clock: MonotonicClock, release: () => Promise<void>): HeldLock {
  let released = false;
  const until = sentAt + leaseMs * 0.9;
  return {
    fencingToken: token,
    get held() {
      return !released && clock.now() < until;
    },
    remainingMs: () => Math.max(0, until - clock.now()),
    async release() {
      released = true;
      await release();
      return true;
    },
  };
}

/** Negative control: read the lock item, and if it looks free, write it without a condition. */
export async function unconditionalAcquire(dynamodb: DynamoDBClient, tableName: string, name: string, owner: string, leaseMs: number, clock: MonotonicClock): Promise<HeldLock> {
  const key = { pk: { S: `${BROKEN_LOCK_PREFIX.unconditional}${name}` } };
  const deadline = clock.now() + 4 * leaseMs;
  for (;;) {
    const { Item } = await dynamodb.send(new GetItemCommand({ TableName: tableName, Key: key, ConsistentRead: true }));
    const token = Number(Item?.["token"]?.N ?? 0);
    if (!Item?.["holder"]?.S || Number(Item["expires"]?.N) < Date.now()) {
      const sentAt = clock.now();
      await dynamodb.send(
        new PutItemCommand({ TableName: tableName, Item: { ...key, holder: { S: owner }, token: { N: String(token + 1) }, expires: { N: String(Date.now() + leaseMs) } } }),
      );
      return heldLease(token + 1, sentAt, leaseMs, clock, async () => {
        await dynamodb.send(new PutItemCommand({ TableName: tableName, Item: { ...key, token: { N: String(token + 1) } } }));
      });
    }
    if (clock.now() > deadline) throw new LockTimeoutError(name, 4 * leaseMs, Item["holder"].S);
    await pauseFor(5);
  }
}

/**
 * Negative control: one conditional write grants the lock and increments the token, and
 * recognises its own attempt id after a lost answer, but its condition lets the owner
 * that already holds the lock have it again (`holder = :me`): a re-entrant grant. Two
 * runs of one owner's acquire then both hold, and a grant request delivered twice
 * grants twice. Expired leases (wall clock) are taken over, so a lost release does not
 * block the lock for ever.
 */
export async function reentrantAcquire(dynamodb: DynamoDBClient, tableName: string, name: string, owner: string, leaseMs: number, clock: MonotonicClock): Promise<HeldLock> {
  const key = { pk: { S: `${BROKEN_LOCK_PREFIX.reentrant}${name}` } };
  const deadline = clock.now() + 4 * leaseMs;
  for (;;) {
    const attempt = randomUUID();
    const sentAt = clock.now();
    let token: number | undefined;
    try {
      const out = await dynamodb.send(
        new UpdateItemCommand({
          TableName: tableName,
          Key: key,
          UpdateExpression: "SET holder = :me, version = :attempt, expires = :expires ADD #token :one",
          ConditionExpression: "attribute_not_exists(holder) OR holder = :me OR expires < :now",
          ExpressionAttributeNames: { "#token": "token" },
          ExpressionAttributeValues: { ":me": { S: owner }, ":attempt": { S: attempt }, ":expires": { N: String(Date.now() + leaseMs) }, ":now": { N: String(Date.now()) }, ":one": { N: "1" } },
          ReturnValues: "ALL_NEW",
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
      token = Number(out.Attributes?.["token"]?.N);
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
      if (err.Item?.["version"]?.S === attempt) token = Number(err.Item["token"]?.N);
    }
    if (token !== undefined) {
      const granted = token;
      return heldLease(granted, sentAt, leaseMs, clock, async () => {
        await dynamodb
          .send(
            new UpdateItemCommand({
              TableName: tableName,
              Key: key,
              UpdateExpression: "REMOVE holder",
              ConditionExpression: "#token = :token",
              ExpressionAttributeNames: { "#token": "token" },
              ExpressionAttributeValues: { ":token": { N: String(granted) } },
            }),
          )
          .catch((err: unknown) => {
            if (!(err instanceof ConditionalCheckFailedException)) throw err;
          });
      });
    }
    if (clock.now() > deadline) throw new LockTimeoutError(name, 4 * leaseMs, undefined);
    await pauseFor(5);
  }
}

/**
 * Negative control: waits for the lock by polling `tryAcquire`, which grants only a
 * released lock: an expired lease is never taken over, so a holder that dies without
 * releasing blocks the lock for ever.
 */
export async function acquireFreeOnly(client: LockClient, name: string, waitMs: number, clock: MonotonicClock): Promise<Lock> {
  const started = clock.now();
  for (;;) {
    const lock = await client.tryAcquire(name);
    if (lock) return lock;
    if (clock.now() - started >= waitMs) throw new LockTimeoutError(name, clock.now() - started, undefined);
    await pauseFor(20);
  }
}
