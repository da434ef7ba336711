/**
 * Provisioning follows the synthesized template: what infra/ declares is what the local
 * cloud creates, including resources added to a stack without touching lib/local.
 */
import { DescribeTableCommand, DescribeTimeToLiveCommand } from "@aws-sdk/client-dynamodb";
import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import { App, Duration, Stack } from "aws-cdk-lib";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as kms from "aws-cdk-lib/aws-kms";
import * as sns from "aws-cdk-lib/aws-sns";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { afterAll, describe, expect, it } from "vitest";
import { Fencepost } from "../../infra/fencepost.js";
import { synthesizeTemplate } from "../../infra/synth.js";
import { provisionTemplate, resourcesOfType, resourceRole, type CloudFormationTemplate } from "../../lib/local/index.js";
import { dynamoDbClient, sharedCloud, sqsClient } from "../support/cloud.js";

describe("provisioning from the synthesized template", () => {
  const ddb = dynamoDbClient();
  const queues = sqsClient();
  afterAll(() => {
    ddb.destroy();
    queues.destroy();
  });

  it("creates every table of the Fencepost stack with its key schema and TTL", async () => {
    const template = synthesizeTemplate();
    const tableIds = resourcesOfType(template, "AWS::DynamoDB::Table");
    expect(tableIds.length).toBeGreaterThan(0);
    for (const logicalId of tableIds) {
      const declared = template.Resources[logicalId]!.Properties as Record<string, unknown>;
      const role = resourceRole(template.Resources[logicalId]!) ?? logicalId;
      const name = sharedCloud().tables[role];
      expect(name, `table ${role} provisioned`).toBeDefined();
      const { Table } = await ddb.send(new DescribeTableCommand({ TableName: name }));
      expect(Table?.KeySchema).toEqual(declared["KeySchema"]);
      expect(Table?.BillingModeSummary?.BillingMode ?? "PROVISIONED").toBe(declared["BillingMode"] ?? "PROVISIONED");
      const ttl = declared["TimeToLiveSpecification"] as { AttributeName: string } | undefined;
      if (ttl) {
        const described = await ddb.send(new DescribeTimeToLiveCommand({ TableName: name }));
        expect(described.TimeToLiveDescription?.AttributeName).toBe(ttl.AttributeName);
        expect(described.TimeToLiveDescription?.TimeToLiveStatus).toBe("ENABLED");
      }
    }
  });

  it("provisions a table and FIFO queues added to a stack, with no change to the local cloud", async () => {
    // A user's stack embedding the construct plus resources of its own.
    const app = new App();
    const stack = new Stack(app, "Extended");
    new Fencepost(stack, "Fencepost");
    const dlq = new sqs.Queue(stack, "Dead", { fifo: true });
    new sqs.Queue(stack, "Orders", {
      fifo: true,
      contentBasedDeduplication: true,
      visibilityTimeout: Duration.seconds(45),
      deadLetterQueue: { queue: dlq, maxReceiveCount: 3 },
    });
    new dynamodb.Table(stack, "Extra", {
      partitionKey: { name: "id", type: dynamodb.AttributeType.STRING },
      sortKey: { name: "at", type: dynamodb.AttributeType.NUMBER },
      timeToLiveAttribute: "expires",
    });
    const template = app.synth().getStackByName("Extended").template as CloudFormationTemplate;
    const stackName = `Extended${Date.now()}`;
    const cloud = sharedCloud();
    const provisioned = await provisionTemplate({ template, dynamodb: ddb, sqs: queues, region: cloud.region, stackName });

    const extraId = resourcesOfType(template, "AWS::DynamoDB::Table").find((id) => id.startsWith("Extra"))!;
    const { Table } = await ddb.send(new DescribeTableCommand({ TableName: provisioned.tables[extraId] }));
    expect(Table?.KeySchema).toEqual([
      { AttributeName: "id", KeyType: "HASH" },
      { AttributeName: "at", KeyType: "RANGE" },
    ]);
    const ttl = await ddb.send(new DescribeTimeToLiveCommand({ TableName: provisioned.tables[extraId] }));
    expect(ttl.TimeToLiveDescription?.AttributeName).toBe("expires");
    expect(provisioned.tables["locks"]).toBe(`${stackName}-${resourcesOfType(template, "AWS::DynamoDB::Table").find((id) => id.includes("Lock"))}`);

    const ordersId = Object.keys(provisioned.queues).find((id) => id.startsWith("Orders"))!;
    const deadId = Object.keys(provisioned.queues).find((id) => id.startsWith("Dead"))!;
    const orders = provisioned.queues[ordersId]!;
    expect(orders.name.endsWith(".fifo")).toBe(true);
    const { Attributes } = await queues.send(new GetQueueAttributesCommand({ QueueUrl: orders.url, AttributeNames: ["All"] }));
    expect(Attributes?.["FifoQueue"]).toBe("true");
    expect(Attributes?.["ContentBasedDeduplication"]).toBe("true");
    expect(Attributes?.["VisibilityTimeout"]).toBe("45");
    expect(JSON.parse(Attributes?.["RedrivePolicy"] ?? "{}")).toMatchObject({ deadLetterTargetArn: provisioned.queues[deadId]!.arn, maxReceiveCount: 3 });

    // Idempotent: provisioning the same template again reuses what exists.
    const again = await provisionTemplate({ template, dynamodb: ddb, sqs: queues, region: cloud.region, stackName });
    expect(again.tables).toEqual(provisioned.tables);
    expect(again.queues).toEqual(provisioned.queues);
  });

  it("provisions the schedules' dead-letter queues, and a stack with a customer-managed key and an alarm topic, ignoring what it does not emulate", async () => {
    expect(Object.keys(sharedCloud().queues)).toEqual(expect.arrayContaining(["txn-recovery-dlq", "coordination-reaper-dlq"]));
    const app = new App({ context: { "aws:cdk:bundling-stacks": [] } });
    const stack = new Stack(app, "Hardened");
    new Fencepost(stack, "Fencepost", { encryptionKey: new kms.Key(stack, "Key"), alarmTopic: new sns.Topic(stack, "Alarms"), tracing: false });
    const template = app.synth().getStackByName("Hardened").template as CloudFormationTemplate;
    const stackName = `Hardened${Date.now()}`;
    const provisioned = await provisionTemplate({ template, dynamodb: ddb, sqs: queues, region: sharedCloud().region, stackName });
    expect(Object.keys(provisioned.tables).sort()).toEqual(["coordination", "locks", "log", "txn"]);
    expect(Object.keys(provisioned.queues).sort()).toEqual(["broadcast", "broadcast-dlq", "coordination-reaper-dlq", "txn-recovery-dlq"]);
    const { Table } = await ddb.send(new DescribeTableCommand({ TableName: provisioned.tables["locks"] }));
    expect(Table?.TableStatus).toBe("ACTIVE");
  });
});
