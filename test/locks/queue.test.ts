/**
 * The waiter queue under dead waiters and crowds: a waiter that crashed (here: cut off
 * from DynamoDB, so it can neither renew its place nor leave the queue) holds nobody up
 * for more than one waiter lease, whether the next grant is an acquire, a tryAcquire or a
 * sweep; and the queue is bounded with a typed error. Against DynamoDB Local.
 */
import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { expect, it } from "vitest";
import { injectFaults } from "../../lib/check/middleware.js";
import { LockQueueFullError } from "../../lib/locks/index.js";
import { formatQueueEntry, MAX_WAITERS } from "../../lib/locks/lease.js";
import { dynamoDbClient, lockTable } from "../support/cloud.js";
import { newLockClient, uniqueName } from "../support/locks.js";

async function until(check: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Queues `count` waiters on `name`, then cuts each off from DynamoDB and stops it: their
 * places stay in the queue, as a crashed process's would.
 */
async function deadWaiters(name: string, count: number, waiterLeaseMs: number): Promise<void> {
  const observer = newLockClient().client;
  for (let i = 0; i < count; i++) {
    const { client, dynamodb } = newLockClient({ waiterLeaseMs });
    let cut = false;
    injectFaults(dynamodb, () => (cut ? { kind: "lose-request" } : undefined));
    const stop = new AbortController();
    const waiting = client.acquire(name, { signal: stop.signal, waitMs: 60_000 }).catch(() => undefined);
    await until(async () => ((await observer.store.read(`lock#${name}`))?.queue.length ?? 0) > i);
    cut = true;
    stop.abort();
    await waiting;
  }
}

it("lets tryAcquire take a free lock once the only waiters queued for it are dead", async () => {
  const name = uniqueName();
  const holder = await newLockClient().client.acquire(name);
  await deadWaiters(name, 1, 500);
  await holder.release();
  const { client } = newLockClient();
  let tries = 0;
  let lock;
  await until(async () => {
    tries++;
    lock = await client.tryAcquire(name);
    return lock !== undefined;
  });
  expect(lock!.fencingToken).toBe(holder.fencingToken + 1);
  expect((await client.store.read(`lock#${name}`))?.queue).toEqual([]);
  await lock!.release();
});

it("skips any number of dead waiters together: six cost one waiter lease, not six timeouts", async () => {
  const name = uniqueName();
  const holder = await newLockClient().client.acquire(name);
  await deadWaiters(name, 6, 1000);
  await holder.release();
  const releasedAt = Date.now();
  const lock = await newLockClient().client.acquire(name, { waitMs: 30_000 });
  const waited = Date.now() - releasedAt;
  // Old behaviour: one head timeout (2 * maxPollMs + 500 = 2.5 s) per dead waiter, 15 s.
  // Now: the places die one waiter lease (1 s) plus the skew allowance (1 s) after their last renewal.
  expect(waited).toBeLessThan(7_000);
  expect(lock.fencingToken).toBe(holder.fencingToken + 1);
  await lock.release();
});

it("sweeps a released lock whose only waiters are dead, and its token continues above", async () => {
  const { client } = newLockClient();
  const name = uniqueName();
  const first = await client.acquire(name);
  await deadWaiters(name, 2, 300);
  await first.release();
  await until(async () => {
    await client.sweep({ idleMs: 0 });
    return (await client.store.read(`lock#${name}`)) === undefined;
  });
  const second = await client.acquire(name);
  expect(second.fencingToken).toBeGreaterThan(first.fencingToken);
  await second.release();
});

it("refuses to queue beyond maxWaiters with LockQueueFullError, and the waiters queued still get the lock", async () => {
  const name = uniqueName();
  const holder = await newLockClient().client.acquire(name);
  const waiters = [0, 1, 2].map(() => newLockClient({ maxWaiters: 3 }).client.acquire(name, { waitMs: 30_000 }));
  const observer = newLockClient().client;
  await until(async () => (await observer.inspect(name))?.waiters === 3);
  const started = Date.now();
  await expect(newLockClient({ maxWaiters: 3 }).client.acquire(name, { waitMs: 20_000 })).rejects.toBeInstanceOf(LockQueueFullError);
  expect(Date.now() - started).toBeLessThan(10_000);
  await holder.release();
  // Each releases as soon as it is granted, in whatever order they queued.
  await Promise.all(waiters.map(async (waiting) => (await waiting).release()));
});

it("keeps the largest item the bounds allow under DynamoDB's limit: the holder can still heartbeat and release", async () => {
  const name = uniqueName();
  const ownerId = "o".repeat(256);
  const { client } = newLockClient({ ownerId, leaseMs: 2000 });
  const lock = await client.acquire(name, { data: "d".repeat(16 * 1024) });
  const aliveUntil = Date.now() + 600_000;
  const places = Array.from({ length: MAX_WAITERS }, (_, i) => ({ S: formatQueueEntry({ waiter: `${ownerId}#${String(i).padStart(8, "0")}`, aliveUntil }) }));
  await dynamoDbClient().send(
    new UpdateItemCommand({ TableName: lockTable(), Key: { pk: { S: `lock#${name}` } }, UpdateExpression: "SET #q = :q", ExpressionAttributeNames: { "#q": "queue" }, ExpressionAttributeValues: { ":q": { L: places } } }),
  );
  // A full queue refuses newcomers with a typed error, not a raw ValidationException.
  await expect(newLockClient({ maxWaiters: MAX_WAITERS }).client.acquire(name, { waitMs: 5_000 })).rejects.toBeInstanceOf(LockQueueFullError);
  const granted = await client.store.read(`lock#${name}`);
  // Heartbeats still land on the full item.
  await until(async () => (await client.store.read(`lock#${name}`))?.version !== granted?.version);
  expect(lock.held).toBe(true);
  expect(await lock.release()).toBe(true);
});
