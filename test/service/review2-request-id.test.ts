/**
 * Second adversarial review of 30f5d73 + c9217bc (request ids).
 */
import { afterEach, expect, it } from "vitest";
import { injectedFailure } from "../../lib/check/middleware.js";
import { LockClient } from "../../lib/index.js";
import { LockService } from "../../lib/service/lock-service.js";
import { dynamoDbClient, lambdaClient, lockFunction, lockTable } from "../support/cloud.js";
import { delayFirstInvoke } from "../support/invoke.js";
import { leaseStore, newLockClient, uniqueName, until, wait } from "../support/locks.js";

const item = (name: string) => leaseStore().read(`lock#${name}`);
const removers: (() => void)[] = [];
afterEach(() => removers.splice(0).forEach((remove) => remove()));

/**
 * In-process: copy A of request R is handed the lock by a release and holds it lazily. Its
 * lease (3 s) is no longer than the handover lease, so the service does not take it up:
 * the item never names R (no prefixed version, grantWait stays the releaser's). The caller
 * releases. A late copy B of R then runs: it is not refused as `finished`, and grants the
 * lock again under the caller's owner id: an orphan lease nobody holds.
 */
it("a late copy after a lazily held handover grant was released grants nothing", { timeout: 60_000 }, async () => {
  const name = uniqueName("rv2-lazy");
  const holder = await newLockClient({ ownerId: "holder", leaseMs: 30_000 }).client.acquire(name);
  const requestId = "CCCCCCCCCCCCCCCCCCCCCC";
  const serviceA = new LockService({ tableName: lockTable(), dynamodb: dynamoDbClient() });
  const a = serviceA.handle({ action: "acquire", name, owner: "alice", leaseMs: 3000, waitMs: 10_000, requestId });
  await until(async () => ((await item(name))?.queue.length ?? 0) > 0);
  expect(await holder.release()).toBe(true);
  const grant = (await a) as { fencingToken: number; version: string; adopted?: boolean };
  const atGrant = await item(name);
  // the caller uses and releases the grant
  expect(await serviceA.handle({ action: "release", name, owner: "alice", fencingToken: grant.fencingToken })).toEqual({ released: true });
  const serviceB = new LockService({ tableName: lockTable(), dynamodb: dynamoDbClient() });
  const b = await serviceB.handle({ action: "acquire", name, owner: "alice", leaseMs: 3000, waitMs: 2000, requestId }).then(
    (g) => `granted token ${(g as { fencingToken: number }).fencingToken}`,
    (err: Error) => err.name,
  );
  const after = await item(name);
  expect({ grantVersion: grant.version, grantWaitAtGrant: atGrant?.grantWait, late: b, holderAfter: after?.holder }).toMatchObject({
    late: "InvalidArgumentError",
    holderAfter: undefined,
  });
});

/**
 * End to end: the client's first invoke is delayed in the network (the SDK resends it at
 * once, same requestId). The retry waits behind another holder, whose release hands it the
 * lock (held lazily: lease 3 s). The caller uses and releases it. Then the first copy
 * reaches the function and grants the lock again to alice: an orphan lease.
 */
it("end to end: a late first copy after a handover grant was released leaves no orphan", { timeout: 60_000 }, async () => {
  const name = uniqueName("rv2-lazy-e2e");
  const holder = await newLockClient({ ownerId: "holder", leaseMs: 30_000 }).client.acquire(name);
  const lambda = lambdaClient();
  const { late, remove } = delayFirstInvoke(lambda, "acquire", name, 6000);
  removers.push(remove);
  const client = new LockClient({ functionName: lockFunction(), lambda, leaseMs: 3000, ownerId: "alice" });
  const acquiring = client.acquire(name, { waitMs: 10_000 });
  await until(async () => ((await item(name))?.queue.length ?? 0) > 0);
  await holder.release();
  const lock = await acquiring;
  expect(await lock.release()).toBe(true);
  await Promise.all(late); // the first copy ran now
  await wait(200);
  const after = await item(name);
  const other = await newLockClient({ ownerId: "checker", leaseMs: 1000 }).client.tryAcquire(name);
  expect({ holder: after?.holder, otherGotIt: other !== undefined }).toEqual({ holder: undefined, otherGotIt: true });
});

/**
 * The `finished` refusal (InvalidArgumentError on `requestId`) is the same error a function
 * deployed before request ids gives for the unknown field: LambdaLockBackend#grantCall takes
 * it for an old function, resends without the id, and never sends ids again. Here the first
 * copy's grant is broken by an operator (`fencepost lock break`: a release by the holder's
 * token) before the SDK's retry arrives; the retry is refused as `finished`. The caller is
 * served by the id-less resend, but from then on this LockClient sends no request ids: the
 * next lost answer leaves it waiting behind its own orphan lease (the pre-change behaviour).
 */
it("a `finished` refusal does not switch a client's request ids off for good", { timeout: 60_000 }, async () => {
  const name = uniqueName("rv2-finished");
  const lambda = lambdaClient();
  const payloads: { action?: string; requestId?: string }[] = [];
  let stage = 0;
  lambda.middlewareStack.add(
    (next) => async (args) => {
      const input = (args as unknown as { input: { Payload: Uint8Array } }).input;
      const sent = JSON.parse(new TextDecoder().decode(input.Payload)) as { action?: string; name?: string; requestId?: string };
      if (sent.name !== name || sent.action !== "acquire") return next(args);
      payloads.push(sent);
      if (stage === 0) {
        stage = 1;
        const out = (await next(args)) as { output: { Payload: Uint8Array } };
        const grant = JSON.parse(new TextDecoder().decode(out.output.Payload)) as { fencingToken: number };
        await leaseStore().release(`lock#${name}`, "alice", grant.fencingToken, "operator-break-0001"); // lock break
        throw injectedFailure("TimeoutError", "injected: answer lost");
      }
      if (stage === 2) {
        stage = 3;
        await next(args); // applied, answer lost: the retry should adopt it
        throw injectedFailure("TimeoutError", "injected: answer lost");
      }
      return next(args);
    },
    { step: "finalizeRequest", priority: "low", name: "break-between-copies" },
  );
  const client = new LockClient({ functionName: lockFunction(), lambda, leaseMs: 30_000, ownerId: "alice" });
  const first = await client.acquire(name, { waitMs: 3000 });
  expect(await first.release()).toBe(true);
  stage = 2;
  const second = await client.acquire(name, { waitMs: 3000 }).then(
    async (lock) => (await lock.release(), "granted"),
    (err: Error) => err.name,
  );
  expect({ idsSent: payloads.map((p) => p.requestId !== undefined), second }).toEqual({ idsSent: [true, true, true, true, true], second: "granted" });
});

/**
 * Regression against 0ac97c3: a copy whose grant landed unseen (answer lost, reads failing)
 * and that then times out used to give the grant back (#abandon). With a request id it
 * never does (another copy may have answered with it): the caller, hearing LockTimeoutError
 * from its last slice, gives the request up with `abandon` (as LambdaLockBackend does),
 * which releases it. Compare the same run without an id.
 */
it.each([["without"], ["with"]])("a copy that times out after an unseen grant leaves no orphan (%s a request id)", { timeout: 60_000 }, async (mode) => {
  const name = uniqueName("rv2-abandon");
  const maker = newLockClient({ ownerId: "maker" }).client;
  await (await maker.acquire(name)).release();
  const dynamodb = dynamoDbClient({ maxAttempts: 1 });
  let stage = 0;
  dynamodb.middlewareStack.add(
    (next) => async (args) => {
      const input = args.input as unknown as Record<string, unknown>;
      if (stage === 0 && /holder = :me/.test(String(input["UpdateExpression"] ?? ""))) {
        stage = 1;
        await next(args);
        throw injectedFailure("TimeoutError", "injected: answer lost");
      }
      if (stage >= 1 && stage < 3 && "Key" in input && !("UpdateExpression" in input)) {
        stage++;
        await wait(150);
        throw injectedFailure("TimeoutError", "injected: read lost");
      }
      return next(args);
    },
    { step: "finalizeRequest", priority: "low", name: "unseen-grant" },
  );
  const service = new LockService({ tableName: lockTable(), dynamodb });
  const outcome = await service
    .handle({ action: "acquire", name, owner: "alice", leaseMs: 30_000, waitMs: 200, ...(mode === "with" ? { requestId: "DDDDDDDDDDDDDDDDDDDDDD" } : {}) })
    .then(() => "granted", (err: Error) => err.name);
  if (mode === "with") {
    expect((await item(name))?.holder, "copies never give a grant back").toBe("alice");
    expect(await service.handle({ action: "abandon", name, owner: "alice", requestId: "DDDDDDDDDDDDDDDDDDDDDD" })).toEqual({ released: true });
    expect(await service.handle({ action: "abandon", name, owner: "alice", requestId: "DDDDDDDDDDDDDDDDDDDDDD" })).toEqual({ released: false }); // nothing left
  }
  const after = await item(name);
  expect({ outcome, holderAfter: after?.holder }).toEqual({ outcome: "LockTimeoutError", holderAfter: undefined });
});
