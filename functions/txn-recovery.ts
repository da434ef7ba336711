/**
 * The scheduled recovery Lambda: finishes transactions stuck past their deadline, then
 * reports how many remain in doubt and the oldest one's age as CloudWatch metrics (in
 * Embedded Metric Format, so no PutMetricData permission is needed); the construct's
 * in-doubt alarm watches `OldestInDoubtSeconds`. No logic here beyond the report.
 *
 * Environment: TXN_TABLE (the decision log), METRIC_DIMENSION (the construct's path).
 */
import middy from "@middy/core";
import { Coordinator } from "../lib/txn/coordinator.js";
import { SCHEDULED_RECOVERY_BUDGET_MS } from "../lib/txn/defaults.js";
import { structuredLog, typedErrors } from "../lib/service/middleware.js";
import { inDoubtMetrics } from "../lib/service/txn-metrics.js";

const tableName = process.env["TXN_TABLE"];
if (!tableName) throw new Error("TXN_TABLE is not set: deploy this function with the Fencepost construct, which sets it");
const coordinator = new Coordinator({ tableName });

export const handler = middy<unknown, unknown>()
  .use(typedErrors())
  .use(structuredLog(() => ({ action: "recover" })))
  .handler(async () => {
    const report = await coordinator.recover({ graceMs: 10_000, limit: 1000, budgetMs: SCHEDULED_RECOVERY_BUDGET_MS });
    const remaining = await coordinator.listInDoubt({ limit: 1000 });
    process.stdout.write(`${JSON.stringify(inDoubtMetrics(remaining, process.env["METRIC_DIMENSION"] ?? "Fencepost"))}\n`);
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
