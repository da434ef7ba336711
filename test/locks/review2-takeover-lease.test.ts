/**
 * Review 2 of 7ac6455 (one attempt id per wait, its lease counted from the FIRST send).
 *
 * A waiter's first request is a blind grant (refused: the lock is held). When the holder
 * then dies, the waiter takes the lock over only after seeing `version` unchanged for the
 * holder's whole lease: at least one lease after that first send. The takeover carries the
 * same attempt id, so the lease of the Lock it returns is counted from the first send, one
 * lease or more in the past: the Lock is born expired (held = false, signal aborted, no
 * heartbeat), while the item says it is held for a full lease. Nobody uses the lock for
 * that lease (an orphan), and acquire() reported a success that is no lock at all.
 * Before 7ac6455 each write had its own id and the takeover's lease ran from its own send.
 *
 * Fixed: each grant write has its own attempt id again (its lease from its own send); the
 * wait's writes share only a wait id (`grantWait`), which refuses their late copies.
 */
import { expect, it } from "vitest";
import { injectFaults } from "../../lib/check/middleware.js";
import { leaseStore, newLockClient, uniqueName, wait } from "../support/locks.js";

it("a lock taken over from a dead holder is held when acquire returns", { timeout: 40_000 }, async () => {
  const name = uniqueName("r2-takeover");
  const holder = newLockClient({ ownerId: "r2-dead-holder", leaseMs: 2000 });
  const lock = await holder.client.acquire(name);
  // The holder's process is cut off: no heartbeat lands any more.
  injectFaults(holder.dynamodb, () => ({ kind: "lose-request" }));
  const waiter = newLockClient({ ownerId: "r2-taker", leaseMs: 2000 });
  const mine = await waiter.client.acquire(name, { waitMs: 15_000 });
  const item = await leaseStore().read(`lock#${name}`);
  expect(item).toMatchObject({ holder: "r2-taker", fencingToken: lock.fencingToken + 1 });
  // The item says r2-taker holds it for 2 s; so must the Lock.
  expect(mine.held).toBe(true);
  expect(mine.remainingMs()).toBeGreaterThan(1000);
  await wait(50);
  expect(mine.signal.aborted).toBe(false);
  await mine.release();
});

it("a lock granted free after a long wait in the queue is held when acquire returns", { timeout: 40_000 }, async () => {
  // Same cause without a crash: the lock is freed (not handed over) after the waiter waited
  // longer than its own lease, e.g. released whatever the queue holds (an earlier client's
  // waiter at the head) or a lapsed handover taken over. Here: a holder with a long lease
  // whose release frees the lock (the waiter holds no place a release hands to: it is
  // arranged by releasing through the store without a plan, as earlier clients do).
  const name = uniqueName("r2-free");
  const holder = newLockClient({ ownerId: "r2-long-holder", leaseMs: 10_000 });
  const lock = await holder.client.acquire(name);
  const waiter = newLockClient({ ownerId: "r2-short-waiter", leaseMs: 1000 });
  const waiting = waiter.client.acquire(name, { waitMs: 15_000 });
  await wait(2500); // longer than the waiter's own lease
  // An earlier client's release: frees the lock whatever the queue holds.
  expect((await leaseStore().release(`lock#${name}`, "r2-long-holder", lock.fencingToken, "r2-rel")).released).toBe(true);
  const mine = await waiting;
  expect(mine.held).toBe(true);
  expect(mine.remainingMs()).toBeGreaterThan(300);
  await mine.release();
});
