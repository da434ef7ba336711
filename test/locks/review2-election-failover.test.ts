/**
 * Review 2 of 7ac6455: the same cause as review2-takeover-lease.test.ts, in the main use
 * of elections. A standby that campaigns while the leader is alive, and is elected when the
 * leader dies (a takeover after one lease), gets a Leadership whose signal is already
 * aborted: its lease is counted from its campaign's first (blind) grant, a lease or more
 * earlier. The item proclaims it leader with its value for a whole lease while it does not
 * lead: failover yields no leader.
 *
 * Fixed with review2-takeover-lease.test.ts.
 */
import { expect, it } from "vitest";
import { injectFaults } from "../../lib/check/middleware.js";
import { Election } from "../../lib/index.js";
import { newLockClient, uniqueName } from "../support/locks.js";

it("a standby elected when the leader dies leads when campaign() returns", { timeout: 40_000 }, async () => {
  const name = uniqueName("r2-election");
  const leader = newLockClient({ ownerId: "r2-leader", leaseMs: 2000 });
  const first = await new Election(leader.client, name).campaign({ value: "10.0.0.1:80" });
  expect(first.isLeader).toBe(true);
  const standby = newLockClient({ ownerId: "r2-standby", leaseMs: 2000 });
  const campaign = new Election(standby.client, name).campaign({ value: "10.0.0.2:80" });
  await new Promise((r) => setTimeout(r, 300));
  // The leader's host dies: its heartbeats no longer reach DynamoDB.
  injectFaults(leader.dynamodb, () => ({ kind: "lose-request" }));
  const second = await campaign;
  expect(await new Election(standby.client, name).leader()).toMatchObject({ holder: "r2-standby", value: "10.0.0.2:80" });
  expect(second.signal.aborted).toBe(false);
  expect(second.isLeader).toBe(true);
  await second.resign();
});
