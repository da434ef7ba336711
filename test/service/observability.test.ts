/**
 * The functions' observability in Lambda Powertools' formats: the lock handler itself,
 * run in this process against the shared local cloud, writes one Powertools JSON log line
 * per invocation (action and name, outcome, level info / warn for a typed error / error
 * otherwise, the request id as correlation id, cold start) and one EMF line with
 * `Requests` and `Duration` per function, action and outcome, in namespace `Fencepost`
 * with dimension `Construct`. Recovery's in-doubt metrics keep the names, namespace and
 * single dimension the in-doubt alarm watches.
 */
import middy from "@middy/core";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { FencepostError } from "../../lib/errors.js";
import { FENCEPOST_METRICS, invocationLog, observability, powertools, typedErrors } from "../../lib/service/middleware.js";
import { IN_DOUBT_METRICS, publishInDoubtMetrics } from "../../lib/service/txn-metrics.js";
import { consumerMetrics } from "../../lib/service/domain-metrics.js";
import { lockTable, sharedCloud } from "../support/cloud.js";

type Line = Record<string, unknown>;

/** Runs `fn` and returns the JSON lines it wrote (Powertools writes through a Console on process.stdout and stderr). */
async function captured(fn: () => Promise<unknown>): Promise<Line[]> {
  const lines: Line[] = [];
  const capture = (chunk: string | Uint8Array) => {
    for (const text of String(chunk).split("\n")) if (text.trim()) lines.push(text.trim().startsWith("{") ? (JSON.parse(text) as Line) : { raw: text });
    return true;
  };
  const spies = [vi.spyOn(process.stdout, "write").mockImplementation(capture), vi.spyOn(process.stderr, "write").mockImplementation(capture)];
  try {
    await fn().catch(() => undefined);
  } finally {
    for (const spy of spies) spy.mockRestore();
  }
  return lines;
}

const context = (awsRequestId: string) => ({
  awsRequestId,
  functionName: "fencepost-test-fn",
  functionVersion: "$LATEST",
  invokedFunctionArn: "arn:aws:lambda:us-east-1:000000000000:function:fencepost-test-fn",
  memoryLimitInMB: "256",
  logGroupName: "/aws/lambda/fencepost-test-fn",
  logStreamName: "local",
  callbackWaitsForEmptyEventLoop: true,
  getRemainingTimeInMillis: () => 30_000,
});

const emf = (lines: Line[]) => lines.filter((l) => l["_aws"] !== undefined);
const logs = (lines: Line[]) => lines.filter((l) => l["message"] === "invocation");
const envBefore = { ...process.env };
afterEach(() => {
  process.env = { ...envBefore };
});

describe("the lock handler's log line and metrics", () => {
  let handler: (event: unknown, context: object) => Promise<unknown>;
  beforeAll(async () => {
    const cloud = sharedCloud();
    Object.assign(process.env, {
      TABLE_NAME: lockTable(),
      METRIC_DIMENSION: "Test/Fencepost",
      AWS_LAMBDA_INITIALIZATION_TYPE: "on-demand",
      AWS_ENDPOINT_URL_DYNAMODB: cloud.endpoints.dynamodb,
      AWS_REGION: cloud.region,
      AWS_ACCESS_KEY_ID: cloud.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: cloud.credentials.secretAccessKey,
    });
    ({ handler } = (await import("../../functions/locks.js")) as unknown as { handler: typeof handler });
  });

  it("logs an answered request at info with its action, name, correlation id and cold start, and counts it per action and outcome", async () => {
    const name = `obs-${Date.now().toString(36)}`;
    const lines = await captured(() => handler({ action: "inspect", name }, context("req-ok-1")));
    const [line] = logs(lines);
    expect(line).toMatchObject({
      level: "INFO",
      message: "invocation",
      service: "fencepost-locks",
      action: "inspect",
      name,
      outcome: "ok",
      correlation_id: "req-ok-1",
      function_request_id: "req-ok-1",
      cold_start: true,
    });
    expect(typeof line!["ms"]).toBe("number");
    expect(typeof line!["timestamp"]).toBe("string");
    const [perAction, perFunction] = emf(lines).filter((l) => l[FENCEPOST_METRICS.requests] !== undefined);
    expect(perAction).toMatchObject({ Construct: "Test/Fencepost", Function: "locks", Action: "inspect", Outcome: "ok", Requests: 1 });
    expect(perFunction).toMatchObject({ Construct: "Test/Fencepost", Function: "locks", Outcome: "ok", Requests: 1 });
    const shape = (dimensions: string[]) => ({
      CloudWatchMetrics: [{ Namespace: "Fencepost", Dimensions: [dimensions], Metrics: [{ Name: "Requests", Unit: "Count" }, { Name: "Duration", Unit: "Milliseconds" }] }],
    });
    expect(perAction!["_aws"]).toMatchObject(shape(["Construct", "Function", "Action", "Outcome"]));
    expect(perFunction!["_aws"]).toMatchObject(shape(["Construct", "Function", "Outcome"]));
    // Nothing but these JSON lines: no Powertools warnings.
    expect(lines.filter((l) => l["raw"] !== undefined || l["level"] === "WARN")).toEqual([]);
    // The first invocation of the process is a cold start, counted once.
    expect(emf(lines).find((l) => l["ColdStart"] === 1)).toMatchObject({ Construct: "Test/Fencepost" });
    const again = await captured(() => handler({ action: "inspect", name }, context("req-ok-2")));
    expect(logs(again)[0]).toMatchObject({ correlation_id: "req-ok-2", cold_start: false });
    expect(emf(again).filter((l) => l["ColdStart"] !== undefined)).toEqual([]);
  });

  it("logs bad input at warn with the typed error, and counts it as rejected under action 'unknown' when the action is not one of the function's", async () => {
    const lines = await captured(() => handler({ action: "acquire" }, context("req-bad-1")));
    expect(logs(lines)[0]).toMatchObject({ level: "WARN", action: "acquire", outcome: "rejected", errorType: "InvalidArgumentError", correlation_id: "req-bad-1" });
    expect(emf(lines).find((l) => l["Requests"] !== undefined)).toMatchObject({ Action: "acquire", Outcome: "rejected" });
    const unknown = await captured(() => handler({ action: "steal-everything" }, context("req-bad-2")));
    expect(logs(unknown)[0]).toMatchObject({ level: "WARN", action: "steal-everything", outcome: "rejected" });
    expect(emf(unknown).find((l) => l["Requests"] !== undefined)).toMatchObject({ Action: "unknown", Outcome: "rejected" });
  });
  it("counts a grant with its wait, a refused tryAcquire, and an acquire that timed out, per action", async () => {
    const name = `obs-grant-${Date.now().toString(36)}`;
    const granted = await captured(() => handler({ action: "acquire", name, owner: "alice", leaseMs: 60_000, waitMs: 1000 }, context("req-grant-1")));
    expect(emf(granted).find((l) => l[FENCEPOST_METRICS.grants] !== undefined)).toMatchObject({ Construct: "Test/Fencepost", Function: "locks", Action: "acquire", Grants: 1 });
    expect(emf(granted).find((l) => l[FENCEPOST_METRICS.grants] !== undefined)![FENCEPOST_METRICS.grantWait]).toEqual(expect.any(Number));
    const refused = await captured(() => handler({ action: "tryAcquire", name, owner: "bob", leaseMs: 60_000 }, context("req-grant-2")));
    expect(emf(refused).find((l) => l[FENCEPOST_METRICS.notGranted] !== undefined)).toMatchObject({ Function: "locks", Action: "tryAcquire", NotGranted: 1 });
    expect(emf(refused).filter((l) => l[FENCEPOST_METRICS.grants] !== undefined)).toEqual([]);
    const timedOut = await captured(() => handler({ action: "acquire", name, owner: "carol", leaseMs: 60_000, waitMs: 1 }, context("req-grant-3")));
    expect(logs(timedOut)[0]).toMatchObject({ outcome: "rejected", errorType: "LockTimeoutError" });
    expect(emf(timedOut).find((l) => l[FENCEPOST_METRICS.lockTimeouts] !== undefined)).toMatchObject({ Function: "locks", Action: "acquire", LockTimeouts: 1 });
    expect(emf(timedOut).find((l) => l[FENCEPOST_METRICS.lockTimeouts] !== undefined)!["_aws"]).toMatchObject({ CloudWatchMetrics: [{ Dimensions: [["Construct", "Function", "Action"]], Metrics: [{ Name: "LockTimeouts", Unit: "Count" }] }] });
  });
});

describe("consumerMetrics", () => {
  it("reports each catch-up's lag and each fill pass's holes per stream and group, one EMF line each", async () => {
    process.env["METRIC_DIMENSION"] = "Stack/Fencepost";
    const { metrics } = observability("consumer");
    const observer = consumerMetrics(metrics);
    const group = { stream: "orders", group: "billing" };
    const lines = await captured(async () => {
      observer.catchingUp!(group, 7);
      observer.holesFilled!(group, 25);
    });
    expect(lines).toEqual([
      expect.objectContaining({ Construct: "Stack/Fencepost", Stream: "orders", Group: "billing", ConsumerLag: 7 }),
      expect.objectContaining({ Construct: "Stack/Fencepost", Stream: "orders", Group: "billing", HoleFills: 25 }),
    ]);
    expect(lines[1]!["_aws"]).toMatchObject({ CloudWatchMetrics: [{ Namespace: "Fencepost", Dimensions: [["Construct", "Stream", "Group"]], Metrics: [{ Name: "HoleFills", Unit: "Count" }] }] });
  });
});

describe("invocationLog", () => {
  it("logs an unexpected error at error level with its stack, counted as a fault; a typed error passes through typedErrors in wire form", async () => {
    process.env["AWS_LAMBDA_INITIALIZATION_TYPE"] = "on-demand";
    const tools = observability("test");
    const handler = middy<unknown, unknown>()
      .use(powertools(tools))
      .use(typedErrors())
      .use(invocationLog(tools, { actions: ["boom", "answer"], describe: (e) => ({ action: (e as { action?: string }).action }) }))
      .handler(async (event) => {
        if ((event as { action: string }).action === "boom") throw new TypeError("a bug");
        throw new FencepostError("an answer");
      });
    const lines = await captured(() => handler({ action: "boom" }, context("req-fault") as never));
    expect(logs(lines)[0]).toMatchObject({ level: "ERROR", action: "boom", outcome: "fault", errorType: "TypeError", error: { name: "TypeError", message: "a bug" } });
    expect(emf(lines).find((l) => l["Requests"] !== undefined)).toMatchObject({ Function: "test", Action: "boom", Outcome: "fault" });
    let thrown: unknown;
    const answered = await captured(() => handler({ action: "answer" }, context("req-answer") as never).catch((err: unknown) => (thrown = err)));
    expect(thrown).toMatchObject({ name: "FencepostError", message: "an answer" });
    expect(logs(answered)[0]).toMatchObject({ level: "WARN", outcome: "rejected", errorType: "FencepostError" });
  });

  it("publishes recovery's in-doubt metrics in their own EMF line, with the single dimension the alarm watches", async () => {
    process.env["METRIC_DIMENSION"] = "Stack/Fencepost";
    const { metrics } = observability("txn-recovery");
    const now = 1_000_000_000;
    const lines = await captured(async () => publishInDoubtMetrics(metrics, [{ deadline: now - 90_000 }, { deadline: now - 5_000 }], now));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ Construct: "Stack/Fencepost", [IN_DOUBT_METRICS.inDoubtTransactions]: 2, [IN_DOUBT_METRICS.oldestInDoubtSeconds]: 90 });
    expect(lines[0]!["_aws"]).toMatchObject({
      CloudWatchMetrics: [{ Namespace: IN_DOUBT_METRICS.namespace, Dimensions: [[IN_DOUBT_METRICS.dimension]], Metrics: [{ Name: "InDoubtTransactions", Unit: "Count" }, { Name: "OldestInDoubtSeconds", Unit: "Seconds" }] }],
    });
    const none = await captured(async () => publishInDoubtMetrics(metrics, [], now));
    expect(none[0]).toMatchObject({ InDoubtTransactions: 0, OldestInDoubtSeconds: 0 });
  });
});
