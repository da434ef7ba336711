/** Lock clients on the shared local cloud, each with its own SDK client (so faults stay per client). */
import { randomUUID } from "node:crypto";
import { RequestCounter } from "../../lib/check/middleware.js";
import { LockClient, type LockClientOptions } from "../../lib/index.js";
import { LeaseStore } from "../../lib/locks/lease.js";
import { dynamoDbClient, lockTable } from "./cloud.js";

export function newLockClient(options: Partial<LockClientOptions> = {}) {
  const dynamodb = options.dynamodb ?? dynamoDbClient();
  const requests = new RequestCounter();
  requests.attach(dynamodb);
  const client = new LockClient({ tableName: lockTable(), dynamodb, ...options });
  return { client, dynamodb, requests };
}

/** The lock table's persistence layer, to read or arrange items beneath the client. */
export function leaseStore(): LeaseStore {
  return new LeaseStore(dynamoDbClient(), lockTable());
}

export function uniqueName(prefix = "lock"): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

export const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `check` holds (polling every 10 ms), or fails after `ms`. */
export async function until(check: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}
