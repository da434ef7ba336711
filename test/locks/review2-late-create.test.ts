/**
 * Review 2 of b310c13/7ac6455 ("a grant applies at most once"): the creating transaction
 * (`grantMissing`) is a grant too, and its late copy is stopped by nothing the commits add
 * (`grantWait` and `releasedAt` live on an item that a sweep deletes). Its only guard is
 * the floor check, which a sweep did not move when the deleted item's token was below the
 * table-wide floor (raised by sweeps of other names): then a copy of the creating
 * transaction, sent while the name existed (held) and delivered after the lock was granted
 * to the same wait, released and swept, created the item granted to an owner no longer
 * waiting: an orphan for a lease. Fixed: every delete moves the floor (lease.ts #moveFloor).
 */
import { expect, it } from "vitest";
import { delayFirstGrant, isCreatingTransaction, leaseStore, newLockClient, uniqueName, until } from "../support/locks.js";

it("a late copy of the creating transaction does not recreate a swept lock", { timeout: 60_000 }, async () => {
  const store = leaseStore();
  const maker = newLockClient({ ownerId: "r2-gm-maker" }).client;
  const name = uniqueName("r2-gm");
  const key = `lock#${name}`;
  // The name exists with a token below the floor (other names swept since raised it).
  await (await maker.acquire(name)).release();
  await store.raiseFloor((await store.tokenFloor()) + 1000);
  const me = newLockClient({ ownerId: "r2-gm-owner", leaseMs: 5000 });
  // `me` learns the floor by creating a name of its own.
  await (await me.client.acquire(uniqueName("r2-gm-learn"))).release();
  const held = await maker.acquire(name);
  const delayed = delayFirstGrant(me.dynamodb, isCreatingTransaction);
  delayed.arm();
  // First sight of the name: the creating transaction; its first copy is delayed, the retry refused (the item exists).
  const waiting = me.client.acquire(name, { waitMs: 20_000 });
  await until(() => delayed.held);
  await until(async () => ((await store.read(key))?.queue.length ?? 0) > 0);
  await held.release();
  const mine = await waiting;
  expect(await mine.release()).toBe(true);
  // Idle: a sweep deletes it (its token is below the floor: the floor does not move).
  await until(async () => (await store.read(key))?.queue.length === 0);
  await store.sweep(key, Date.now() + 1);
  expect(await store.read(key)).toBeUndefined();
  delayed.deliver();
  await until(() => delayed.late !== undefined);
  // The late copy must not grant the lock again to an owner no longer waiting.
  expect((await store.read(key))?.holder).toBeUndefined();
  expect(delayed.late?.error).toBeDefined();
});
