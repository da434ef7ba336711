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
import { injectedFailure } from "../../lib/check/middleware.js";
import { newLockClient, uniqueName } from "../support/locks.js";

const isGrant = (input: Record<string, unknown>) => /holder = :me/.test(String(input["UpdateExpression"] ?? ""));

/** Waits until `check` holds (polling), or fails after `ms`. */
async function until(check: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

it.each([
  { case: "after its own release", others: 0 },
  { case: "after others held and released the lock too", others: 2 },
])("does not grant a released lock again when its grant request arrives late ($case)", { timeout: 30_000 }, async ({ others }) => {
  const { client, dynamodb } = newLockClient({ ownerId: "late-grant-owner", leaseMs: 5000 });
  let letGo!: () => void;
  const released = new Promise<void>((r) => (letGo = r));
  let armed = false;
  let held = false;
  let lateAnswer: { token?: string; error?: string } | undefined;
  dynamodb.middlewareStack.add(
    (next) => async (args) => {
      const input = args.input as unknown as Record<string, unknown>;
      if (!armed || held || !isGrant(input)) return next(args);
      // The first attempt of the first grant: delayed in the network until the test lets it
      // go; the SDK hears a timeout at once and sends the same request (same attempt id) again.
      held = true;
      void released
        .then(() => next(args))
        .then(
          (out) => (lateAnswer = { token: (out.output as { Attributes?: { token?: { N?: string } } }).Attributes?.token?.N }),
          (err: unknown) => (lateAnswer = { error: (err as Error).name }),
        );
      throw injectedFailure("TimeoutError", "injected fault: request delayed in the network; it reaches the service later");
    },
    { step: "finalizeRequest", priority: "low", name: "late-grant" },
  );
  // The blind grant is the UpdateItem a client sends first for a name it has no recent
  // read of, once most names it met already existed (new names go to the creating
  // transaction, whose late copy finds the item there): teach it so with three such names.
  const maker = newLockClient({ ownerId: "late-grant-maker" }).client;
  for (let i = 0; i < 3; i++) {
    const existing = uniqueName("late-grant-existing");
    await (await maker.acquire(existing)).release();
    const mine = await client.tryAcquire(existing);
    expect(mine).toBeDefined();
    await mine!.release();
  }
  const name = uniqueName("late-grant");
  await (await maker.acquire(name)).release();
  armed = true;
  const lock = await client.acquire(name);
  expect(held).toBe(true);
  expect(await lock.release()).toBe(true);
  let last = lock.fencingToken;
  for (let i = 0; i < others; i++) {
    const other = newLockClient({ ownerId: `late-grant-other-${i}`, leaseMs: 5000 }).client;
    const theirs = await other.acquire(name);
    expect(theirs.fencingToken).toBeGreaterThan(last);
    last = theirs.fencingToken;
    expect(await theirs.release()).toBe(true);
  }
  letGo();
  await until(() => lateAnswer !== undefined);
  // The late copy must find its grant already made and released: no second grant, no orphan.
  expect(lateAnswer).toEqual({ error: "ConditionalCheckFailedException" });
  expect(await client.inspect(name)).toMatchObject({ holder: undefined, fencingToken: last });
});
