/** Clients for the shared local cloud the global setup started, and its resources by role. */
import { DynamoDBClient, type DynamoDBClientConfig } from "@aws-sdk/client-dynamodb";
import { SQSClient } from "@aws-sdk/client-sqs";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { inject } from "vitest";

export function sharedCloud() {
  return inject("cloud");
}

/** Endpoint, region and credentials of one service on the shared cloud. */
function configFor(endpoint: string | undefined) {
  const cloud = sharedCloud();
  if (!endpoint) throw new Error("the shared cloud serves no Lambda functions");
  return { endpoint, region: cloud.region, credentials: cloud.credentials };
}

export function dynamoDbClient(config: Partial<DynamoDBClientConfig> = {}): DynamoDBClient {
  return new DynamoDBClient({ ...configFor(sharedCloud().endpoints.dynamodb), ...config });
}

export function sqsClient(): SQSClient {
  return new SQSClient(configFor(sharedCloud().endpoints.sqs));
}

export function lambdaClient(): LambdaClient {
  return new LambdaClient(configFor(sharedCloud().endpoints.lambda));
}

/** The name (or, for queues, the URL) of the resource tagged `fencepost:resource=<role>`. */
function byRole(kind: "tables" | "functions" | "queues", role: string): string {
  const found = kind === "queues" ? sharedCloud().queues[role]?.url : sharedCloud()[kind][role];
  if (!found) throw new Error(`the synthesized template has no ${kind.slice(0, -1)} tagged fencepost:resource=${role}`);
  return found;
}

/** The lock table's name on the shared cloud. */
export const lockTable = () => byRole("tables", "locks");
/** The lock function's name on the shared cloud. */
export const lockFunction = () => byRole("functions", "locks-function");
/** The broadcast log table's name on the shared cloud. */
export const logTable = () => byRole("tables", "log");
/** The broadcast FIFO queue's URL on the shared cloud. */
export const broadcastQueueUrl = () => byRole("queues", "broadcast");
/** The two-phase commit decision log's name on the shared cloud. */
export const txnTable = () => byRole("tables", "txn");
/** The coordination table's name on the shared cloud. */
export const coordinationTable = () => byRole("tables", "coordination");
/** The coordinator function's name on the shared cloud. */
export const txnFunction = () => byRole("functions", "txn-function");
/** The scheduled recovery function's name on the shared cloud. */
export const txnRecoveryFunction = () => byRole("functions", "txn-recovery");
/** The coordination function's name on the shared cloud. */
export const coordinationFunction = () => byRole("functions", "coordination-function");
/** The scheduled session reaper's name on the shared cloud. */
export const coordinationReaperFunction = () => byRole("functions", "coordination-reaper");

/**
 * Runs a fixture script (test/fixtures/NAME.ts, through tsx) in a process of its own,
 * its DynamoDB client pointed at the shared cloud, with `env` added: for tests that need a
 * real process (to SIGKILL it, or to see it exit). Its stdout is piped, stderr inherited.
 */
export function spawnFixture(name: string, env: Record<string, string>) {
  const cloud = sharedCloud();
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;
  return spawn(process.execPath, ["--import", tsx, `test/fixtures/${name}.ts`], {
    env: {
      ...process.env,
      ...env,
      AWS_ENDPOINT_URL_DYNAMODB: cloud.endpoints.dynamodb,
      AWS_REGION: cloud.region,
      AWS_ACCESS_KEY_ID: cloud.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: cloud.credentials.secretAccessKey,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
}
