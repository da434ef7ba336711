/**
 * The local Lambda runtime beyond the lock function: an SQS FIFO event source (Lambda's
 * record shape, batch item failures, FIFO order kept behind a failure) and a schedule,
 * on a stack extended with a queue, a function and a rule.
 */
import { GetItemCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { SendMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import { App, Duration, Stack } from "aws-cdk-lib";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { SqsEventSource } from "aws-cdk-lib/aws-lambda-event-sources";
import { NodejsFunction } from "aws-cdk-lib/aws-lambda-nodejs";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Fencepost, HANDLER_METADATA } from "../../infra/fencepost.js";
import { rateMs } from "../../lib/local/lambda.js";
import { startLocalCloud, type CloudFormationTemplate, type LocalCloud } from "../../lib/local/index.js";
import { Coordinator, DynamoDbParticipant, LambdaParticipant, branch } from "../../lib/index.js";
import { invokeJson } from "../../lib/internal/lambda.js";
import { LambdaClient } from "@aws-sdk/client-lambda";

function extendedTemplate(): CloudFormationTemplate {
  const app = new App({ context: { "aws:cdk:bundling-stacks": [] } });
  const stack = new Stack(app, "Extended");
  const fencepost = new Fencepost(stack, "Fencepost");
  // Short enough that a failed message comes back within the test, long enough that a slow
  // invocation on a loaded machine is not redelivered while it runs: as on AWS, the queue's
  // visibility timeout is at least the function's timeout, and a cold start counts for neither.
  const queue = new sqs.Queue(stack, "Inbox", { fifo: true, contentBasedDeduplication: true, visibilityTimeout: Duration.seconds(8) });
  const fn = new NodejsFunction(stack, "Recorder", {
    entry: "test/fixtures/recording-handler.ts",
    runtime: lambda.Runtime.NODEJS_22_X,
    timeout: Duration.seconds(8),
    environment: { TABLE_NAME: fencepost.lockTable.tableName },
  });
  (fn.node.defaultChild as lambda.CfnFunction).addMetadata(HANDLER_METADATA, "test/fixtures/recording-handler.ts");
  fn.addEventSource(new SqsEventSource(queue, { batchSize: 10, reportBatchItemFailures: true }));
  const participant = new NodejsFunction(stack, "RemoteParticipant", {
    entry: "test/fixtures/participant-handler.ts",
    runtime: lambda.Runtime.NODEJS_22_X,
    environment: { TABLE_NAME: fencepost.lockTable.tableName, TXN_TABLE: fencepost.txnTable.tableName },
  });
  (participant.node.defaultChild as lambda.CfnFunction).addMetadata(HANDLER_METADATA, "test/fixtures/participant-handler.ts");
  fencepost.addParticipant(participant);
  new events.Rule(stack, "Tick", { schedule: events.Schedule.rate(Duration.minutes(1)), targets: [new targets.LambdaFunction(fn, { event: events.RuleTargetInput.fromObject({ scheduled: true }) })] });
  return app.synth().getStackByName("Extended").template as CloudFormationTemplate;
}

let cloud: LocalCloud;
let db: DynamoDBClient;

beforeAll(async () => {
  // rate(1 minute) fires every 200 ms here.
  cloud = await startLocalCloud({ template: extendedTemplate(), stackName: "Extended", scheduleTimeScale: 300, functionLog: () => undefined });
  db = new DynamoDBClient(cloud.clientConfig("dynamodb"));
});
afterAll(async () => {
  db?.destroy();
  await cloud?.stop();
});

async function deliveries(body: string): Promise<{ deliveries: number; attributes: Record<string, string> }> {
  const { Item } = await db.send(new GetItemCommand({ TableName: cloud.tables["locks"]!, Key: { pk: { S: `fixture#${body}` } }, ConsistentRead: true }));
  const attributes = Object.fromEntries(Object.entries(Item ?? {}).flatMap(([k, v]) => (v.S !== undefined ? [[k, v.S]] : [])));
  return { deliveries: Number(Item?.["deliveries"]?.N ?? 0), attributes };
}

const until = async (check: () => Promise<boolean>, ms = 10_000) => {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
};

describe("local Lambda event sources and schedules", () => {
  it("delivers FIFO messages in Lambda's record shape, once each, and holds a group behind a failed message", async () => {
    const client = new SQSClient(cloud.clientConfig("sqs"));
    const url = Object.entries(cloud.queues).find(([key]) => key.startsWith("Inbox"))![1].url;
    for (const body of ["a-1", "a-2", "fail-a-3", "a-4"]) await client.send(new SendMessageCommand({ QueueUrl: url, MessageBody: body, MessageGroupId: "a" }));
    for (const body of ["b-1", "b-2"]) await client.send(new SendMessageCommand({ QueueUrl: url, MessageBody: body, MessageGroupId: "b" }));
    expect(await until(async () => (await deliveries("b-2")).deliveries > 0 && (await deliveries("fail-a-3")).deliveries >= 2, 60_000)).toBe(true);
    for (const body of ["a-1", "a-2", "b-1", "b-2"]) expect((await deliveries(body)).deliveries, body).toBe(1);
    expect((await deliveries("a-1")).attributes).toMatchObject({ eventSource: "aws:sqs", group: "a" });
    expect(Number((await deliveries("a-1")).attributes["sequenceNumber"])).toBeGreaterThan(0);
    // The failed message is redelivered after its visibility timeout; the one behind it in its group never overtakes it.
    expect((await deliveries("a-4")).deliveries).toBe(0);
    client.destroy();
  }, 90_000);

  it("runs rate schedules with the rule's input", async () => {
    expect(await until(async () => (await deliveries("schedule")).deliveries >= 2, 5000)).toBe(true);
  });

  it("runs two-phase commit with a participant behind a Lambda function, from the library and through the coordinator function", async () => {
    const lambdaClient = new LambdaClient(cloud.clientConfig("lambda"));
    const fn = Object.entries(cloud.functions).find(([key]) => key.startsWith("RemoteParticipant"))![1];
    const coordinator = new Coordinator({ tableName: cloud.tables["txn"]!, dynamodb: db, lambda: lambdaClient });
    const remote = new LambdaParticipant(fn, { lambda: lambdaClient });
    const accounts = new DynamoDbParticipant({ tableName: cloud.tables["locks"]!, dynamodb: db });
    const stamp = Date.now().toString(36);
    const put = (pk: string) => [{ type: "put" as const, key: { pk }, item: { v: 1 } }];
    expect(await coordinator.run(`remote-ok-${stamp}`, [branch(remote, {}), branch(accounts, put(`r1-${stamp}`))])).toMatchObject({ outcome: "committed", path: "protocol" });
    const refused = await coordinator.run(`remote-no-${stamp}`, [branch(remote, { refuse: true }), branch(accounts, put(`r2-${stamp}`))]);
    expect(refused).toMatchObject({ outcome: "aborted", reason: "refused by the remote participant" });
    const hold = async (txId: string) => (await db.send(new GetItemCommand({ TableName: cloud.tables["locks"]!, Key: { pk: { S: `remote-hold#${txId}` } }, ConsistentRead: true }))).Item?.["state"]?.S;
    expect(await hold(`remote-ok-${stamp}`)).toBe("applied");
    // The same through the coordinator function, naming the participant by id.
    const viaService = await invokeJson(lambdaClient, cloud.functions["txn-function"]!, { action: "run", txId: `remote-svc-${stamp}`, branches: [{ participant: `lambda:${fn}`, input: {} }] });
    expect(viaService).toMatchObject({ outcome: "committed", path: "protocol" });
    expect(await hold(`remote-svc-${stamp}`)).toBe("applied");
    lambdaClient.destroy();
  });

  it("parses rate expressions and refuses others", () => {
    expect(rateMs("rate(5 minutes)")).toBe(300_000);
    expect(rateMs("rate(1 hour)")).toBe(3_600_000);
    expect(rateMs("cron(0 12 * * ? *)")).toBeUndefined();
  });
});
