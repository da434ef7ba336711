/**
 * Review (adversarial): the release proof's second disjunct (lease.ts #releaseOnce):
 * `holder === undefined && fencingToken === t && releasedBy === owner`, kept "as earlier
 * clients left it". A handover ended by sweep (#endHandoff: REMOVE holder, grantee,
 * handoffVersion; new version; releasedBy left as the RELEASER's) leaves exactly that state
 * for the grantee's token when the releaser and the grantee share an owner id (a retried
 * invocation, a fleet with one owner id). A grantee that held the handover lazily and lost
 * it (its lease ran out, nobody took it up in time) then has release() report `true`, "this
 * call released it", though it never did. (The state is staged here with the very write
 * #endHandoff sends: sweep would delete the item afterwards when nothing is queued.)
 * Fixed: ending a handover removes `releasedBy` (END_HANDOFF_UPDATE, lease.ts).
 */
import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { randomUUID } from "node:crypto";
import { expect, it } from "vitest";
import { injectFaults } from "../../lib/check/middleware.js";
import { END_HANDOFF_UPDATE } from "../../lib/locks/lease.js";
import { dynamoDbClient, lockTable } from "../support/cloud.js";
import { leaseStore, newLockClient, uniqueName, until } from "../support/locks.js";

const quick = { waiterLeaseMs: 1000, maxPollMs: 250 };
const item = (name: string) => leaseStore().read(`lock#${name}`);

it("does not report a handover it lost as released by this call", async () => {
  const name = uniqueName();
  const ownerId = `shared-${randomUUID().slice(0, 6)}`;
  const a = newLockClient({ ownerId }).client;
  const lock = await a.acquire(name);
  const b = newLockClient({ ...quick, ownerId });
  let cut = true; // b's heartbeats never arrive (its reads and queue writes do)
  injectFaults(b.dynamodb, (r) => (cut && /renewedAt = :now REMOVE grantee, handoffVersion$/.test(String(r.input["UpdateExpression"] ?? "")) ? { kind: "lose-request" } : undefined));
  const waiting = b.client.acquire(name, { waitMs: 20_000 });
  await until(async () => (await item(name))?.queue.length === 1);
  // b past its first (blind) look: from then on it looks at most maxPollMs apart.
  await until(() => (b.requests.byCommand.get("GetItemCommand") ?? 0) >= 1, 10_000);
  await a.inspect(name);
  await lock.release(); // handed to b (same owner id), 1 s handover lease
  const bLock = await waiting; // taken lazily
  expect(bLock.fencingToken).toBe(lock.fencingToken + 1);
  await until(() => !bLock.held, 5000);
  const seen = await item(name);
  expect(seen?.grantee).toBeDefined(); // never taken up
  // Sweep, having watched it unchanged for the handover lease + margin, ends the handover: its very write.
  await dynamoDbClient().send(
    new UpdateItemCommand({
      TableName: lockTable(),
      Key: { pk: { S: `lock#${name}` } },
      UpdateExpression: END_HANDOFF_UPDATE,
      ConditionExpression: "#version = :seen AND grantee = :grantee",
      ExpressionAttributeNames: { "#version": "version" },
      ExpressionAttributeValues: { ":next": { S: randomUUID() }, ":now": { N: String(Date.now()) }, ":seen": { S: seen!.version }, ":grantee": { S: seen!.grantee! } },
    }),
  );
  cut = false;
  // b's lock was ended by the sweep, not by b: release() must not say this call released it.
  expect(await bLock.release()).toBe(false);
});
