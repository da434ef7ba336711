/**
 * Review (adversarial): liveness/fairness of the handover for a head waiter that presumed
 * a slow holder gone (pace.ts "expiry": it stops looking until the holder's lease ends,
 * waking only to renew its place). The handover's lease is min(place lease, max(1 s,
 * asked lease)); a waiter asking a short lease with a longer place lease is handed the lock
 * for less time than it sleeps, so the next waiter takes the handover over, and the live
 * head waiter loses its turn (its place went with the handover) and queues again at the tail.
 * Fixed: a waiter never sleeps past its own handover lease less a slack (pace.ts handoffMs).
 */
import { expect, it } from "vitest";
import { injectFaults } from "../../lib/check/middleware.js";
import { leaseStore, newLockClient, uniqueName, until, wait } from "../support/locks.js";

const item = (name: string) => leaseStore().read(`lock#${name}`);

it("lets a live head waiter take up the lock handed to it after the holder was slow for a moment", async () => {
  const name = uniqueName();
  const holder = newLockClient({ leaseMs: 10_000 });
  let silent = false;
  injectFaults(holder.dynamodb, (r) => (silent && r.commandName === "UpdateItemCommand" && /renewedAt = :now REMOVE grantee/.test(String(r.input["UpdateExpression"])) ? { kind: "lose-request" } : undefined));
  await (await holder.client.acquire(name)).release(); // an item with a pace hint
  const lock = await holder.client.acquire(name);
  // The head waiter asks a 1 s lease; its place lease is 20 s (allowed: 1 s .. 60 s).
  const head = newLockClient({ waiterLeaseMs: 20_000, maxPollMs: 250 }).client;
  const headWaiting = head.acquire(name, { leaseMs: 1000, waitMs: 40_000 });
  await until(async () => (await item(name))?.queue.length === 1);
  const next = newLockClient({ waiterLeaseMs: 1000, maxPollMs: 250 }).client;
  const nextWaiting = next.acquire(name, { leaseMs: 1000, waitMs: 40_000 });
  await until(async () => (await item(name))?.queue.length === 2);
  // The holder misses heartbeats for a while (GC, throttling): its 10 s lease is intact.
  silent = true;
  await wait(6000);
  silent = false;
  expect(lock.held).toBe(true);
  const handed = await (async () => { await holder.client.inspect(name); await lock.release(); return item(name); })();
  expect(handed?.holder).toBe(head.ownerId); // handed to the live head waiter, 1 s handover lease
  const order: string[] = [];
  void headWaiting.then((l) => { order.push(`head@${l.fencingToken}`); void l.release(); });
  void nextWaiting.then((l) => { order.push(`next@${l.fencingToken}`); void l.release(); });
  await until(() => order.length === 2, 30_000);
  // The head waiter takes the handover (token + 1). (Before the fix the next waiter took it
  // over after the 1 s handover lease, and the head was served after it.)
  expect(order[0]).toBe(`head@${lock.fencingToken + 1}`);
}, 60_000);
