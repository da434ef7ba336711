/**
 * Third adversarial review of the request-id change (0ac97c3..221de6c): the client's take-up
 * of an adopted grant (LambdaLockBackend#adopt) wrote a version without the request's prefix,
 * so when every answer to it was lost, the `abandon` the client sent on giving up could not
 * give the grant back. (The review's other finding, a late copy after another wait's grant,
 * is a documented limit: lib/locks/request-ids.ts, README "Lost answers".)
 */
import { expect, it } from "vitest";
import { injectedFailure } from "../../lib/check/middleware.js";
import { LockClient } from "../../lib/index.js";
import { lambdaClient, lockFunction } from "../support/cloud.js";
import { leaseStore, uniqueName, wait } from "../support/locks.js";

const item = (name: string) => leaseStore().read(`lock#${name}`);

/**
 * LambdaLockBackend#adopt takes an old adopted grant up with a heartbeat (it was a plain
 * UUID). If every answer to that heartbeat is lost (it landed), acquire throws and sends
 * `abandon`, which only releases versions carrying the request's prefix: the lease taken
 * up at the unprefixed version stays, held by nobody (the "every answer lost" case the
 * change claims `abandon` covers).
 */
it("an acquire that fails in #adopt's take-up heartbeat leaves no orphan", { timeout: 60_000 }, async () => {
  const name = uniqueName("rv3-adopt-hb");
  const lambda = lambdaClient();
  let acquires = 0;
  lambda.middlewareStack.add(
    (next) => async (args) => {
      const input = (args as unknown as { input: { Payload: Uint8Array } }).input;
      const sent = JSON.parse(new TextDecoder().decode(input.Payload)) as { action?: string; name?: string };
      if (sent.name !== name) return next(args);
      if (sent.action === "acquire" && acquires++ === 0) {
        await next(args); // granted; the answer is lost after more than half the lease
        await wait(2500);
        throw injectedFailure("TimeoutError", "injected: answer lost");
      }
      if (sent.action === "heartbeat") {
        await next(args); // the take-up lands; every answer is lost
        throw injectedFailure("TimeoutError", "injected: answer lost");
      }
      return next(args);
    },
    { step: "finalizeRequest", priority: "low", name: "adopt-heartbeat-lost" },
  );
  const client = new LockClient({ functionName: lockFunction(), lambda, leaseMs: 4000, ownerId: "alice" });
  const outcome = await client.acquire(name, { waitMs: 20_000 }).then(
    async (lock) => (await lock.release().catch(() => false), "granted"),
    (err: Error) => err.name,
  );
  const after = await item(name);
  expect({ acquires, outcome, holder: outcome === "granted" ? undefined : after?.holder }).toEqual({ acquires: 2, outcome: expect.any(String), holder: undefined });
});
