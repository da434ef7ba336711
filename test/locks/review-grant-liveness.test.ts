/**
 * Review of the at-most-once grant (lease.ts `grant`): a client whose wall clock is 60 s
 * behind the releaser's has its blind grant refused on a free lock (it looks too soon after
 * the release); tryAcquire and acquire fall back to a grant naming the version read, and
 * still get the lock at once.
 */
import { expect, it } from "vitest";
import { clockBehind, expectExistingNames, newLockClient, uniqueName } from "../support/locks.js";

it("a client 60 s behind gets a free lock from tryAcquire and acquire", async () => {
  const me = newLockClient({ ownerId: "behind" });
  clockBehind(me.dynamodb, 60_000);
  const maker = newLockClient({ ownerId: "maker" }).client;
  await expectExistingNames(me.client, maker);
  for (let i = 0; i < 5; i++) {
    const name = uniqueName("behind");
    await (await maker.acquire(name)).release();
    const t = await me.client.tryAcquire(name);
    expect(t).toBeDefined();
    await t!.release();
    const name2 = uniqueName("behind2");
    await (await maker.acquire(name2)).release();
    const t0 = Date.now();
    const a = await me.client.acquire(name2, { waitMs: 5000 });
    expect(Date.now() - t0).toBeLessThan(1000);
    await a.release();
  }
});
