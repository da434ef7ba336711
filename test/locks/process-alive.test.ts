/**
 * Waiting keeps the process alive: a script whose only work is an awaited acquire of a
 * busy lock runs to its LockTimeoutError instead of exiting mid-wait (Node exits with code
 * 13 when a top-level await can never settle because every timer is unref'd).
 */
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { expect, it } from "vitest";
import { lockTable, sharedCloud } from "../support/cloud.js";
import { newLockClient, uniqueName } from "../support/locks.js";

it("a script waiting only for a busy lock stays alive until its wait ends", async () => {
  const { client } = newLockClient();
  const name = uniqueName("alive");
  const held = await client.acquire(name, { leaseMs: 30_000 });
  const cloud = sharedCloud();
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;
  const child = spawn(process.execPath, ["--import", tsx, "test/fixtures/wait-for-lock.ts"], {
    env: {
      ...process.env,
      FIXTURE_TABLE: lockTable(),
      FIXTURE_LOCK: name,
      FIXTURE_WAIT_MS: "1500",
      AWS_ENDPOINT_URL_DYNAMODB: cloud.endpoints.dynamodb,
      AWS_REGION: cloud.region,
      AWS_ACCESS_KEY_ID: cloud.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: cloud.credentials.secretAccessKey,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  await held.release();
  expect({ code, out: out.trim() }).toEqual({ code: 0, out: "timed out" });
});
