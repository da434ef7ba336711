/**
 * Review of the at-most-once grant (lease.ts `grant`). The sweep's END_HANDOFF_UPDATE
 * (ending a handover its waiter never took up) frees the lock, so it stamps `releasedAt`
 * like a release: a blind grant made while the handover was pending (its SDK retry refused:
 * the lock was held), delivered late after the sweep ended the handover, must be refused.
 * (Before the fix it granted the lock to an owner no longer waiting, and the sweep then
 * no longer deleted the item: an orphaned grant.)
 */
import { expect, it } from "vitest";
import { MAX_CLOCK_OFFSET_MS } from "../../lib/locks/defaults.js";
import { END_HANDOFF_UPDATE } from "../../lib/locks/lease.js";
import { delayFirstGrant, expectExistingNames, leaseStore, newLockClient, queueDeadWaiter, uniqueName, until } from "../support/locks.js";

const item = (name: string) => leaseStore().read(`lock#${name}`);

it("does not grant the lock to a late blind grant after a sweep ended the handover pending when it was sent", { timeout: 40_000 }, async () => {
  const { client, dynamodb } = newLockClient({ ownerId: "eh-grant-owner", leaseMs: 5000 });
  const delayed = delayFirstGrant(dynamodb);
  const maker = newLockClient({ ownerId: "eh-grant-maker" }).client;
  await expectExistingNames(client, maker);
  const name = uniqueName("eh-grant");
  const lock = await maker.acquire(name);
  // The head waiter crashes while queued; the release hands it the lock, which it never takes up.
  // (A 3 s place lease: the handover outlasts the clock allowance below.)
  const dead = await queueDeadWaiter(name, { waiterLeaseMs: 3000, maxPollMs: 250 });
  expect(await lock.release()).toBe(true);
  const handedAt = Date.now();
  expect(await item(name)).toMatchObject({ holder: dead.client.ownerId, fencingToken: lock.fencingToken + 1 });
  // Past the clock allowance after the handing release: its `releasedAt` alone no longer refuses the grant.
  await until(() => Date.now() > handedAt + MAX_CLOCK_OFFSET_MS + 50);
  expect((await item(name))?.grantee).toBeDefined();
  // Our client tries the lock: its blind grant's first attempt is delayed, the retry refused (held).
  delayed.arm();
  expect(await client.tryAcquire(name)).toBeUndefined();
  expect(delayed.held).toBe(true);
  // A sweep ends the handover; the late copy arrives right after that write.
  const sweeper = newLockClient({ ownerId: "eh-grant-sweeper" });
  sweeper.dynamodb.middlewareStack.add(
    (next) => async (args) => {
      const out = await next(args);
      if ((args.input as { UpdateExpression?: string }).UpdateExpression === END_HANDOFF_UPDATE) {
        delayed.deliver();
        await until(() => delayed.late !== undefined);
      }
      return out;
    },
    { step: "initialize", name: "late-after-end-handoff" },
  );
  await sweeper.client.sweep({ idleMs: 0 });
  await until(() => delayed.late !== undefined);
  expect(delayed.late).toEqual({ error: "ConditionalCheckFailedException" });
  expect((await item(name))?.holder).toBeUndefined();
});
