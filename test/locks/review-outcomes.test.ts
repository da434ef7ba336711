/**
 * Review (adversarial): outcome reporting of a handing release whose answer was lost.
 * lease.ts claims: "the item proves it landed, by its attempt id while the handover is
 * pending, and after that by `lastRelease = <t>:<owner>`". `lastRelease` holds only the
 * LAST release: once the grantee releases in turn (handovers are fast), the proof is gone.
 * Fixed: the release then rejects with OutcomeUnknownError (it may have landed), never
 * resolves false (lease.ts #settleRelease).
 */
import { expect, it } from "vitest";
import { OutcomeUnknownError } from "../../lib/errors.js";
import { newLockClient, leaseStore, uniqueName, until } from "../support/locks.js";

const quick = { waiterLeaseMs: 1000, maxPollMs: 250 };
const item = (name: string) => leaseStore().read(`lock#${name}`);
const isHandingRelease = (input: Record<string, unknown>) => /lastRelease.*grantee = :grantee/.test(String(input["UpdateExpression"] ?? ""));

it("reports a handing release whose answer was lost as of unknown outcome, never as not released, once the grantee released in turn", async () => {
  const name = uniqueName();
  const { client, dynamodb } = newLockClient();
  const lock = await client.acquire(name);
  const waiter = newLockClient(quick).client;
  const waiting = waiter.acquire(name, { waitMs: 20_000 });
  await until(async () => (await item(name))?.queue.length === 1);
  await client.inspect(name); // plan the handover from the queue
  let lost = 0;
  let nextReleased!: () => void;
  const grantee = waiting.then(async (next) => {
    await next.release(); // the grantee holds briefly and releases: lastRelease = <t+1>:<grantee>
    nextReleased();
    return next;
  });
  const released = new Promise<void>((r) => (nextReleased = r));
  (dynamodb.middlewareStack as unknown as { add(m: unknown, o: object): void }).add(
    (next: (a: unknown) => Promise<unknown>) => async (args: unknown) => {
      const input = (args as { input?: Record<string, unknown> }).input ?? {};
      if (!isHandingRelease(input) || lost > 0) return next(args);
      lost++;
      await next(args); // applied: handed over
      await released; // by the time the answer would have come, the grantee has released
      throw Object.assign(new Error("scripted fault: response lost"), { name: "TimeoutError", $metadata: {} });
    },
    { step: "finalizeRequest", priority: "low", name: "lose-release-answer" },
  );
  const outcome = await lock.release().then(
    (released) => released,
    (err: unknown) => err,
  );
  const next = await grantee;
  expect(lost).toBe(1);
  expect(next.fencingToken).toBe(lock.fencingToken + 1);
  // The release DID land (it handed the lock over), and the item no longer proves it (the
  // grantee's release overwrote lastRelease): reporting false would say "another holder had
  // taken it over". The outcome is reported as unknown, with the typed error.
  expect(outcome).toBeInstanceOf(OutcomeUnknownError);
  expect(lock.held).toBe(false);
  expect(await lock.release()).toBe(false); // settled: not sent again
});
