/** The embedded local cloud a benchmark runs on, and DynamoDB clients whose requests are counted. */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { RequestCounter } from "../lib/check/middleware.js";
import { synthesizeTemplate } from "../infra/synth.js";
import { startLocalCloud, type LocalCloud } from "../lib/local/index.js";

/** Starts the local cloud (DynamoDB Local, the SQS emulator; functions only if asked), runs `bench`, stops the cloud and exits. */
export async function withLocalCloud(bench: (cloud: LocalCloud) => Promise<void>, options: { functions?: boolean } = {}): Promise<never> {
  process.stderr.write("starting the local cloud...\n");
  const cloud = await startLocalCloud({ template: synthesizeTemplate(), functions: options.functions ?? false });
  try {
    await bench(cloud);
  } finally {
    await cloud.stop();
  }
  process.exit(0);
}

/** A DynamoDB client of the local cloud whose every request (each attempt) `requests` counts. */
export function countedDynamoDb(cloud: LocalCloud, requests: RequestCounter): DynamoDBClient {
  const dynamodb = new DynamoDBClient(cloud.clientConfig("dynamodb"));
  requests.attach(dynamodb);
  return dynamodb;
}
