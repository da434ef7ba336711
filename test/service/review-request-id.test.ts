/**
 * Adversarial review of 30f5d73 (request ids in remote grants), each a scenario that failed
 * against it: a copy that gave up released a grant another copy had answered with; a late
 * copy granted again after the caller released; a long wait's later slice waited behind a
 * grant its earlier slice made; a direct client adopting a grant over-estimated its lease.
 */
import { afterEach, expect, it } from "vitest";
import { injectedFailure, injectFaults } from "../../lib/check/middleware.js";
import { LockClient } from "../../lib/index.js";
import { LockService } from "../../lib/service/lock-service.js";
import { dynamoDbClient, lambdaClient, lockFunction, lockTable } from "../support/cloud.js";
import { delayFirstInvoke } from "../support/invoke.js";
import { leaseStore, newLockClient, uniqueName, until, wait } from "../support/locks.js";

const item = (name: string) => leaseStore().read(`lock#${name}`);
const isGrantUpdate = (input: Record<string, unknown>) => /holder = :me/.test(String(input["UpdateExpression"] ?? ""));
const removers: (() => void)[] = [];
afterEach(() => removers.splice(0).forEach((remove) => remove()));

/**
 * Two copies of one acquire invocation (same requestId) run at once on two Lambda
 * instances. Copy B's grant lands but its answer is lost, and its read after that fails
 * too; meanwhile copy A adopts B's grant (the `<requestId>.` prefix) and answers the
 * caller. B then reaches its deadline and #abandon releases "its own" grant
 * (attempts.has(version)) -- the very grant the caller now holds.
 */
it("a copy that times out does not release a grant another copy adopted and answered with", { timeout: 60_000 }, async () => {
  const name = uniqueName("rid-abandon");
  const maker = newLockClient({ ownerId: "maker" }).client;
  await (await maker.acquire(name)).release(); // the item exists, free

  const requestId = "AAAAAAAAAAAAAAAAAAAAAA";
  const dynamodbB = dynamoDbClient({ maxAttempts: 1 });
  const serviceA = new LockService({ tableName: lockTable(), dynamodb: dynamoDbClient() });
  let answerA: Promise<unknown> | undefined;
  let stage = 0;
  dynamodbB.middlewareStack.add(
    (next) => async (args) => {
      const input = args.input as unknown as Record<string, unknown>;
      if (stage === 0 && isGrantUpdate(input)) {
        stage = 1;
        await next(args); // applied; the answer is lost
        throw injectedFailure("TimeoutError", "injected: answer lost");
      }
      if ((stage === 1 || stage === 2) && "Key" in input && !("UpdateExpression" in input)) {
        // B's two reads after the unknown outcome (stamped's, then the acquire loop's) fail;
        // meanwhile copy A runs and answers the caller.
        if (stage++ === 1) {
          answerA = serviceA.handle({ action: "acquire", name, owner: "alice", leaseMs: 30_000, waitMs: 5000, requestId });
          await answerA;
        }
        await wait(150);
        throw injectedFailure("TimeoutError", "injected: read lost");
      }
      return next(args);
    },
    { step: "finalizeRequest", priority: "low", name: "copy-b-faults" },
  );
  const serviceB = new LockService({ tableName: lockTable(), dynamodb: dynamodbB });
  const sentAt = Date.now();
  const b = serviceB.handle({ action: "acquire", name, owner: "alice", leaseMs: 30_000, waitMs: 200, requestId }).then(
    () => "granted",
    (err: Error) => err.name,
  );
  expect(await b).toBe("LockTimeoutError"); // B gave up
  const grant = (await answerA!) as { fencingToken: number; version: string };
  expect(grant.version.startsWith(`${requestId}.`)).toBe(true); // A answered with B's grant (adopted)
  // The caller heard A: it holds `grant` for 30 s from sentAt. The item must still be its.
  const now = await item(name);
  const other = await newLockClient({ ownerId: "mallory", leaseMs: 1000 }).client.tryAcquire(name);
  expect(Date.now() - sentAt).toBeLessThan(10_000);
  expect({ holder: now?.holder, otherGotIt: other !== undefined }).toEqual({ holder: "alice", otherGotIt: false });
});

/**
 * The client's first invoke is delayed in the network (the SDK hears a timeout at once and
 * resends the same payload, same requestId). The retry grants; the caller uses the lock and
 * releases it. Then the first copy reaches the function: nothing tells it its request was
 * already answered, so it grants the lock again under the caller's owner id: an orphan lease
 * (30 s here) that nobody holds, which the request id was meant to prevent.
 */
it("a late copy of an answered acquire does not leave an orphan lease", { timeout: 60_000 }, async () => {
  const name = uniqueName("rid-late");
  const lambda = lambdaClient();
  const { late, remove } = delayFirstInvoke(lambda, "acquire", name, 1500);
  removers.push(remove);
  const client = new LockClient({ functionName: lockFunction(), lambda, leaseMs: 30_000, ownerId: "alice" });
  const lock = await client.acquire(name, { waitMs: 5000 });
  expect(await lock.release()).toBe(true);
  await Promise.all(late); // the first copy ran now
  const after = await item(name);
  const other = await newLockClient({ ownerId: "checker", leaseMs: 1000 }).client.tryAcquire(name);
  expect({ holder: after?.holder, version: after?.version, otherGotIt: other !== undefined }).toMatchObject({ holder: undefined, otherGotIt: true });
});

/**
 * A wait longer than one slice. The first slice's first copy is delayed in the network (the
 * SDK's retry runs the slice); it reaches the function later and is still waiting when the
 * retry's slice times out and the client sends slice 2. The holder releases: the lock goes
 * to the delayed copy of slice 1 (head of the queue), which answers nobody. Found in review
 * of 30f5d73, when each slice had its own request id: slice 2 waited behind its own
 * owner's orphan and the caller timed out. Now every slice carries the call's one id, and
 * slice 2 adopts that grant (taking it up with a heartbeat: by the call's first send, more
 * than half its lease is gone).
 */
it("an acquire over several slices is not blocked by a grant a stale copy of its own earlier slice made", { timeout: 90_000 }, async () => {
  const name = uniqueName("rid-slices");
  const holder = newLockClient({ ownerId: "holder", leaseMs: 60_000 }).client;
  const held = await holder.acquire(name);
  const lambda = lambdaClient();
  const late: Promise<void>[] = [];
  const ids: string[] = [];
  let sends = 0;
  let first = true;
  let released: Promise<boolean> | undefined;
  removers.push(
    injectFaults(
      lambda,
      (request) => {
        if (request.commandName !== "InvokeCommand") return undefined;
        const sent = JSON.parse(new TextDecoder().decode(request.input["Payload"] as Uint8Array)) as { action?: string; name?: string; requestId?: string };
        if (sent.action !== "acquire" || sent.name !== name) return undefined;
        ids.push(sent.requestId!);
        // The late copy, the SDK's retry of slice 1, then slice 2: release once slice 2 waits.
        if (++sends === 3 && !released) released = wait(1000).then(() => held.release());
        if (!first) return undefined;
        first = false;
        return { kind: "late-delivery", delayMs: 5000 };
      },
      undefined,
      (delivery) => late.push(delivery),
    ),
  );
  const client = new LockClient({ functionName: lockFunction(), lambda, leaseMs: 30_000, ownerId: "alice" });
  const outcome = await client.acquire(name, { waitMs: 26_000 }).then(
    async (lock) => (await lock.release(), "granted"),
    (err: Error) => err.name,
  );
  await Promise.all(late);
  expect(ids.length).toBe(3);
  expect(new Set(ids).size).toBe(1); // one request id for the whole call
  expect(await released).toBe(true);
  const after = await item(name);
  expect({ outcome, holderAfter: after?.holder }).toEqual({ outcome: "granted", holderAfter: undefined });
});

/**
 * `requestId` is a public (if @internal) option of the direct LockClient. An adopted grant
 * reports this run's start as sentAt: a direct caller passing the same id again (a retry
 * after a crash, say) gets a Lock whose deadline runs a full lease from now, though the
 * item was last written a while ago; a waiter takes it over at the real lease's end while
 * the Lock still believes it holds.
 */
it("a direct LockClient given a requestId does not over-estimate an adopted lease", { timeout: 60_000 }, async () => {
  const name = uniqueName("rid-direct");
  const requestId = "BBBBBBBBBBBBBBBBBBBBBB";
  const first = await newLockClient({ ownerId: "alice", leaseMs: 3000 }).client.acquire(name, { requestId } as never);
  first.detach(); // crashed: no heartbeats
  const taking = newLockClient({ ownerId: "bob", leaseMs: 3000 }).client.acquire(name, { waitMs: 10_000 }); // bob sees the grant now
  await wait(1500);
  const again = newLockClient({ ownerId: "alice", leaseMs: 3000 });
  const second = await again.client.acquire(name, { requestId } as never); // adopts the first grant
  injectFaults(again.dynamodb, () => ({ kind: "lose-request" })); // and is then cut off (its heartbeats fail)
  const taker = await taking;
  expect(taker.fencingToken).toBeGreaterThan(second.fencingToken);
  expect({ secondStillHeld: second.held, remainingMs: second.remainingMs() }).toMatchObject({ secondStillHeld: false });
});
