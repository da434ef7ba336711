/**
 * Locks with fencing tokens, against DynamoDB Local: request counts, mutual exclusion,
 * fencing of a paused holder, lost responses, owner-only release, token monotonicity.
 */
import { describe, expect, it } from "vitest";
import { injectedFailure, injectFaults } from "../../lib/check/middleware.js";
import { TOKEN_FLOOR_KEY } from "../../lib/locks/lease.js";
import { FencedStore, LockLostError, LockTimeoutError, NotLockOwnerError, StaleTokenError, InvalidArgumentError } from "../../lib/index.js";
import { dynamoDbClient, lockTable } from "../support/cloud.js";
import { leaseStore, newLockClient, uniqueName, wait } from "../support/locks.js";

describe("LockClient", () => {
  it("grants a free lock in one request and releases it in one, with tokens increasing", async () => {
    const { client, requests } = newLockClient();
    const name = uniqueName();
    const first = await client.acquire(name);
    await first.release();
    requests.reset();
    const second = await client.acquire(name);
    expect(requests.total).toBe(1);
    await second.release();
    expect(requests.total).toBe(2);
    expect(second.fencingToken).toBeGreaterThan(first.fencingToken);
    expect(await client.inspect(name)).toMatchObject({ holder: undefined, released: true, fencingToken: second.fencingToken });
  });

  it("aborts signal on release and rejects a release by anyone but the holder", async () => {
    const a = newLockClient({ ownerId: "owner-a" }).client;
    const b = newLockClient({ ownerId: "owner-b" }).client;
    const name = uniqueName();
    const lock = await a.acquire(name);
    await expect(b.release(name, lock.fencingToken)).rejects.toBeInstanceOf(NotLockOwnerError);
    expect((await a.inspect(name))?.holder).toBe("owner-a");
    await lock.release();
    await lock.release(); // idempotent
    await a.release(name, lock.fencingToken); // the owner again: idempotent
    expect(lock.signal.aborted).toBe(true);
    expect(lock.held).toBe(false);
  });

  it("tryAcquire answers undefined while another client holds the lock", async () => {
    const a = newLockClient().client;
    const b = newLockClient().client;
    const name = uniqueName();
    const lock = await a.acquire(name);
    expect(await b.tryAcquire(name)).toBeUndefined();
    await lock.release();
    const taken = await b.tryAcquire(name);
    expect(taken?.fencingToken).toBe(lock.fencingToken + 1);
    await taken?.release();
  });

  it("times out with LockTimeoutError naming the holder", async () => {
    const a = newLockClient({ ownerId: "holder-x" }).client;
    const b = newLockClient().client;
    const name = uniqueName();
    const lock = await a.acquire(name);
    const err = await b.acquire(name, { waitMs: 150 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LockTimeoutError);
    expect((err as Error).message).toContain("holder-x");
    expect((await a.inspect(name))?.waiters).toBe(0); // the waiter left the queue
    await lock.release();
  });

  it("never lets two clients believe they hold the lock at once", async () => {
    const clients = Array.from({ length: 4 }, () => newLockClient({ leaseMs: 2000 }).client);
    const name = uniqueName();
    let holders = 0;
    let maxHolders = 0;
    let grants = 0;
    await Promise.all(
      clients.map(async (client) => {
        for (let i = 0; i < 8; i++) {
          const lock = await client.acquire(name, { waitMs: 20_000 });
          holders++;
          grants++;
          maxHolders = Math.max(maxHolders, holders);
          await wait(2);
          holders--;
          await lock.release();
        }
      }),
    );
    expect(grants).toBe(32);
    expect(maxHolders).toBe(1);
  });

  it("serves waiters in arrival order: a releasing holder queues behind those already waiting", async () => {
    const workers = Array.from({ length: 3 }, (_, i) => newLockClient({ ownerId: `fair-${i}`, leaseMs: 5000 }).client);
    const name = uniqueName();
    const order: number[] = [];
    await Promise.all(
      workers.map(async (client, w) => {
        for (let i = 0; i < 6; i++) {
          const lock = await client.acquire(name, { waitMs: 20_000 });
          order.push(w);
          await wait(10);
          await lock.release();
        }
      }),
    );
    // Without the queue, the releasing worker usually wins again at once (see BENCHMARKS.md).
    let longestRun = 1;
    for (let i = 1, run = 1; i < order.length; i++) longestRun = Math.max(longestRun, (run = order[i] === order[i - 1] ? run + 1 : 1));
    expect(longestRun).toBeLessThanOrEqual(2);
  });

  it("learns of a release promptly, not after a lease", async () => {
    const a = newLockClient({ leaseMs: 10_000 }).client;
    const b = newLockClient({ leaseMs: 10_000 }).client;
    const name = uniqueName();
    const lock = await a.acquire(name);
    const waiting = b.acquire(name);
    await wait(300);
    const releasedAt = performance.now();
    await lock.release();
    const next = await waiting;
    const noticedAfter = performance.now() - releasedAt;
    expect(noticedAfter).toBeLessThan(1000); // a tenth of the lease; typically tens of ms
    await next.release();
  });

  it("rejects input that can never work, naming the field", async () => {
    const { client } = newLockClient();
    await expect(client.acquire("")).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(client.acquire("x", { leaseMs: -1 })).rejects.toThrow(/leaseMs/);
    expect(() => newLockClient({ tableName: "" })).toThrow(/tableName/);
  });
});

describe("takeover and fencing", () => {
  it("a holder paused past its lease loses the lock (signal first) and its late fenced write is rejected", async () => {
    const holderDb = dynamoDbClient();
    let paused = false;
    // While "paused", the holder's heartbeats never reach DynamoDB (a stopped process sends nothing).
    injectFaults(holderDb, () => (paused ? { kind: "lose-request" } : undefined));
    const holder = newLockClient({ dynamodb: holderDb, leaseMs: 600, ownerId: "paused" }).client;
    const rival = newLockClient({ leaseMs: 600, ownerId: "rival" });
    const store = new FencedStore<string>({ tableName: lockTable(), dynamodb: dynamoDbClient() });
    const name = uniqueName();
    const key = uniqueName("fenced");

    const old = await holder.acquire(name);
    await store.put(key, "written by the first holder", old.fencingToken);
    let abortedAt = Number.POSITIVE_INFINITY;
    old.signal.addEventListener("abort", () => (abortedAt = performance.now()));
    paused = true;

    const takeoverStarted = performance.now();
    const rivalRequestsBefore = rival.requests.total;
    const fresh = await rival.client.acquire(name, { waitMs: 5000 });
    const grantedAt = performance.now();
    expect(fresh.fencingToken).toBeGreaterThan(old.fencingToken);
    expect(abortedAt).toBeLessThan(grantedAt);
    expect(old.signal.reason).toBeInstanceOf(LockLostError);
    expect(grantedAt - takeoverStarted).toBeGreaterThanOrEqual(600); // never before a full lease
    expect(rival.requests.total - rivalRequestsBefore).toBeLessThan(40);

    await store.put(key, "written by the new holder", fresh.fencingToken);
    paused = false;
    const late = await store.put(key, "late write from the paused holder", old.fencingToken).catch((e: unknown) => e);
    expect(late).toBeInstanceOf(StaleTokenError);
    expect(late).toMatchObject({ fencingToken: old.fencingToken, currentToken: fresh.fencingToken });
    expect(await store.get(key)).toEqual({ value: "written by the new holder", fencingToken: fresh.fencingToken });
    await fresh.release();
  });

  it("keeps the lock across many leases while heartbeats succeed", async () => {
    // Leases of 1 s: short enough for several to pass, long enough that a loaded 2-core
    // machine's event-loop stalls do not end one before its heartbeat.
    const { client } = newLockClient({ leaseMs: 1000 });
    const rival = newLockClient({ leaseMs: 1000 }).client;
    const name = uniqueName();
    const lock = await client.acquire(name);
    await expect(rival.acquire(name, { waitMs: 3500 })).rejects.toBeInstanceOf(LockTimeoutError);
    expect(lock.held).toBe(true);
    await lock.release();
  });

  it("withLock rejects with LockLostError when the lock was lost while the function ran", async () => {
    const db = dynamoDbClient();
    let cut = false;
    injectFaults(db, () => (cut ? { kind: "lose-request" } : undefined));
    const { client } = newLockClient({ dynamodb: db, leaseMs: 300 });
    const err = await client
      .withLock(uniqueName(), async (lock) => {
        cut = true;
        await new Promise((resolve) => lock.signal.addEventListener("abort", resolve));
        cut = false;
        return "done";
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LockLostError);
  });
});

describe("lost responses", () => {
  it("a lost acquire response leaves the client holding the lock and knowing it, never an orphan", async () => {
    for (const maxAttempts of [1, 3]) {
      const db = dynamoDbClient({ maxAttempts });
      let lost = 0;
      injectFaults(db, (req) => (req.commandName === "UpdateItemCommand" && lost++ === 0 ? { kind: "lose-response" } : undefined));
      const { client } = newLockClient({ dynamodb: db, ownerId: `lost-acquire-${maxAttempts}` });
      const name = uniqueName();
      await client.acquire(name).then((l) => l.release()); // create the item
      lost = 0;
      const lock = await client.acquire(name, { waitMs: 3000 });
      expect(lost).toBeGreaterThan(0);
      const state = await client.inspect(name);
      expect(state?.holder).toBe(`lost-acquire-${maxAttempts}`);
      expect(state?.fencingToken).toBe(lock.fencingToken);
      await lock.release();
    }
  });

  it("a lost heartbeat response does not lose the lock", async () => {
    const db = dynamoDbClient();
    let heartbeatsLost = 0;
    injectFaults(db, (req) => {
      const isHeartbeat = req.commandName === "UpdateItemCommand" && String(req.input["UpdateExpression"]).startsWith("SET #version = :next");
      if (isHeartbeat && heartbeatsLost < 3) {
        heartbeatsLost++;
        return { kind: "lose-response" };
      }
      return undefined;
    });
    const { client } = newLockClient({ dynamodb: db, leaseMs: 400 });
    const rival = newLockClient({ leaseMs: 400 }).client;
    const name = uniqueName();
    const lock = await client.acquire(name);
    await expect(rival.acquire(name, { waitMs: 1500 })).rejects.toBeInstanceOf(LockTimeoutError);
    expect(heartbeatsLost).toBe(3);
    expect(lock.held).toBe(true);
    await lock.release();
  });

  it("a heartbeat whose outcome could not even be read back is recognised when it turns out to have landed", async () => {
    const db = dynamoDbClient({ maxAttempts: 1 });
    let phase: "normal" | "lose-heartbeat" | "lose-read" = "normal";
    injectFaults(db, (req) => {
      const isHeartbeat = req.commandName === "UpdateItemCommand" && String(req.input["UpdateExpression"]).startsWith("SET #version = :next");
      if (phase === "lose-heartbeat" && isHeartbeat) {
        phase = "lose-read";
        return { kind: "lose-response" };
      }
      if (phase === "lose-read" && req.commandName === "GetItemCommand") {
        phase = "normal";
        return { kind: "lose-request" };
      }
      return undefined;
    });
    const { client } = newLockClient({ dynamodb: db, leaseMs: 1500 });
    const name = uniqueName();
    const lock = await client.acquire(name);
    phase = "lose-heartbeat";
    await wait(3500); // more than two leases: the lock would be lost by now had the landed heartbeat not been recognised
    expect(phase).toBe("normal");
    expect(lock.held).toBe(true);
    expect(lock.signal.aborted).toBe(false);
    await lock.release();
  });

  it("a lost release response still releases, once", async () => {
    const db = dynamoDbClient();
    let lost = false;
    injectFaults(db, (req) => (!lost && String(req.input["UpdateExpression"]).includes("REMOVE holder") ? ((lost = true), { kind: "lose-response" }) : undefined));
    const { client } = newLockClient({ dynamodb: db });
    const name = uniqueName();
    const lock = await client.acquire(name);
    await lock.release();
    expect(lost).toBe(true);
    expect((await client.inspect(name))?.released).toBe(true);
  });
});

describe("fencing tokens never regress", () => {
  it("increase across release, takeover and cleanup of idle items", async () => {
    const { client } = newLockClient({ leaseMs: 300 });
    const name = uniqueName();
    const tokens: number[] = [];
    const a = await client.acquire(name);
    tokens.push(a.fencingToken);
    await a.release();
    const b = await client.acquire(name);
    tokens.push(b.fencingToken);
    await b.release();

    // Takeover of a crashed holder.
    const crashedDb = dynamoDbClient();
    let crashed = false;
    injectFaults(crashedDb, () => (crashed ? { kind: "lose-request" } : undefined));
    const crashedClient = newLockClient({ dynamodb: crashedDb, leaseMs: 300 }).client;
    const c = await crashedClient.acquire(name);
    tokens.push(c.fencingToken);
    crashed = true;
    const d = await client.acquire(name, { waitMs: 3000 });
    tokens.push(d.fencingToken);
    await d.release();

    // Cleanup deletes the idle item; the next grant still continues above.
    expect(await client.sweep({ idleMs: 0 })).toBeGreaterThan(0);
    expect(await client.inspect(name)).toBeUndefined();
    const e = await client.acquire(name);
    tokens.push(e.fencingToken);
    await e.release();
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]).toBeGreaterThan(tokens[i - 1]!);
  });
  it("moves the floor past a first grant's transaction in progress on it, and cleanup still deletes the idle item", async () => {
    const name = uniqueName();
    const { client, dynamodb } = newLockClient();
    await (await client.acquire(name)).release();
    // The first two writes to the floor item meet a transaction in progress (nothing applied).
    let conflicts = 0;
    dynamodb.middlewareStack.add(
      (next) => async (args) => {
        const input = args.input as { Key?: { pk?: { S?: string } } };
        if (input.Key?.pk?.S === TOKEN_FLOOR_KEY && conflicts < 2) {
          conflicts++;
          throw injectedFailure("TransactionConflictException", "injected fault: a transaction is in progress on the floor item", 400);
        }
        return next(args);
      },
      { step: "finalizeRequest", priority: "low", name: "floor-conflict" },
    );
    const floorBefore = await leaseStore().tokenFloor();
    expect(await client.sweep({ idleMs: 0 })).toBeGreaterThan(0);
    expect(conflicts).toBe(2);
    expect(await client.inspect(name)).toBeUndefined();
    expect(await leaseStore().tokenFloor()).toBeGreaterThan(floorBefore);
  });
});

describe("inside Lambda", () => {
  it("bounds the lease by the remaining invocation time and leaves no timer running", async () => {
    const { client } = newLockClient({ leaseMs: 60_000 });
    const name = uniqueName();
    const context = { getRemainingTimeInMillis: () => 2_000 };
    const result = await client.withLock(name, async (lock) => {
      expect(lock.remainingMs()).toBeLessThanOrEqual(1_500);
      return (await client.inspect(name))?.leaseMs;
    }, { context });
    expect(result).toBeLessThanOrEqual(1_500);
    await expect(client.acquire(name, { context: { getRemainingTimeInMillis: () => 100 } })).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});
