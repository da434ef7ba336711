/**
 * Waiting keeps the process alive: a script whose only work is an awaited acquire of a
 * busy lock runs to its LockTimeoutError instead of exiting mid-wait (Node exits with code
 * 13 when a top-level await can never settle because every timer is unref'd).
 */
import { expect, it } from "vitest";
import { lockTable, spawnFixture } from "../support/cloud.js";
import { newLockClient, uniqueName } from "../support/locks.js";

it("a script waiting only for a busy lock stays alive until its wait ends", async () => {
  const { client } = newLockClient();
  const name = uniqueName("alive");
  const held = await client.acquire(name, { leaseMs: 30_000 });
  const child = spawnFixture("wait-for-lock", { FIXTURE_TABLE: lockTable(), FIXTURE_LOCK: name, FIXTURE_WAIT_MS: "1500" });
  let out = "";
  child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  await held.release();
  expect({ code, out: out.trim() }).toEqual({ code: 0, out: "timed out" });
});
