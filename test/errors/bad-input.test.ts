/** Input that could have been checked is refused with InvalidArgumentError naming the field, never a raw AWS error, and nothing is written. */
import { describe, expect, it } from "vitest";
import { Claims, Coordinator, DynamoDbParticipant, InvalidArgumentError, branch } from "../../lib/index.js";
import { dynamoDbClient, lockTable, txnTable } from "../support/cloud.js";
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

  it("refuses a fast-path condition DynamoDB cannot parse, and runs nothing", async () => {
    const dynamodb = dynamoDbClient();
    const coordinator = new Coordinator({ tableName: txnTable(), dynamodb });
    const txId = uniqueName("tx");
    const participant = new DynamoDbParticipant({ tableName: txnTable(), dynamodb });
    const garbage = [{ type: "put" as const, key: { pk: `item-${txId}` }, item: { n: 1 }, condition: { expression: "this is ((( not a condition" } }];
    expect(await field(coordinator.run(txId, [branch(participant, garbage)]))).toBe("branches");
    expect(await coordinator.status(txId)).toBeUndefined();
  });

  it("refuses a claim value longer than a DynamoDB key may be, counted in UTF-8 bytes, before any request", async () => {
    const claims = new Claims({ tableName: lockTable(), dynamodb: dynamoDbClient() });
    const value = "é".repeat(1100); // 1,100 characters, 2,200 bytes as UTF-8: over DynamoDB's 2,048-byte key
    expect(await field(claims.claim("emails", value, "owner-1"))).toBe("value");
    expect(await field(claims.claim("emails", "ok@example.com", "x".repeat(600)))).toBe("owner");
  });

  it("refuses an operator's abort of a transaction that was never recorded", async () => {
    const coordinator = new Coordinator({ tableName: txnTable(), dynamodb: dynamoDbClient() });
    const txId = uniqueName("never");
    expect(await field(coordinator.override(txId, { action: "abort", operator: "ops", reason: "typo test" }))).toBe("txId");
    expect(await coordinator.status(txId)).toBeUndefined();
  });
});
