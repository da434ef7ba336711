/**
 * A scripted two-phase commit scene on the shared local cloud: one plain client (`db`),
 * clients of their own for coordinators whose requests a test scripts faults into, and
 * accounts on the lock table. Call `txnScene(tag)` at the top of a test file: it registers
 * the clients' set-up and tear-down.
 */
import { GetItemCommand, PutItemCommand, type DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { SQSClient } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll } from "vitest";
import { Coordinator, DynamoDbParticipant, type CoordinatorOptions, type DynamoWrite } from "../../lib/index.js";
import { DecisionLog } from "../../lib/advanced.js";
import type { CoordinatorHooks } from "../../lib/txn/coordinator.js";
import { PhaseTwo } from "../../lib/txn/phase-two.js";
import { ParticipantRegistry } from "../../lib/txn/registry.js";
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
    /** A coordinator that always takes the protocol path (`hooks`: crash seams, negative controls). */
    protocol: (client: DynamoDBClient, extra: Partial<CoordinatorOptions> = {}, hooks: CoordinatorHooks = {}) => new Coordinator({ tableName: txnTable(), dynamodb: client, fastPath: false, timeoutMs: 5000, ...extra }, hooks),
    /** The decision log on `client`, as a coordinator hands it to participants (`TxContext.decisions`). */
    decisionsOn: (client: DynamoDBClient) => new DecisionLog(client, txnTable()),
    /** Phase two on `client`, as a coordinator or recovery drives a logged decision (built-in participants only). */
    phaseTwoOn: (client: DynamoDBClient) =>
      new PhaseTwo({ log: new DecisionLog(client, txnTable()), registry: new ParticipantRegistry({ tableName: txnTable(), dynamodb: client, sqs: new SQSClient({}), lambda: new LambdaClient({}) }) }),
    accountsOn: (client: DynamoDBClient, label?: string) => new DynamoDbParticipant({ tableName: lockTable(), dynamodb: client, ...(label ? { label } : {}) }),
  };
}
