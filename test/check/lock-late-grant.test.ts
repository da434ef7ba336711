/**
 * A grant applies at most once, even when a copy of it arrives late (found by the lock
 * workload's duplicate and late-delivery faults).
 *
 * A blind grant (the first attempt, nothing read) is one conditional UpdateItem stamped
 * with a fresh attempt id. When its first attempt is delayed in the network (the SDK
 * hears a timeout and sends the same request again, which is granted), the delayed copy
 * may reach DynamoDB after the holder has already released the lock (and after others
 * held and released it too). Its "no holder, empty queue" condition holds again; without
 * more it would grant the lock a second time, to an owner no longer waiting: an orphaned
 * lease blocking everyone for a full lease. The grant now refuses a lock released after
 * the request was made (lib/locks/lease.ts, `grant`).
 */
import { expect, it } from "vitest";
import { acquiredThroughDelayedGrant, clockBehind, newLockClient, until } from "../support/locks.js";

it.each([
  { case: "after its own release", others: 0, releaseBehindMs: 0 },
  // Clock-free: the item remembers the attempt it last granted, whatever `releasedAt` says.
  { case: "after its own release, stamped by a wall clock far behind", others: 0, releaseBehindMs: 60_000 },
  { case: "after others held and released the lock too", others: 2, releaseBehindMs: 0 },
])("does not grant a released lock again when its grant request arrives late ($case)", { timeout: 30_000 }, async ({ others, releaseBehindMs }) => {
  const { client, dynamodb, delayed, name, lock } = await acquiredThroughDelayedGrant("late-grant");
  // Its release is stamped by a wall clock `releaseBehindMs` behind.
  clockBehind(dynamodb, releaseBehindMs, (input) => /releasedBy = :me/.test(input.UpdateExpression ?? ""));
  expect(delayed.held).toBe(true);
  expect(await lock.release()).toBe(true);
  let last = lock.fencingToken;
  for (let i = 0; i < others; i++) {
    const other = newLockClient({ ownerId: `late-grant-other-${i}`, leaseMs: 5000 }).client;
    const theirs = await other.acquire(name);
    expect(theirs.fencingToken).toBeGreaterThan(last);
    last = theirs.fencingToken;
    expect(await theirs.release()).toBe(true);
  }
  delayed.deliver();
  await until(() => delayed.late !== undefined);
  // The late copy must find its grant already made and released: no second grant, no orphan.
  expect(delayed.late).toEqual({ error: "ConditionalCheckFailedException" });
  expect(await client.inspect(name)).toMatchObject({ holder: undefined, fencingToken: last });
});
