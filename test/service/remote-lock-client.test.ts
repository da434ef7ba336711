/**
 * LockClient in remote mode (over the lock Lambda on the local Invoke API) keeps the
 * direct mode's semantics: exclusive grants with increasing tokens, heartbeats that keep
 * a lease past its length, owner-only release, typed errors across the boundary,
 * elections, and mutual exclusion with direct-mode clients on the same lock.
 */
import { describe, expect, it } from "vitest";
import { Election, FencepostError, InvalidArgumentError, LockClient, LockTimeoutError, NotLockOwnerError } from "../../lib/index.js";
import { lambdaClient, lockFunction } from "../support/cloud.js";
import { newLockClient, uniqueName, wait } from "../support/locks.js";

const remote = (ownerId?: string, leaseMs = 1000) => new LockClient({ functionName: lockFunction(), lambda: lambdaClient(), leaseMs, ownerId });

describe("LockClient in remote mode", () => {
  it("grants exclusively, hands over on release, and tokens increase", async () => {
    const name = uniqueName("remote");
    const a = remote("alice");
    const b = remote("bob");
    const first = await a.acquire(name);
    expect(await b.tryAcquire(name)).toBeUndefined();
    const waiting = b.acquire(name, { waitMs: 5000 });
    await wait(100);
    expect(await first.release()).toBe(true);
    const second = await waiting;
    expect(second.fencingToken).toBeGreaterThan(first.fencingToken);
    expect((await a.inspect(name))?.holder).toBe("bob");
    await second.release();
  });

  it("keeps a lease alive with heartbeats for several lease lengths", async () => {
    const name = uniqueName("remote");
    const lock = await remote("alice", 600).acquire(name);
    await wait(2000);
    expect(lock.held).toBe(true);
    expect(await remote("bob", 600).tryAcquire(name)).toBeUndefined();
    await lock.release();
    expect(lock.held).toBe(false);
  });

  it("turns the function's errors back into the same classes", async () => {
    const name = uniqueName("remote");
    const held = await remote("alice", 10_000).acquire(name);
    const timeout = await remote("bob").acquire(name, { waitMs: 300 }).catch((e: unknown) => e);
    expect(timeout).toBeInstanceOf(LockTimeoutError);
    const notOwner = await remote("bob").release(name, held.fencingToken).catch((e: unknown) => e);
    expect(notOwner).toBeInstanceOf(NotLockOwnerError);
    const invalid = (await remote("bob")
      .acquire("x".repeat(600))
      .catch((e: unknown) => e)) as InvalidArgumentError;
    expect(invalid).toBeInstanceOf(InvalidArgumentError);
    expect(invalid.field).toBe("name");
    await expect(remote().sweep()).rejects.toBeInstanceOf(FencepostError);
    await held.release();
  });

  it("excludes direct-mode clients on the same lock, and the other way round", async () => {
    const name = uniqueName("mixed");
    const direct = newLockClient({ ownerId: "direct", leaseMs: 1000 }).client;
    const r = await remote("remote").acquire(name);
    expect(await direct.tryAcquire(name)).toBeUndefined();
    await r.release();
    const d = await direct.acquire(name);
    expect(await remote("remote").tryAcquire(name)).toBeUndefined();
    expect(d.fencingToken).toBeGreaterThan(r.fencingToken);
    await d.release();
  });

  it("elects one leader at a time; terms increase; leader() reports it", async () => {
    const name = uniqueName("remote-election");
    const a = remote("alice");
    const b = remote("bob");
    const first = await new Election(a, name).campaign({ value: "10.0.0.1" });
    expect(await new Election(b, name).leader()).toMatchObject({ holder: "alice", term: first.term, value: "10.0.0.1" });
    const campaign = new Election(b, name).campaign({ waitMs: 5000 });
    await first.resign();
    const second = await campaign;
    expect(second.term).toBeGreaterThan(first.term);
    await second.resign();
  });
});
