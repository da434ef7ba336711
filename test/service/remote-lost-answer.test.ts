/**
 * Remote mode (LockClient over the lock Lambda) when the answer to a granting invocation
 * is lost, or the invocation runs twice at once: the copy the caller hears answers with
 * the grant an earlier copy made (protocol.ts `requestId`), instead of waiting behind it
 * (the caller's own orphan, for a whole lease) or reporting the lock busy. Each grant the
 * caller gets is the one on the item, it releases it, and no lease is left behind.
 * Faults are injected into the caller's Lambda client inside the SDK's retry loop, so the
 * SDK resends the same payload, as it does after a lost answer.
 */
import type { LambdaClient } from "@aws-sdk/client-lambda";
import { afterEach, describe, expect, it } from "vitest";
import { LockClient } from "../../lib/index.js";
import { duplicateRequests, injectFaults, type Delivery } from "../../lib/check/middleware.js";
import { InvalidArgumentError, toWire } from "../../lib/errors.js";
import { lockRequestSchema } from "../../lib/locks/protocol.js";
import { validator } from "../../lib/service/validate.js";
import { lambdaClient, lockFunction } from "../support/cloud.js";
import { lockRequestOf } from "../support/invoke.js";
import { newLockClient, uniqueName, until } from "../support/locks.js";

/** The first `action` invocation for `name` is applied and its answer lost; the SDK sends it again. */
function loseFirstAnswer(lambda: LambdaClient, action: string, name: string): { lost: number; copies: Set<string | undefined> } {
  const seen = { lost: 0, copies: new Set<string | undefined>() };
  removers.push(
    injectFaults(lambda, (request) => {
      const sent = lockRequestOf(request);
      if (sent.action !== action || sent.name !== name) return undefined;
      seen.copies.add(sent.requestId);
      return seen.lost++ === 0 ? { kind: "lose-response" } : undefined;
    }),
  );
  return seen;
}

const removers: (() => void)[] = [];
afterEach(() => removers.splice(0).forEach((remove) => remove()));

const LEASE_MS = 30_000; // far longer than any wait here: an orphan would show
const remote = (lambda: LambdaClient, ownerId: string) => new LockClient({ functionName: lockFunction(), lambda, leaseMs: LEASE_MS, ownerId });

/** The lock is free now and nobody holds a lease on it: another owner gets it at once. */
async function expectFree(name: string): Promise<void> {
  const other = newLockClient({ ownerId: "checker", leaseMs: 1000 }).client;
  const lock = await other.tryAcquire(name);
  expect(lock, "no orphaned lease left on the lock").toBeDefined();
  await lock!.release();
}

describe("LockClient in remote mode, when an answer is lost or an invocation runs twice", { timeout: 60_000 }, () => {
  it("answers an acquire whose answer was lost with the grant it made, not a wait behind it", async () => {
    const name = uniqueName("remote-lost");
    const lambda = lambdaClient();
    const faults = loseFirstAnswer(lambda, "acquire", name);
    const client = remote(lambda, "alice");
    const lock = await client.acquire(name, { waitMs: 5000 });
    expect(faults.lost).toBe(2); // the first copy's answer was lost, the SDK's retry answered
    expect(faults.copies.size).toBe(1); // both copies carried the same request id
    const item = await client.inspect(name);
    expect(item).toMatchObject({ holder: "alice", fencingToken: lock.fencingToken, released: false });
    expect(await lock.release()).toBe(true);
    await expectFree(name);
  });

  it("gives the request up, releasing its grant, when every answer to it was lost", async () => {
    const name = uniqueName("remote-all-lost");
    const lambda = lambdaClient();
    let lost = 0;
    removers.push(injectFaults(lambda, (request) => (lockRequestOf(request).action === "acquire" && lockRequestOf(request).name === name ? (lost++, { kind: "lose-response" }) : undefined)));
    const outcome = await remote(lambda, "alice")
      .acquire(name, { waitMs: 5000 })
      .then(
        () => "granted",
        (err: Error) => err.name,
      );
    expect(outcome).toBe("TimeoutError"); // the SDK's last retry's answer was lost too
    expect(lost).toBeGreaterThan(1);
    await expectFree(name); // the client sent `abandon`: the grant a copy made was released
  });

  it("answers a tryAcquire whose answer was lost with its grant, not with the lock busy", async () => {
    const name = uniqueName("remote-lost-try");
    const lambda = lambdaClient();
    const faults = loseFirstAnswer(lambda, "tryAcquire", name);
    const lock = await remote(lambda, "alice").tryAcquire(name);
    expect(faults.lost).toBe(2);
    expect(lock).toBeDefined();
    expect(await lock!.release()).toBe(true);
    await expectFree(name);
  });

  it("answers a waiter handed the lock, whose answer was lost after the service took it up", async () => {
    const name = uniqueName("remote-lost-handover");
    const holder = newLockClient({ ownerId: "alice", leaseMs: LEASE_MS }).client;
    const held = await holder.acquire(name);
    const lambda = lambdaClient();
    const faults = loseFirstAnswer(lambda, "acquire", name);
    const waiting = remote(lambda, "bob").acquire(name, { waitMs: 10_000 });
    await until(async () => (await holder.inspect(name))?.waiters === 1); // bob queued
    expect(await held.release()).toBe(true); // hands the lock to bob's first copy, which takes it up
    const lock = await waiting;
    expect(faults.lost).toBe(2);
    expect(lock.fencingToken).toBe(held.fencingToken + 1);
    expect(await holder.inspect(name)).toMatchObject({ holder: "bob", fencingToken: lock.fencingToken });
    expect(await lock.release()).toBe(true);
    await expectFree(name);
  });

  it("gives both copies of an acquire run twice at once the same grant", async () => {
    const name = uniqueName("remote-twice");
    const lambda = lambdaClient();
    const deliveries: (readonly [Delivery, Delivery])[] = [];
    const settled: Promise<void>[] = [];
    removers.push(
      duplicateRequests(
        lambda,
        (request) => (lockRequestOf(request).action === "acquire" && lockRequestOf(request).name === name ? { lagMs: 50, answer: 1 } : undefined),
        (_, both) => deliveries.push(both),
        (done) => settled.push(done),
      ),
    );
    const lock = await remote(lambda, "alice").acquire(name, { waitMs: 5000 });
    await Promise.all(settled);
    expect(deliveries).toHaveLength(1);
    const tokens = deliveries[0]!.map((d) => {
      expect(d.ok, "each copy answered with a grant").toBe(true);
      const payload = (d as { output: { Payload: Uint8Array } }).output.Payload;
      return (JSON.parse(new TextDecoder().decode(payload)) as { fencingToken: number }).fencingToken;
    });
    expect(tokens).toEqual([lock.fencingToken, lock.fencingToken]);
    expect(await lock.release()).toBe(true);
    await expectFree(name);
  });

  it("still acquires through a function deployed before request ids, which refuses the field", async () => {
    // Adapter shape only: the function is the real one, behind a gate that validates each
    // request as a function before request ids did (the same schema without the field, or `abandon`).
    const before = structuredClone(lockRequestSchema) as unknown as { oneOf: { properties: { action: { const: string } } & Record<string, unknown> }[] };
    before.oneOf = before.oneOf.filter((branch) => branch.properties.action.const !== "abandon");
    for (const branch of before.oneOf) delete branch.properties["requestId"];
    const validateAsBefore = validator(before);
    const lambda = lambdaClient();
    let refused = 0;
    const gate = (next: (args: unknown) => Promise<unknown>) => async (args: unknown) => {
        const payload = JSON.parse(new TextDecoder().decode((args as { input: { Payload: Uint8Array } }).input.Payload)) as unknown;
        try {
          validateAsBefore(payload);
        } catch (err) {
          if (!(err instanceof InvalidArgumentError)) throw err;
          refused++;
          return { output: { $metadata: {}, StatusCode: 200, FunctionError: "Unhandled", Payload: new TextEncoder().encode(JSON.stringify(toWire(err))) }, response: {} };
        }
        return next(args);
    };
    lambda.middlewareStack.add(gate as never, { step: "finalizeRequest", priority: "low", name: "asBeforeRequestIds" });
    const client = remote(lambda, "alice");
    const name = uniqueName("remote-old-function");
    const first = await client.acquire(name, { waitMs: 5000 });
    expect(refused).toBe(1); // refused once, then sent without the field from then on
    expect(await first.release()).toBe(true);
    const second = await client.tryAcquire(name);
    expect(refused).toBe(1);
    expect(second!.fencingToken).toBeGreaterThan(first.fencingToken);
    expect(await second!.release()).toBe(true);
  });
});
