/**
 * The waiter queue under dead waiters and crowds: a waiter that crashed (here: cut off
 * from DynamoDB, so it can neither renew its place nor leave the queue) holds nobody up
 * for more than one waiter lease as the next client observes it, whether that client
 * acquires, tries once in a while, or sweeps; live waiters keep their turn; a place left
 * by a late enqueue goes with the grant; the queue is bounded with a typed error.
 * Against DynamoDB Local.
 */
import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { expect, it } from "vitest";
import { injectFaults } from "../../lib/check/middleware.js";
import { InvalidArgumentError, LockQueueFullError, LockTimeoutError, type Lock } from "../../lib/index.js";
import { formatPlace, MAX_WAITERS, parsePlace } from "../../lib/locks/queue.js";
import { dynamoDbClient, lockTable } from "../support/cloud.js";
import { ghost } from "../support/intercept.js";
import { newLockClient, uniqueName, leaseStore } from "../support/locks.js";

async function until(check: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Fast-polling waiters with a short place lease (the smallest allowed: 1 s, twice maxPollMs). */
const quick = { waiterLeaseMs: 1000, maxPollMs: 250 };
const queueOf = async (name: string) => (await leaseStore().read(`lock#${name}`))?.queue ?? [];

/**
 * Queues `count` waiters on `name`, then cuts each off from DynamoDB and stops it: their
 * places stay in the queue, as a crashed process's would.
 */
async function deadWaiters(name: string, count: number, options: { maxWaiters?: number } = {}): Promise<void> {
  for (let i = 0; i < count; i++) {
    const before = (await queueOf(name)).length;
    const { client, dynamodb } = newLockClient({ ...quick, ...options });
    let cut = false;
    injectFaults(dynamodb, () => (cut ? { kind: "lose-request" } : undefined));
    const stop = new AbortController();
    const waiting = client.acquire(name, { signal: stop.signal, waitMs: 60_000 }).catch(() => undefined);
    await until(async () => (await queueOf(name)).length > before);
    cut = true;
    stop.abort();
    await waiting;
  }
}

it("lets tryAcquire take a free lock once this client has seen the only waiters' places go unrenewed for their lease", async () => {
  const name = uniqueName();
  const holder = await newLockClient().client.acquire(name);
  await deadWaiters(name, 3);
  await holder.release();
  const { client } = newLockClient();
  const firstSight = Date.now();
  // Seen for the first time: it could be a live waiter about to take the lock.
  expect(await client.tryAcquire(name)).toBeUndefined();
  let lock: Lock | undefined;
  await until(async () => (lock = await client.tryAcquire(name)) !== undefined);
  expect(Date.now() - firstSight).toBeGreaterThanOrEqual(1000); // the place's lease, at least
  // The release handed token + 1 to the first dead waiter (it never took it up).
  expect(lock!.fencingToken).toBe(holder.fencingToken + 2);
  expect(await queueOf(name)).toEqual([]); // all three places went in the grant's one write
  await lock!.release();
});

it("skips any number of dead waiters together: six cost one waiter lease, not six timeouts", async () => {
  const name = uniqueName();
  const holder = await newLockClient().client.acquire(name);
  await deadWaiters(name, 6);
  await holder.release();
  const releasedAt = Date.now();
  const lock = await newLockClient().client.acquire(name, { waitMs: 30_000 });
  const waited = Date.now() - releasedAt;
  // Before: one head timeout (2 * maxPollMs + 500 = 2.5 s) per dead waiter, 15 s. Now: the
  // places' lease (1 s) plus the margin (1 s), as the acquirer observes them, all at once.
  expect(waited).toBeLessThan(7_000);
  expect(lock.fencingToken).toBe(holder.fencingToken + 2); // + 1 went to the first dead waiter, handed the lock by the release
  expect((await queueOf(name)).length).toBe(0);
  await lock.release();
});

it("gets past more dead waiters than the window shows: each window of them costs about one waiter lease", async () => {
  const name = uniqueName();
  const holder = await newLockClient().client.acquire(name);
  await deadWaiters(name, 10);
  const live = newLockClient(quick).client.acquire(name, { waitMs: 30_000 });
  await until(async () => (await queueOf(name)).length === 11);
  await holder.release();
  const lock = await live; // before: the waiter behind ten dead places waited until it timed out
  expect(lock.fencingToken).toBe(holder.fencingToken + 2); // + 1 went to the first dead waiter, handed the lock by the release
  await lock.release();
});

it("keeps a live waiter's turn however long it waits: its renewed place is never judged gone", async () => {
  const name = uniqueName();
  const holder = await newLockClient().client.acquire(name, { leaseMs: 30_000 });
  const first = newLockClient(quick).client.acquire(name, { waitMs: 30_000 });
  await until(async () => (await queueOf(name)).length === 1);
  const second = newLockClient({ pollMs: 5, maxPollMs: 500, waiterLeaseMs: 1000 }).client.acquire(name, { waitMs: 30_000 });
  // Several waiter leases go by while the lock stays held; the first waiter renews its place.
  await until(async () => parsePlace((await queueOf(name))[0] ?? "x@0@0").renewals >= 4);
  await holder.release();
  const winner = await first;
  expect(winner.fencingToken).toBe(holder.fencingToken + 1);
  await winner.release();
  await (await second).release();
});

it("sweeps a released lock whose only waiters are dead, and its token continues above", async () => {
  const { client } = newLockClient();
  const name = uniqueName();
  const first = await client.acquire(name);
  await deadWaiters(name, 2);
  await first.release();
  await until(async () => {
    await client.sweep({ idleMs: 0 });
    return (await leaseStore().read(`lock#${name}`)) === undefined;
  });
  const second = await client.acquire(name);
  expect(second.fencingToken).toBeGreaterThan(first.fencingToken);
  await second.release();
});

it("removes a place of the grantee left behind by an enqueue delivered late", async () => {
  const name = uniqueName();
  const holder = await newLockClient().client.acquire(name, { leaseMs: 30_000 });
  const { client, dynamodb } = newLockClient(quick);
  const isEnqueue = (_command: string, input: Record<string, unknown>) => String(input["UpdateExpression"] ?? "").includes("list_append");
  const late = ghost(dynamodb, isEnqueue, 10);
  const waiting = client.acquire(name, { waitMs: 30_000 });
  await late.lost;
  // The waiter enqueued again and renewed its place; now its first enqueue arrives.
  await until(async () => (await queueOf(name)).some((place) => parsePlace(place).renewals >= 1));
  await late.deliver();
  expect((await queueOf(name)).length).toBe(2);
  await holder.release();
  const lock = await waiting;
  await until(async () => (await queueOf(name)).length === 0); // dropped in the background after the grant
  await lock.release();
});

it("refuses to queue beyond maxWaiters with LockQueueFullError, and the waiters queued still get the lock", async () => {
  const name = uniqueName();
  const holder = await newLockClient().client.acquire(name);
  const waiters = [0, 1, 2].map(() => newLockClient({ maxWaiters: 3 }).client.acquire(name, { waitMs: 30_000 }));
  await until(async () => (await queueOf(name)).length === 3);
  const started = Date.now();
  await expect(newLockClient({ maxWaiters: 3 }).client.acquire(name, { waitMs: 20_000 })).rejects.toBeInstanceOf(LockQueueFullError);
  expect(Date.now() - started).toBeLessThan(10_000);
  await holder.release();
  // Each releases as soon as it is granted, in whatever order they queued.
  await Promise.all(waiters.map(async (waiting) => (await waiting).release()));
});

it("makes room in a full queue by removing places it saw go unrenewed, behind a live head too", async () => {
  const name = uniqueName();
  const holder = await newLockClient().client.acquire(name, { leaseMs: 30_000 });
  const head = newLockClient({ ...quick, maxWaiters: 3 }).client.acquire(name, { waitMs: 30_000 });
  await until(async () => (await queueOf(name)).length === 1);
  await deadWaiters(name, 2, { maxWaiters: 3 });
  const { client } = newLockClient({ ...quick, maxWaiters: 3 });
  await expect(client.acquire(name, { waitMs: 500 })).rejects.toBeInstanceOf(LockQueueFullError);
  // Retried after a while, the same client has seen the dead places go unrenewed: it gets a place.
  await until(async () => {
    const error = await client.acquire(name, { waitMs: 300 }).then(
      (lock) => lock.release(),
      (e: unknown) => e,
    );
    return error instanceof LockTimeoutError;
  });
  await holder.release();
  await (await head).release();
});

it("refuses a waiter lease too short to renew in time", async () => {
  await expect(newLockClient({ waiterLeaseMs: 2 }).client.acquire(uniqueName())).rejects.toBeInstanceOf(InvalidArgumentError);
  await expect(newLockClient({ waiterLeaseMs: 1500, maxPollMs: 1000 }).client.acquire(uniqueName())).rejects.toBeInstanceOf(InvalidArgumentError);
});

it("keeps the largest item the bounds allow under DynamoDB's limit: the holder can still heartbeat and release", async () => {
  const name = uniqueName();
  const ownerId = "o".repeat(256);
  const { client } = newLockClient({ ownerId, leaseMs: 2000 });
  const lock = await client.acquire(name, { data: "d".repeat(16 * 1024) });
  const places = Array.from({ length: MAX_WAITERS }, (_, i) => ({ S: formatPlace({ waiter: `${ownerId}#${String(i).padStart(8, "0")}`, renewals: 999_999, leaseMs: 60_000 }) }));
  await dynamoDbClient().send(
    new UpdateItemCommand({ TableName: lockTable(), Key: { pk: { S: `lock#${name}` } }, UpdateExpression: "SET #q = :q", ExpressionAttributeNames: { "#q": "queue" }, ExpressionAttributeValues: { ":q": { L: places } } }),
  );
  // A full queue refuses newcomers with a typed error, not a raw ValidationException.
  await expect(newLockClient({ maxWaiters: MAX_WAITERS }).client.acquire(name, { waitMs: 5_000 })).rejects.toBeInstanceOf(LockQueueFullError);
  const granted = await leaseStore().read(`lock#${name}`);
  // Heartbeats still land on the full item.
  await until(async () => (await leaseStore().read(`lock#${name}`))?.version !== granted?.version);
  expect(lock.held).toBe(true);
  expect(await lock.release()).toBe(true);
  // Leave no minute-long places behind for other tests' sweeps to wait on.
  await dynamoDbClient().send(new UpdateItemCommand({ TableName: lockTable(), Key: { pk: { S: `lock#${name}` } }, UpdateExpression: "REMOVE #q", ExpressionAttributeNames: { "#q": "queue" } }));
});
