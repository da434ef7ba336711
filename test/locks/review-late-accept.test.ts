/**
 * Review (adversarial): a late accept of the SAME waiter id lands on a LATER handover to it.
 * The lease.ts header: "A late accept of a waiter that gave up can land only while the
 * handover is still pending". The accept is conditioned on `grantee = waiter AND
 * handoffVersion = version AND holder = me`: nothing ties it to the handover it was sent
 * for. A waiter that lost one handover (taken over), queued again and was handed the lock
 * again, takes the second one lazily (no write); its old accept, delivered late, then lands
 * on the second handover: the item's version becomes that accept's id, the waiter's Lock
 * (version = the handover's) is refused at its first heartbeat and lost, and the lock stays
 * held by nobody for the waiter's full lease.
 * Fixed: an accept names the handover it was sent for (`handoffVersion = :seen`, lease.ts).
 */
import { expect, it } from "vitest";
import { injectFaults } from "../../lib/check/middleware.js";
import { ghost } from "../support/intercept.js";
import { leaseStore, newLockClient, uniqueName, until, wait } from "../support/locks.js";

const quick = { waiterLeaseMs: 1000, maxPollMs: 250 };
const item = (name: string) => leaseStore().read(`lock#${name}`);
const isAccept = (input: Record<string, unknown>) => /REMOVE grantee, handoffVersion, releasedBy, releasedAt/.test(String(input["UpdateExpression"] ?? ""));

it("does not let an old accept of a waiter land on a later handover to the same waiter", async () => {
  const name = uniqueName();
  const holder = newLockClient().client;
  await (await holder.acquire(name)).release();
  const lock = await holder.acquire(name);
  const w = newLockClient(quick);
  let blind = false;
  injectFaults(w.dynamodb, (r) => (blind && !isAccept(r.input) ? { kind: "lose-request" } : undefined));
  // Its first accept is delayed in the network; its retries (and later accepts) are lost outright.
  const late = ghost(w.dynamodb, (_c, input) => isAccept(input), 1_000_000);
  // w's heartbeats travel slowly until the late accept has arrived (a slow network; fixes the order).
  let delivered!: () => void;
  const acceptArrived = new Promise<void>((r) => (delivered = r));
  (w.dynamodb.middlewareStack as unknown as { add(m: unknown, o: object): void }).add(
    (next: (a: unknown) => Promise<unknown>) => async (args: unknown) => {
      const input = (args as { input?: Record<string, unknown> }).input ?? {};
      if (/renewedAt = :now REMOVE grantee, handoffVersion$/.test(String(input["UpdateExpression"] ?? ""))) await acceptArrived;
      return next(args);
    },
    { step: "finalizeRequest", priority: "low", name: "slow-heartbeat" },
  );
  const wWaiting = w.client.acquire(name, { waitMs: 30_000 });
  await until(async () => (await item(name))?.queue.length === 1);
  const w3 = newLockClient(quick).client;
  const w3Waiting = w3.acquire(name, { waitMs: 30_000, leaseMs: 3000 });
  await until(async () => (await item(name))?.queue.length === 2);
  blind = true;
  await holder.inspect(name);
  await lock.release(); // handover 1 to w (1 s handover lease)
  const first = await item(name);
  expect(first?.holder).toBe(w.client.ownerId);
  await wait(700);
  blind = false; // w sees handover 1 too late to hold it lazily: it sends an accept (delayed)
  await late.lost;
  const lock3 = await w3Waiting; // w3 takes handover 1 over after its lease
  expect(lock3.fencingToken).toBe(lock.fencingToken + 2);
  await until(async () => (await item(name))?.queue.length === 1); // w queued again
  await w3.inspect(name);
  await lock3.release(); // handover 2 to w
  await until(async () => {
    const r = await item(name);
    return r?.holder === w.client.ownerId && r.grantee !== undefined;
  });
  const wLock = await wWaiting; // taken lazily: handover 2 is read, not written
  expect(wLock.held).toBe(true);
  // The accept sent for handover 1 arrives now: conditioned on handover 1 (lease.ts), it is refused.
  await expect(late.deliver()).rejects.toThrow(/conditional request failed/i);
  delivered();
  const after = await item(name);
  expect(wLock.fencingToken).toBe(lock.fencingToken + 3);
  await until(() => wLock.remainingMs() > 1000, 10_000); // w's first heartbeat extended it to its own lease
  // w holds the lock it was handed. (Before the fix the late accept landed on the second
  // handover (version = its id), w's heartbeat from the handover's version was refused, and
  // w's Lock was lost while the item stayed held by w's owner for a full lease.)
  expect({ held: wLock.held, reason: String(wLock.signal.reason ?? "") }).toEqual({ held: true, reason: "" });
});
