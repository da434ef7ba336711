/** Input that could have been checked is refused with InvalidArgumentError naming the field, never a raw AWS error, and nothing is written. */
import { describe, expect, it } from "vitest";
import { Coordinator, DynamoDbParticipant, InvalidArgumentError, branch } from "../../lib/index.js";
import { dynamoDbClient, txnTable } from "../support/cloud.js";
import { newLockClient, uniqueName } from "../support/locks.js";

const field = async (promise: Promise<unknown>) => {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(InvalidArgumentError);
  return (err as InvalidArgumentError).field;
};

describe("bad input", () => {
  it("refuses a fencing token or a duration no number type can carry", async () => {
    const { client } = newLockClient();
    expect(await field(client.release(uniqueName(), 1e308))).toBe("fencingToken");
    const coordinator = new Coordinator({ tableName: txnTable(), dynamodb: dynamoDbClient() });
    expect(await field(coordinator.recover({ graceMs: 1e308 }))).toBe("graceMs");
  });

  it("refuses fast-path writes DynamoDB cannot run (a missing table, a wrong key attribute), writing nothing", async () => {
    const dynamodb = dynamoDbClient();
    const coordinator = new Coordinator({ tableName: txnTable(), dynamodb });
    const txId = uniqueName("tx");
    const missing = new DynamoDbParticipant({ tableName: `no-such-table-${txId}`, dynamodb });
    expect(await field(coordinator.run(txId, [branch(missing, [{ type: "put", key: { pk: "a" }, item: { n: 1 } }])]))).toBe("branches");
    const wrongKey = new DynamoDbParticipant({ tableName: txnTable(), dynamodb });
    expect(await field(coordinator.run(`${txId}-2`, [branch(wrongKey, [{ type: "update", key: { notTheKey: "a" }, add: { n: 1 } }])]))).toBe("branches");
    expect(await coordinator.status(txId)).toBeUndefined();
  });

  it("refuses an operator's abort of a transaction that was never recorded", async () => {
    const coordinator = new Coordinator({ tableName: txnTable(), dynamodb: dynamoDbClient() });
    const txId = uniqueName("never");
    expect(await field(coordinator.override(txId, { action: "abort", operator: "ops", reason: "typo test" }))).toBe("txId");
    expect(await coordinator.status(txId)).toBeUndefined();
  });
});
