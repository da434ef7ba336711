/** Clients for the shared local cloud the global setup started. */
import { DynamoDBClient, type DynamoDBClientConfig } from "@aws-sdk/client-dynamodb";
import { SQSClient } from "@aws-sdk/client-sqs";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { inject } from "vitest";

export function sharedCloud() {
  return inject("cloud");
}

export function dynamoDbClient(config: Partial<DynamoDBClientConfig> = {}): DynamoDBClient {
  const cloud = sharedCloud();
  return new DynamoDBClient({ endpoint: cloud.endpoints.dynamodb, region: cloud.region, credentials: cloud.credentials, ...config });
}

export function sqsClient(): SQSClient {
  const cloud = sharedCloud();
  return new SQSClient({ endpoint: cloud.endpoints.sqs, region: cloud.region, credentials: cloud.credentials });
}

/** The lock table's name on the shared cloud. */
export function lockTable(): string {
  const name = sharedCloud().tables["locks"];
  if (!name) throw new Error("the synthesized template has no table tagged fencepost:resource=locks");
  return name;
}

export function lambdaClient(): LambdaClient {
  const cloud = sharedCloud();
  if (!cloud.endpoints.lambda) throw new Error("the shared cloud serves no Lambda functions");
  return new LambdaClient({ endpoint: cloud.endpoints.lambda, region: cloud.region, credentials: cloud.credentials });
}

/** The lock function's name on the shared cloud. */
export function lockFunction(): string {
  const name = sharedCloud().functions["locks-function"];
  if (!name) throw new Error("the synthesized template has no function tagged fencepost:resource=locks-function");
  return name;
}

/** The broadcast log table's name on the shared cloud. */
export function logTable(): string {
  const name = sharedCloud().tables["log"];
  if (!name) throw new Error("the synthesized template has no table tagged fencepost:resource=log");
  return name;
}

/** The broadcast FIFO queue's URL on the shared cloud. */
export function broadcastQueueUrl(): string {
  const queue = sharedCloud().queues["broadcast"];
  if (!queue) throw new Error("the synthesized template has no queue tagged fencepost:resource=broadcast");
  return queue.url;
}

/** The two-phase commit decision log's name on the shared cloud. */
export function txnTable(): string {
  const name = sharedCloud().tables["txn"];
  if (!name) throw new Error("the synthesized template has no table tagged fencepost:resource=txn");
  return name;
}

/** The coordinator function's name on the shared cloud. */
export function txnFunction(): string {
  const name = sharedCloud().functions["txn-function"];
  if (!name) throw new Error("the synthesized template has no function tagged fencepost:resource=txn-function");
  return name;
}
