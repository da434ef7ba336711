/**
 * Review (adversarial): the lock service (Lambda mode) detaches a grant for its caller.
 * A lock handed over and taken up lazily (no write yet) is detached with the handover's
 * short lease (Lock.detach returns firstLeaseMs), and LambdaLockBackend's Lock uses that
 * as `leaseMs` for every heartbeat: the remote caller's lease is silently shortened from
 * what it asked for to at most its place's lease, for the whole hold.
 * Fixed: the service takes such a grant up with one heartbeat asking the caller's lease first.
 */
import { expect, it } from "vitest";
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
