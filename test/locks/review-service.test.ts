/**
 * Review (adversarial): the lock service (Lambda mode) detaches a grant for its caller.
 * A lock handed over and taken up lazily (no write yet) is detached with the handover's
 * short lease (Lock.detach returns firstLeaseMs), and LambdaLockBackend's Lock uses that
 * as `leaseMs` for every heartbeat: the remote caller's lease is silently shortened from
 * what it asked for to at most its place's lease, for the whole hold.
 * Fixed: the service takes such a grant up with one heartbeat asking the caller's lease first.
 *
 * Second review: that heartbeat was not bounded by the invocation's time (a slow DynamoDB
 * could time the invocation out after it landed, stranding the lease asked for), and a
 * caller told the old version while the heartbeat landed late lost its lock at its first
 * heartbeat. Fixed: the service answers within the invocation's time less half the
 * response reserve, naming the heartbeat's version as `unsettledVersion`, which the
 * caller's Lock recognises as its own.
 */
import { expect, it } from "vitest";
import { systemClock } from "../../lib/locks/clock.js";
import { DynamoDbLockBackend } from "../../lib/locks/dynamodb-backend.js";
import { Lock } from "../../lib/locks/lock.js";
import { LockService } from "../../lib/service/lock-service.js";
import { dynamoDbClient, lockTable } from "../support/cloud.js";
import { leaseStore, newLockClient, uniqueName, until } from "../support/locks.js";

const item = (name: string) => leaseStore().read(`lock#${name}`);

it("grants a remote caller the lease it asked for when the lock is handed to it", async () => {
  const name = uniqueName();
  const holder = newLockClient().client;
  await (await holder.acquire(name)).release();
  const lock = await holder.acquire(name);
  const service = new LockService({ tableName: lockTable(), dynamodb: dynamoDbClient() });
  const granted = service.handle({ action: "acquire", name, owner: "remote-caller", leaseMs: 30_000, waitMs: 20_000 } as never);
  await until(async () => (await item(name))?.queue.length === 1);
  await holder.inspect(name);
  await lock.release();
  const grant = (await granted) as unknown as { fencingToken: number; leaseMs: number; version: string };
  expect(grant.fencingToken).toBe(lock.fencingToken + 1);
  // (Before the fix leaseMs was the handover's, at most the place lease, 5 s by default.)
  expect(grant.leaseMs).toBe(30_000);
  // The item says so too: taken up, with the lease asked for, at the version the caller got.
  const after = await item(name);
  expect({ version: after?.version, leaseMs: after?.leaseMs, pending: after?.grantee !== undefined }).toEqual({ version: grant.version, leaseMs: 30_000, pending: false });
});

it("answers within the invocation when taking a handed-over lock up hangs, and the caller's lock carries on if that write landed", { timeout: 30_000 }, async () => {
  const name = uniqueName();
  const holder = newLockClient().client;
  await (await holder.acquire(name)).release();
  const lock = await holder.acquire(name);
  // The service's take-up heartbeat gets no answer until the test lets it through (then it lands).
  const dynamodb = dynamoDbClient();
  let letThrough!: () => void;
  const through = new Promise<void>((r) => (letThrough = r));
  let hung = false;
  dynamodb.middlewareStack.add(
    (next) => async (args) => {
      if (/renewedAt = :now REMOVE grantee, handoffVersion$/.test(String((args.input as { UpdateExpression?: string }).UpdateExpression ?? ""))) {
        hung = true;
        await through;
      }
      return next(args);
    },
    { step: "finalizeRequest", priority: "low", name: "hung-take-up" },
  );
  const endsAt = Date.now() + 15_000;
  const context = { getRemainingTimeInMillis: () => endsAt - Date.now() };
  const service = new LockService({ tableName: lockTable(), dynamodb });
  const sentAt = systemClock.now();
  const granted = service.handle({ action: "acquire", name, owner: "remote-caller", leaseMs: 30_000, waitMs: 10_000 }, context);
  await until(async () => (await item(name))?.queue.length === 1);
  await holder.inspect(name);
  await lock.release();
  await until(() => hung);
  const grant = await granted;
  // Answered while the grant's own (handover) lease still has time left for the caller to use.
  expect(systemClock.now()).toBeLessThan(sentAt + grant.leaseMs - 100);
  expect(grant.fencingToken).toBe(lock.fencingToken + 1);
  expect(grant.unsettledVersion).toBeDefined();
  expect(grant.leaseMs).toBeLessThan(30_000); // the handover's own lease, as it stands
  letThrough();
  await until(async () => (await item(name))?.version === grant.unsettledVersion);
  // The caller's Lock: its first heartbeat, from the handover's version, is refused and finds
  // the take-up it was told of: its own, so it carries on with the lease it asked for.
  const backend = new DynamoDbLockBackend({ dynamodb: dynamoDbClient(), tableName: lockTable(), clock: systemClock, pollMs: 2 });
  const held = new Lock({ backend, clock: systemClock, kind: "lock", name, owner: "remote-caller", record: grant, sentAt, leaseMs: 30_000, firstLeaseMs: grant.leaseMs, unsettledVersion: grant.unsettledVersion, safetyMarginMs: 100 });
  await until(() => held.remainingMs() > grant.leaseMs || held.signal.aborted, 20_000);
  expect({ held: held.held, reason: String(held.signal.reason ?? "") }).toEqual({ held: true, reason: "" });
  expect(await held.release()).toBe(true);
});
