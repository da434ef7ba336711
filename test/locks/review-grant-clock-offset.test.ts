/**
 * Review of the at-most-once grant (lease.ts `grant`): a blind grant's late copy must be
 * refused after a release by a client whose wall clock is behind the granting client's
 * (simulated by shifting the `:now` its requests carry, which is exactly its Date.now()).
 * The grant compares `releasedAt` (the releaser's clock) with its own clock less
 * MAX_CLOCK_OFFSET_MS, so offsets within that bound are covered; beyond it a late copy
 * can leave a grant nobody holds for one lease (README), never a second holder.
 */
import { expect, it } from "vitest";
import { MAX_CLOCK_OFFSET_MS } from "../../lib/locks/defaults.js";
import { acquiredThroughDelayedGrant, clockBehind, newLockClient, until } from "../support/locks.js";

it.each([250, MAX_CLOCK_OFFSET_MS - 100])("does not grant a released lock again when the late copy arrives after a release by a client whose clock is %i ms behind", { timeout: 30_000 }, async (offsetMs) => {
  const { client, delayed, name, lock } = await acquiredThroughDelayedGrant("skew-grant");
  expect(delayed.held).toBe(true);
  expect(await lock.release()).toBe(true);
  // Another client, its wall clock behind ours, holds and releases the lock.
  const other = newLockClient({ ownerId: `skew-grant-other-${offsetMs}`, leaseMs: 5000 });
  clockBehind(other.dynamodb, offsetMs);
  const theirs = await other.client.acquire(name);
  expect(theirs.fencingToken).toBe(lock.fencingToken + 1);
  expect(await theirs.release()).toBe(true);
  delayed.deliver();
  await until(() => delayed.late !== undefined);
  expect(delayed.late).toEqual({ error: "ConditionalCheckFailedException" });
  expect(await client.inspect(name)).toMatchObject({ holder: undefined, fencingToken: theirs.fencingToken });
});
