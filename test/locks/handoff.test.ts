/**
 * The handover (lease.ts): a release hands the lock to the head waiter in its own write.
 * Its faults, against DynamoDB Local: the handing release's answer lost after the waiter
 * took the lock up, a dead head waiter handed the lock, a waiter giving up as it is handed
 * the lock, the same owner's acquire run twice at once, and earlier clients' places and
 * writes on the same item.
 */
import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { expect, it } from "vitest";
import { injectFaults } from "../../lib/check/middleware.js";
import { dynamoDbClient, lockTable } from "../support/cloud.js";
import { leaseStore, newLockClient, queueDeadWaiter, uniqueName, until } from "../support/locks.js";

/** Waiters with short places (1 s, the smallest): a handover to them lasts at most that. */
const quick = { waiterLeaseMs: 1000, maxPollMs: 250 };
const item = (name: string) => leaseStore().read(`lock#${name}`);
/** A release that hands the lock over. */
const isHandingRelease = (input: Record<string, unknown>) => /lastRelease.*grantee = :grantee/.test(String(input["UpdateExpression"] ?? ""));

it("hands the lock to the head waiter in the releasing write: the waiter holds token + 1 after reading it", async () => {
  const name = uniqueName();
  const holder = newLockClient();
  await (await holder.client.acquire(name)).release(); // the item's hold hint paces the waiter's looks (at most maxPollMs apart)
  const lock = await holder.client.acquire(name);
  const waiter = newLockClient(quick);
  const waiting = waiter.client.acquire(name, { waitMs: 20_000 });
  await until(async () => (await item(name))?.queue.length === 1);
  // The release plans the handover from the queue as the holder last saw it (here, by
  // inspecting it; a stale view costs one refused write, which returns the queue).
  await holder.client.inspect(name);
  holder.requests.reset();
  expect(await lock.release()).toBe(true);
  expect(holder.requests.total).toBe(1); // the release, handing over in the same write
  const handed = await item(name);
  expect(handed).toMatchObject({ holder: waiter.client.ownerId, fencingToken: lock.fencingToken + 1, queue: [] });
  expect(handed?.grantee).toBeDefined();
  waiter.requests.reset();
  const next = await waiting;
  expect(next.fencingToken).toBe(lock.fencingToken + 1);
  expect(waiter.requests.byCommand.get("UpdateItemCommand") ?? 0).toBe(0); // taken by reading it: no write
  expect(await next.release()).toBe(true);
  expect(await waiter.client.inspect(name)).toMatchObject({ holder: undefined, released: true, fencingToken: lock.fencingToken + 1 });
});

it("reports a handing release whose answer was lost as released, after the waiter took the lock up", async () => {
  const name = uniqueName();
  const { client, dynamodb } = newLockClient();
  const lock = await client.acquire(name);
  // A waiter with data takes a handover up with a write at once (its `accept`).
  const waiter = newLockClient(quick).client;
  const waiting = waiter.acquire(name, { waitMs: 20_000, data: "next" });
  await until(async () => (await item(name))?.queue.length === 1);
  let lost = 0;
  (dynamodb.middlewareStack as unknown as { add(m: unknown, o: object): void }).add(
    (next: (a: unknown) => Promise<unknown>) => async (args: unknown) => {
      const input = (args as { input?: Record<string, unknown> }).input ?? {};
      if (!isHandingRelease(input) || lost > 0) return next(args);
      lost++;
      await next(args); // applied: the lock is handed over
      // The answer never arrives; by the time the SDK retries, the waiter has taken the lock up.
      await until(async () => (await item(name))?.data === "next");
      throw Object.assign(new Error("scripted fault: response lost"), { name: "TimeoutError", $metadata: {} });
    },
    { step: "finalizeRequest", priority: "low", name: "lose-release-answer" },
  );
  expect(await lock.release()).toBe(true); // before: false ("another holder had taken it over")
  expect(lost).toBe(1);
  const next = await waiting;
  expect(next.fencingToken).toBe(lock.fencingToken + 1);
  expect(next.held).toBe(true);
  expect(await next.release()).toBe(true);
});

it("lets the next waiter take over a dead head waiter's handover after its short lease, not before", async () => {
  const name = uniqueName();
  const lock = await newLockClient().client.acquire(name);
  // The head waiter crashes while queued: cut off from DynamoDB, its place left behind.
  const dead = await queueDeadWaiter(name, quick);
  const live = newLockClient(quick).client.acquire(name, { waitMs: 20_000 });
  await until(async () => (await item(name))?.queue.length === 2);
  await lock.release();
  const releasedAt = Date.now();
  expect(await item(name)).toMatchObject({ holder: dead.client.ownerId, fencingToken: lock.fencingToken + 1 });
  const next = await live;
  const waited = Date.now() - releasedAt;
  // The handover lease is the dead waiter's place lease (1 s): never taken over before it, and soon after.
  expect(waited).toBeGreaterThanOrEqual(950);
  expect(waited).toBeLessThan(4_000);
  expect(next.fencingToken).toBe(lock.fencingToken + 2);
  expect((await item(name))?.queue).toEqual([]);
  await next.release();
});

it("passes the lock on at once when its waiter gives up just as it is handed the lock", async () => {
  const name = uniqueName();
  const lock = await newLockClient().client.acquire(name);
  // The first waiter's looks are held up (lost) while the lock is handed to it.
  const first = newLockClient(quick);
  let blind = false;
  injectFaults(first.dynamodb, (r) => (blind && r.commandName === "GetItemCommand" ? { kind: "lose-request" } : undefined));
  const stop = new AbortController();
  const firstWaiting = first.client.acquire(name, { waitMs: 20_000, signal: stop.signal }).then(
    () => "granted",
    () => "gave up",
  );
  await until(async () => (await item(name))?.queue.length === 1);
  const second = newLockClient(quick).client.acquire(name, { waitMs: 20_000 });
  await until(async () => (await item(name))?.queue.length === 2);
  blind = true;
  await lock.release();
  expect(await item(name)).toMatchObject({ holder: first.client.ownerId, fencingToken: lock.fencingToken + 1 });
  // It gives up now, handed the lock but not knowing it: leaving, it finds the handover and passes it on.
  blind = false;
  const gaveUpAt = Date.now();
  stop.abort();
  expect(await firstWaiting).toBe("gave up");
  const next = await second;
  expect(Date.now() - gaveUpAt).toBeLessThan(900); // not after the handover's 1 s lease
  expect(next.fencingToken).toBe(lock.fencingToken + 2);
  await next.release();
});

it("serves the same owner's acquire run twice at once in turn, never both at once, each release its own", async () => {
  const name = uniqueName();
  const holder = await newLockClient().client.acquire(name);
  // Two clients sharing one owner id: a retried invocation runs the same acquire twice.
  const a = newLockClient({ ...quick, ownerId: "twice" }).client;
  const b = newLockClient({ ...quick, ownerId: "twice" }).client;
  const first = a.acquire(name, { waitMs: 20_000 });
  const second = b.acquire(name, { waitMs: 20_000 });
  await until(async () => (await item(name))?.queue.length === 2);
  await holder.release();
  const [one, other] = await Promise.race([first.then((l) => [l, second] as const), second.then((l) => [l, first] as const)]);
  expect(one.fencingToken).toBe(holder.fencingToken + 1);
  let otherGranted = false;
  void other.then(() => (otherGranted = true));
  await new Promise((r) => setTimeout(r, 300));
  expect(otherGranted).toBe(false); // still waiting while the first holds
  expect(await one.release()).toBe(true);
  const two = await other;
  expect(two.fencingToken).toBe(holder.fencingToken + 2);
  expect(one.held).toBe(false);
  expect(two.held).toBe(true);
  // Releasing the first grant again (by token) neither errs nor touches the second.
  await a.release(name, one.fencingToken);
  expect(await a.inspect(name)).toMatchObject({ holder: "twice", fencingToken: two.fencingToken });
  expect(await two.release()).toBe(true);
});

it("frees the lock for an earlier client's waiter at the head instead of handing it over", async () => {
  const name = uniqueName();
  const { client } = newLockClient();
  const lock = await client.acquire(name);
  // A place as the previous version writes it: `<owner>#<8 hex>@<renewals>@<lease>`.
  const earlier = "earlier-client#0123abcd@0@5000";
  await dynamoDbClient().send(
    new UpdateItemCommand({ TableName: lockTable(), Key: { pk: { S: `lock#${name}` } }, UpdateExpression: "SET #q = :q", ExpressionAttributeNames: { "#q": "queue" }, ExpressionAttributeValues: { ":q": { L: [{ S: earlier }] } } }),
  );
  expect(await lock.release()).toBe(true);
  expect(await item(name)).toMatchObject({ holder: undefined, grantee: undefined, fencingToken: lock.fencingToken, queue: [earlier] });
});

it("takes no handover that a later write moved on (an earlier client's takeover leaves its attributes behind)", async () => {
  const name = uniqueName();
  const lock = await newLockClient().client.acquire(name);
  const waiter = newLockClient(quick);
  const stop = new AbortController();
  let blind = false;
  injectFaults(waiter.dynamodb, (r) => (blind ? { kind: "lose-request" } : undefined));
  const waiting = waiter.client.acquire(name, { waitMs: 20_000, signal: stop.signal }).then(
    (l) => l,
    () => undefined,
  );
  await until(async () => (await item(name))?.queue.length === 1);
  blind = true;
  await lock.release();
  const handed = await item(name);
  expect(handed?.grantee).toBeDefined();
  // An earlier client takes the lock over as it always did: new holder, version and token;
  // it knows nothing of `grantee` and `handoffVersion` and leaves them.
  await dynamoDbClient().send(
    new UpdateItemCommand({
      TableName: lockTable(),
      Key: { pk: { S: `lock#${name}` } },
      UpdateExpression: "SET holder = :me, #v = :v, #t = #t + :one",
      ConditionExpression: "#v = :seen",
      ExpressionAttributeNames: { "#v": "version", "#t": "token" },
      ExpressionAttributeValues: { ":me": { S: "earlier-client" }, ":v": { S: "earlier-attempt" }, ":one": { N: "1" }, ":seen": { S: handed!.version } },
    }),
  );
  const after = await item(name);
  expect(after).toMatchObject({ holder: "earlier-client", grantee: undefined, fencingToken: lock.fencingToken + 2 });
  blind = false;
  await new Promise((r) => setTimeout(r, 500)); // looks of the waiter see the lock held by the earlier client
  stop.abort();
  expect(await waiting).toBeUndefined();
  expect((await item(name))?.holder).toBe("earlier-client");
});
