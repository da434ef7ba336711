/**
 * Locks report what happened, not what a failed request suggests: a heartbeat whose
 * requests never reached DynamoDB does not end the lock, and a release whose requests
 * were lost is sent again until the item says it arrived. Against DynamoDB Local, with
 * faults injected into the holder's SDK client.
 */
import { TransactionCanceledException } from "@aws-sdk/client-dynamodb";
import { expect, it } from "vitest";
import { injectFaults } from "../../lib/check/middleware.js";
import { InvalidArgumentError, ReleaseIncompleteError } from "../../lib/index.js";
import { newLockClient, uniqueName } from "../support/locks.js";

/** Waits until `check` holds (polling), or fails after `ms`. */
async function until(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

const isHeartbeat = (input: Record<string, unknown>) => String(input["UpdateExpression"] ?? "").startsWith("SET #version = :next");
const isRelease = (input: Record<string, unknown>) => String(input["UpdateExpression"] ?? "").includes("REMOVE holder");

it("keeps a lock whose heartbeats failed with 5xx before reaching DynamoDB, and heartbeats on", async () => {
  const { client, dynamodb } = newLockClient();
  let failing = true;
  let failed = 0;
  let landed = 0;
  let settled = false;
  injectFaults(dynamodb, (r) => (isHeartbeat(r.input) ? (failing ? { kind: "server-error" } : undefined) : undefined), () => failed++);
  dynamodb.middlewareStack.add(
    (next, context) => async (args) => {
      // The SDK gave up on the heartbeat (every attempt a 5xx) once the lock reads its item.
      if (failed > 0 && context.commandName === "GetItemCommand") settled = true;
      const out = await next(args);
      if (isHeartbeat((args as { input: Record<string, unknown> }).input) && !failing) landed++;
      return out;
    },
    { step: "initialize", name: "count-heartbeats" },
  );
  const lock = await client.acquire(uniqueName(), { leaseMs: 3000 });
  await until(() => settled);
  failing = false;
  await until(() => landed >= 1);
  expect(lock.signal.aborted).toBe(false);
  expect(lock.held).toBe(true);
  expect(await lock.release()).toBe(true);
});

it("sends a release again when its requests were lost, and reports it released", async () => {
  const { client, dynamodb } = newLockClient();
  let lose = 4; // more than the SDK's attempts for one request
  injectFaults(dynamodb, (r) => (isRelease(r.input) && lose-- > 0 ? { kind: "lose-request" } : undefined));
  const name = uniqueName();
  const lock = await client.acquire(name);
  expect(await lock.release()).toBe(true);
  expect(await client.inspect(name)).toMatchObject({ holder: undefined, released: true, fencingToken: lock.fencingToken });
});

it("lets a second release try again after DynamoDB stayed unreachable for the first", async () => {
  const { client, dynamodb } = newLockClient();
  let down = true;
  injectFaults(dynamodb, (r) => (isRelease(r.input) && down ? { kind: "lose-request" } : undefined));
  const name = uniqueName();
  const lock = await client.acquire(name);
  await expect(lock.release()).rejects.toBeInstanceOf(ReleaseIncompleteError);
  expect(lock.held).toBe(false);
  down = false;
  expect(await lock.release()).toBe(true);
  expect((await client.inspect(name))?.holder).toBeUndefined();
});

it("retries the first grant of a new name when its transaction conflicts with another on the token floor", async () => {
  const { client, dynamodb } = newLockClient();
  let conflicts = 2;
  (dynamodb.middlewareStack as unknown as { add(m: unknown, o: object): void }).add(
    (next: (a: unknown) => Promise<unknown>, context: { commandName?: string }) => async (args: unknown) => {
      if (context.commandName !== "TransactWriteItemsCommand" || conflicts-- <= 0) return next(args);
      throw new TransactionCanceledException({ message: "Transaction cancelled", $metadata: { httpStatusCode: 400 }, CancellationReasons: [{ Code: "None" }, { Code: "TransactionConflict" }] });
    },
    { step: "finalizeRequest", priority: "low", name: "conflict-twice" },
  );
  const lock = await client.acquire(uniqueName("new"));
  expect(lock.fencingToken).toBeGreaterThan(0);
  await lock.release();
});

it("refuses bad options and names with InvalidArgumentError naming the field", async () => {
  for (const [field, options] of [
    ["safetyMarginMs", { safetyMarginMs: -1 }],
    ["waiterLeaseMs", { waiterLeaseMs: -5 }],
    ["maxWaiters", { maxWaiters: 1001 }],
    ["maxWaiters", { maxWaiters: 0 }],
    ["ownerId", { ownerId: "o".repeat(257) }],
    ["maxPollMs", { maxPollMs: 0 }],
    ["leaseMs", { leaseMs: Number.NaN }],
    ["pollMs", { pollMs: -1 }],
  ] as const) {
    expect(() => newLockClient(options), field).toThrow(InvalidArgumentError);
    expect(() => newLockClient(options), field).toThrow(field);
  }
  const { client } = newLockClient();
  for (const name of ["a\u0000b", "tab\there", "\ud800alone", "x".repeat(400) + "é".repeat(100)]) {
    await expect(client.inspect(name), JSON.stringify(name).slice(0, 20)).rejects.toBeInstanceOf(InvalidArgumentError);
  }
});

it("inspect shows a lease that ran out as expired, and a live one with its time left", async () => {
  const { client, dynamodb } = newLockClient();
  // The holder's heartbeats never arrive: its lease runs out, as a crashed holder's would.
  injectFaults(dynamodb, (r) => (isHeartbeat(r.input) ? { kind: "lose-request" } : undefined));
  const name = uniqueName();
  const lock = await client.acquire(name, { leaseMs: 400 });
  const live = await newLockClient().client.inspect(name);
  expect(live).toMatchObject({ holder: client.ownerId, expired: false });
  expect(live!.expiresAt! - Date.now()).toBeGreaterThan(0);
  await until(() => lock.signal.aborted);
  await until(async () => (await newLockClient().client.inspect(name))?.expired === true);
  expect((await newLockClient().client.inspect(name))?.holder).toBe(client.ownerId);
});
