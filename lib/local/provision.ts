/**
 * Provisioning the tables and queues of a synthesized template against any DynamoDB and
 * SQS endpoint (the embedded emulators, LocalStack, or AWS itself).
 *
 * Guarantees: every AWS::DynamoDB::Table and AWS::SQS::Queue is created with the key
 * schema, indexes, billing, TTL, FIFO, deduplication and redrive settings the template
 * declares; provisioning is idempotent (an existing table or queue is reused), so a
 * shared endpoint such as LocalStack can be provisioned by every test run. Encryption
 * settings (a customer-managed KMS key on a table or queue) are left out: the emulators
 * encrypt nothing, and the key itself is not provisioned. Other resource types (alarms,
 * topics, keys, log groups, roles) are not provisioned and not needed to serve the stack.
 * Assumes: physical names are not set in the template, or are unique on the endpoint.
 */
import {
  CreateTableCommand,
  DescribeTimeToLiveCommand,
  ResourceInUseException,
  UpdateTimeToLiveCommand,
  waitUntilTableExists,
  type CreateTableCommandInput,
  type DynamoDBClient,
} from "@aws-sdk/client-dynamodb";
import { CreateQueueCommand, GetQueueAttributesCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { TemplateError } from "../errors.js";
import {
  resolveIntrinsics,
  resourceRole,
  resourcesOfType,
  type CloudFormationTemplate,
  type ResolvedResource,
} from "./template.js";

export interface ProvisionedQueue {
  readonly name: string;
  readonly url: string;
  readonly arn: string;
}

export interface Provisioned {
  /** Table names keyed by `fencepost:resource` role (e.g. `locks`), else by logical id. */
  readonly tables: Record<string, string>;
  /** Queues keyed by `fencepost:resource` role, else by logical id. */
  readonly queues: Record<string, ProvisionedQueue>;
  /** Every provisioned resource by logical id: what Ref and Fn::GetAtt resolve to. */
  readonly resources: Record<string, ResolvedResource>;
}

export interface ProvisionOptions {
  template: CloudFormationTemplate;
  dynamodb: DynamoDBClient;
  sqs: SQSClient;
  region: string;
  accountId?: string;
  stackName?: string;
}

type Props = Record<string, unknown>;

/** Properties that name a KMS key (not provisioned locally, so unresolvable), by resource type. */
const ENCRYPTION_PROPERTIES: Record<string, readonly string[]> = {
  "AWS::DynamoDB::Table": ["SSESpecification"],
  "AWS::SQS::Queue": ["KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds"],
};

/** A resource's properties without its encryption settings (see ENCRYPTION_PROPERTIES). */
function withoutEncryption(type: string, properties: Props | undefined): Props {
  const kept = { ...(properties ?? {}) };
  for (const key of ENCRYPTION_PROPERTIES[type] ?? []) delete kept[key];
  return kept;
}

function tableInput(name: string, p: Props): CreateTableCommandInput {
  const billing = (p["BillingMode"] as string | undefined) ?? "PROVISIONED";
  const throughput = (t: unknown) =>
    billing === "PAY_PER_REQUEST" ? undefined : ((t as CreateTableCommandInput["ProvisionedThroughput"]) ?? { ReadCapacityUnits: 5, WriteCapacityUnits: 5 });
  const stream = p["StreamSpecification"] as { StreamViewType?: string } | undefined;
  const gsis = p["GlobalSecondaryIndexes"] as Array<Props> | undefined;
  return {
    TableName: name,
    KeySchema: p["KeySchema"] as CreateTableCommandInput["KeySchema"],
    AttributeDefinitions: p["AttributeDefinitions"] as CreateTableCommandInput["AttributeDefinitions"],
    BillingMode: billing as CreateTableCommandInput["BillingMode"],
    ProvisionedThroughput: throughput(p["ProvisionedThroughput"]),
    GlobalSecondaryIndexes: gsis?.map((g) => ({
      IndexName: g["IndexName"] as string,
      KeySchema: g["KeySchema"] as CreateTableCommandInput["KeySchema"],
      Projection: g["Projection"] as { ProjectionType: "ALL" },
      ProvisionedThroughput: throughput(g["ProvisionedThroughput"]),
    })),
    LocalSecondaryIndexes: p["LocalSecondaryIndexes"] as CreateTableCommandInput["LocalSecondaryIndexes"],
    StreamSpecification: stream?.StreamViewType
      ? { StreamEnabled: true, StreamViewType: stream.StreamViewType as "NEW_AND_OLD_IMAGES" }
      : undefined,
  };
}

async function provisionTable(dynamodb: DynamoDBClient, name: string, p: Props): Promise<void> {
  try {
    await dynamodb.send(new CreateTableCommand(tableInput(name, p)));
  } catch (err) {
    if (!(err instanceof ResourceInUseException)) throw err;
  }
  await waitUntilTableExists({ client: dynamodb, maxWaitTime: 60 }, { TableName: name });
  const ttl = p["TimeToLiveSpecification"] as { AttributeName?: string; Enabled?: boolean } | undefined;
  if (ttl?.Enabled && ttl.AttributeName) {
    const current = await dynamodb.send(new DescribeTimeToLiveCommand({ TableName: name }));
    if (current.TimeToLiveDescription?.AttributeName !== ttl.AttributeName) {
      await dynamodb.send(
        new UpdateTimeToLiveCommand({ TableName: name, TimeToLiveSpecification: { AttributeName: ttl.AttributeName, Enabled: true } }),
      );
    }
  }
}

const QUEUE_ATTRIBUTES = [
  "FifoQueue",
  "ContentBasedDeduplication",
  "DeduplicationScope",
  "FifoThroughputLimit",
  "VisibilityTimeout",
  "MessageRetentionPeriod",
  "DelaySeconds",
  "MaximumMessageSize",
  "ReceiveMessageWaitTimeSeconds",
  "RedrivePolicy",
  "RedriveAllowPolicy",
] as const;

function queueAttributes(p: Props): Record<string, string> {
  const attributes: Record<string, string> = {};
  for (const key of QUEUE_ATTRIBUTES) {
    const value = p[key];
    if (value === undefined) continue;
    attributes[key] = typeof value === "object" ? JSON.stringify(value) : String(value);
  }
  return attributes;
}

/** Creates every table and queue of `template` (idempotently) and says what each became. */
export async function provisionTemplate(options: ProvisionOptions): Promise<Provisioned> {
  const { template, dynamodb, sqs, region } = options;
  const stackName = options.stackName ?? "Fencepost";
  const accountId = options.accountId ?? "000000000000";
  const pseudo = {
    "AWS::Region": region,
    "AWS::AccountId": accountId,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": stackName,
  };
  const resources: Record<string, ResolvedResource> = {};
  const tables: Record<string, string> = {};
  const queues: Record<string, ProvisionedQueue> = {};
  const roleOrLogicalId = (logicalId: string) => resourceRole(template.Resources[logicalId]!) ?? logicalId;

  await Promise.all(
    resourcesOfType(template, "AWS::DynamoDB::Table").map(async (logicalId) => {
      const p = resolveIntrinsics(withoutEncryption("AWS::DynamoDB::Table", template.Resources[logicalId]!.Properties), resources, pseudo, logicalId) as Props;
      const name = (p["TableName"] as string | undefined) ?? `${stackName}-${logicalId}`;
      await provisionTable(dynamodb, name, p);
      const arn = `arn:aws:dynamodb:${region}:${accountId}:table/${name}`;
      resources[logicalId] = { ref: name, attributes: { Arn: arn } };
      tables[roleOrLogicalId(logicalId)] = name;
    }),
  );

  // Queues may refer to each other (redrive to a dead-letter queue): create in dependency order.
  let pending = resourcesOfType(template, "AWS::SQS::Queue");
  while (pending.length > 0) {
    const deferred: string[] = [];
    for (const logicalId of pending) {
      let p: Props;
      try {
        p = resolveIntrinsics(withoutEncryption("AWS::SQS::Queue", template.Resources[logicalId]!.Properties), resources, pseudo, logicalId) as Props;
      } catch (err) {
        if (err instanceof TemplateError) {
          deferred.push(logicalId);
          continue;
        }
        throw err;
      }
      const fifo = String(p["FifoQueue"]) === "true";
      const name = (p["QueueName"] as string | undefined) ?? `${stackName}-${logicalId}${fifo ? ".fifo" : ""}`;
      const { QueueUrl: url } = await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: queueAttributes(p) }));
      const attrs = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn"] }));
      const arn = attrs.Attributes?.["QueueArn"] ?? `arn:aws:sqs:${region}:${accountId}:${name}`;
      resources[logicalId] = { ref: url!, attributes: { Arn: arn, QueueName: name, QueueUrl: url! } };
      queues[roleOrLogicalId(logicalId)] = { name, url: url!, arn };
    }
    if (deferred.length === pending.length) {
      // Nothing progressed: report the first unresolvable reference as it is.
      resolveIntrinsics(withoutEncryption("AWS::SQS::Queue", template.Resources[deferred[0]!]!.Properties), resources, pseudo, deferred[0]);
    }
    pending = deferred;
  }
  return { tables, queues, resources };
}
