/**
 * A scripted two-phase commit scene on the shared local cloud: one plain client (`db`),
 * clients of their own for coordinators whose requests a test scripts faults into, and
 * accounts on the lock table. Call `txnScene(tag)` at the top of a test file: it registers
 * the clients' set-up and tear-down.
 */
import { GetItemCommand, PutItemCommand, type DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll } from "vitest";
import { Coordinator, DynamoDbParticipant, type CoordinatorOptions, type DynamoWrite } from "../../lib/index.js";
import { dynamoDbClient, lockTable, txnTable } from "./cloud.js";

export function txnScene(tag: string) {
  const run = Date.now().toString(36);
  let n = 0;
  let db!: DynamoDBClient;
  const clients: DynamoDBClient[] = [];
  beforeAll(() => {
    db = dynamoDbClient();
  });
  afterAll(() => {
    for (const c of [db, ...clients]) c.destroy();
  });
  const item = async (key: string) => (await db.send(new GetItemCommand({ TableName: lockTable(), Key: { pk: { S: key } }, ConsistentRead: true }))).Item;
  return {
    /** The plain client (no scripted faults). */
    get db() {
      return db;
    },
    /** A unique name for this file's items and transactions. */
    fresh: (what: string) => `${tag}${run}-${what}-${n++}`,
    /** Recovery limited to this file's transactions. */
    mine: { prefix: `${tag}${run}-` },
    /** A client of its own, so faults scripted on it touch one coordinator only. */
    ownClient(): DynamoDBClient {
      const c = dynamoDbClient();
      clients.push(c);
      return c;
    },
    item,
    async account(key: string): Promise<{ balance: number | undefined; locked: string | undefined }> {
      const Item = await item(key);
      return { balance: Item?.["balance"]?.N === undefined ? undefined : Number(Item["balance"].N), locked: Item?.["fp_tx"]?.S };
    },
    open: async (key: string, amount: number) => void (await db.send(new PutItemCommand({ TableName: lockTable(), Item: { pk: { S: key }, balance: { N: String(amount) } } }))),
    credit: (key: string, amount: number): DynamoWrite => ({ type: "update", key: { pk: key }, add: { balance: amount } }),
    /** A coordinator that always takes the protocol path. */
    protocol: (client: DynamoDBClient, extra: Partial<CoordinatorOptions> = {}) => new Coordinator({ tableName: txnTable(), dynamodb: client, fastPath: false, timeoutMs: 5000, ...extra }),
    accountsOn: (client: DynamoDBClient, label?: string) => new DynamoDbParticipant({ tableName: lockTable(), dynamodb: client, ...(label ? { label } : {}) }),
  };
}
