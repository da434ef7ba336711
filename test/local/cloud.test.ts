/**
 * The local cloud's lifecycle: several per process, nothing left running after stop()
 * or after its process is killed, and one clear line when Java is missing.
 */
import { ListTablesCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { CreateQueueCommand, GetQueueUrlCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { describe, expect, it } from "vitest";
import { synthesizeTemplate } from "../../infra/synth.js";
import { LocalCloudError, startLocalCloud } from "../../lib/local/index.js";
import { sharedCloud } from "../support/cloud.js";

async function answers(endpoint: string): Promise<boolean> {
  const client = new DynamoDBClient({ endpoint, region: "us-east-1", credentials: { accessKeyId: "x", secretAccessKey: "x" }, maxAttempts: 1 });
  try {
    await client.send(new ListTablesCommand({}));
    return true;
  } catch {
    return false;
  } finally {
    client.destroy();
  }
}

async function eventually(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return check();
}

describe.skipIf(process.env["AWS_ENDPOINT_URL"])("the embedded local cloud", () => {
  it("shows its tables to any credentials (one shared DynamoDB database), as the printed export line promises", async () => {
    const cloud = sharedCloud();
    const stranger = new DynamoDBClient({ endpoint: cloud.endpoints.dynamodb, region: cloud.region, credentials: { accessKeyId: "AnotherUser42", secretAccessKey: "x" } });
    const { TableNames } = await stranger.send(new ListTablesCommand({}));
    stranger.destroy();
    expect(TableNames).toEqual(expect.arrayContaining(Object.values(cloud.tables)));
  });

  it("hands out queue URLs on 127.0.0.1 that a client with default settings can use", async () => {
    const cloud = sharedCloud();
    for (const queue of Object.values(cloud.queues)) expect(new URL(queue.url).hostname).toBe("127.0.0.1");
    // useQueueUrlAsEndpoint is on by default: the SDK sends to the queue URL's own host.
    const sqs = new SQSClient({ endpoint: cloud.endpoints.sqs, region: cloud.region, credentials: cloud.credentials });
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: `urls-${Date.now()}` }));
    expect(new URL(QueueUrl!).hostname).toBe("127.0.0.1");
    await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: "hello" }));
    const { Messages } = await sqs.send(new ReceiveMessageCommand({ QueueUrl, WaitTimeSeconds: 1 }));
    expect(Messages?.[0]?.Body).toBe("hello");
    const again = await sqs.send(new GetQueueUrlCommand({ QueueName: new URL(QueueUrl!).pathname.split("/").pop()! }));
    expect(again.QueueUrl).toBe(QueueUrl);
    sqs.destroy();
  });

  it("starts a second cloud in the same process on other ports, and stop() ends its emulators", async () => {
    const second = await startLocalCloud({ template: synthesizeTemplate() });
    expect(second.embedded).toBe(true);
    expect(second.endpoints.dynamodb).not.toBe(sharedCloud().endpoints.dynamodb);
    expect(second.endpoints.sqs).not.toBe(sharedCloud().endpoints.sqs);
    expect(second.tables["locks"]).toBeDefined();
    expect(await answers(second.endpoints.dynamodb)).toBe(true);
    await second.stop();
    await second.stop(); // idempotent
    expect(await answers(second.endpoints.dynamodb)).toBe(false);
    expect(await answers(sharedCloud().endpoints.dynamodb)).toBe(true);
  });

  it("leaves no DynamoDB Local running when its owning process is killed with SIGKILL", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "test/support/cloud-child.ts"], {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env },
    });
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once("line", resolve);
      child.once("exit", (code) => reject(new Error(`cloud child exited early with ${code}`)));
    });
    const { dynamodb } = JSON.parse(line) as { dynamodb: string };
    expect(await answers(dynamodb)).toBe(true);
    child.kill("SIGKILL");
    const gone = await eventually(async () => !(await answers(dynamodb)), 10_000);
    expect(gone).toBe(true);
  });

  it("says in one line what to install when Java is missing", async () => {
    const saved = process.env["JAVA_HOME"];
    process.env["JAVA_HOME"] = "/nonexistent-java-home";
    try {
      const err = await startLocalCloud({ template: synthesizeTemplate() }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LocalCloudError);
      expect((err as Error).message).toMatch(/needs Java 17 or newer.*install it/);
      expect((err as Error).message).not.toContain("\n");
    } finally {
      if (saved === undefined) delete process.env["JAVA_HOME"];
      else process.env["JAVA_HOME"] = saved;
    }
  });
});
