/**
 * FencedStore reports what the item proves: a write whose response was lost and which a
 * newer token then overwrote is "outcome unknown", never "stale"; and no keyPrefix lets a
 * fenced write destroy a lock item or the token floor. Against DynamoDB Local.
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { expect, it } from "vitest";
import { FencedStore, KeyInUseError, OutcomeUnknownError, StaleTokenError } from "../../lib/index.js";
import { TOKEN_FLOOR_KEY } from "../../lib/locks/lease.js";
import { dynamoDbClient, lockTable } from "../support/cloud.js";
import { newLockClient, uniqueName, leaseStore } from "../support/locks.js";

/**
 * The first PutItem reaches DynamoDB and applies; before its answer arrives, `meanwhile`
 * runs; then the answer is lost, so the SDK retries the put.
 */
function loseFirstPutResponse(client: DynamoDBClient, meanwhile: () => Promise<void>): void {
  let armed = true;
  (client.middlewareStack as unknown as { add(m: unknown, o: object): void }).add(
    (next: (a: unknown) => Promise<unknown>, context: { commandName?: string }) => async (args: unknown) => {
      if (context.commandName !== "PutItemCommand" || !armed) return next(args);
      armed = false;
      await next(args);
      await meanwhile();
      throw Object.assign(new Error("scripted fault: response lost"), { name: "TimeoutError", $metadata: {} });
    },
    { step: "finalizeRequest", priority: "low", name: "lose-first-put-response" },
  );
}

it("reports a put that landed, lost its response and was overwritten by a newer token as outcome unknown, not stale", async () => {
  const key = uniqueName("key");
  const paused = dynamoDbClient();
  const newer = new FencedStore<string>({ tableName: lockTable(), dynamodb: dynamoDbClient() });
  loseFirstPutResponse(paused, () => newer.put(key, "from token 6", 6));
  const store = new FencedStore<string>({ tableName: lockTable(), dynamodb: paused });

  const error = await store.put(key, "from token 5", 5).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(OutcomeUnknownError);
  expect(error).not.toBeInstanceOf(StaleTokenError);
  expect(await newer.get(key)).toEqual({ value: "from token 6", fencingToken: 6 });

  // Without a lost response, a lower token is plainly stale.
  await expect(new FencedStore<string>({ tableName: lockTable(), dynamodb: dynamoDbClient() }).put(key, "late", 5)).rejects.toBeInstanceOf(StaleTokenError);
});

it("recognises its own put that landed although its response was lost", async () => {
  const key = uniqueName("key");
  const client = dynamoDbClient();
  loseFirstPutResponse(client, async () => {});
  const store = new FencedStore<string>({ tableName: lockTable(), dynamodb: client });
  await store.put(key, "once", 3);
  expect(await store.get(key)).toEqual({ value: "once", fencingToken: 3 });
});

it("refuses to overwrite a lock item or the token floor whatever the keyPrefix, so tokens cannot regress", async () => {
  const { client } = newLockClient();
  const name = uniqueName();
  const first = await client.acquire(name);
  await first.release();
  await leaseStore().raiseFloor(first.fencingToken);

  const onLocks = new FencedStore<string>({ tableName: lockTable(), dynamodb: dynamoDbClient(), keyPrefix: "lock#" });
  await expect(onLocks.put(name, "clobber", 1_000_000)).rejects.toBeInstanceOf(KeyInUseError);
  expect(await onLocks.get(name)).toBeUndefined();
  const onFloor = new FencedStore<string>({ tableName: lockTable(), dynamodb: dynamoDbClient(), keyPrefix: "" });
  await expect(onFloor.put(TOKEN_FLOOR_KEY, "clobber", 1_000_000)).rejects.toBeInstanceOf(KeyInUseError);

  expect(await leaseStore().tokenFloor()).toBeGreaterThanOrEqual(first.fencingToken);
  const second = await client.acquire(name);
  expect(second.fencingToken).toBe(first.fencingToken + 1);
  await second.release();
});
