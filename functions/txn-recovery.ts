/**
 * The scheduled recovery Lambda: finishes transactions stuck past their deadline, then
 * reports how many remain in doubt and the oldest one's age as CloudWatch metrics (Powertools
 * metrics, in Embedded Metric Format, so no PutMetricData permission is needed); the construct's
 * in-doubt alarm watches `OldestInDoubtSeconds`. No logic here beyond the report.
 *
 * Environment: TXN_TABLE (the decision log), METRIC_DIMENSION (the construct's path), POWERTOOLS_* (middleware.ts `observability`).
 */
import middy from "@middy/core";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { SQSClient } from "@aws-sdk/client-sqs";
import { Coordinator } from "../lib/txn/coordinator.js";
import { SCHEDULED_RECOVERY_BUDGET_MS } from "../lib/txn/defaults.js";
import { invocationLog, observability, powertools, typedErrors } from "../lib/service/middleware.js";
import { publishInDoubtMetrics } from "../lib/service/txn-metrics.js";

const tableName = process.env["TXN_TABLE"];
if (!tableName) throw new Error("TXN_TABLE is not set: deploy this function with the Fencepost construct, which sets it");
const tools = observability("txn-recovery");
const { tracer } = tools;
const coordinator = new Coordinator({ tableName, dynamodb: tracer.captureAWSv3Client(new DynamoDBClient({})), sqs: tracer.captureAWSv3Client(new SQSClient({})), lambda: tracer.captureAWSv3Client(new LambdaClient({})) });

export const handler = middy<unknown, unknown>()
  .use(powertools(tools))
  .use(typedErrors())
  .use(invocationLog(tools, { actions: ["recover"], describe: () => ({ action: "recover" }) }))
  .handler(async () => {
    const report = await coordinator.recover({ graceMs: 10_000, limit: 1000, budgetMs: SCHEDULED_RECOVERY_BUDGET_MS });
    const remaining = await coordinator.listInDoubt({ limit: 1000 });
    publishInDoubtMetrics(tools.metrics, remaining);
    return {
      examined: report.examined,
      aborted: report.aborted,
      redriven: report.redriven,
      completed: report.completed,
      stillInDoubt: remaining.length,
      truncated: report.truncated,
      transactions: report.transactions.map((t) => ({ txId: t.txId, action: t.action, pending: t.pending })),
    };
  });
