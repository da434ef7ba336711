/**
 * The in-doubt metrics recovery reports, as one CloudWatch Embedded Metric Format line:
 * `InDoubtTransactions` (unfinished past their deadline) and `OldestInDoubtSeconds` (how
 * long past its deadline the oldest is), in namespace `Fencepost` with dimension `Construct`.
 */
import type { TransactionRecord } from "../txn/log.js";

export function inDoubtMetrics(inDoubt: readonly TransactionRecord[], construct: string, now = Date.now()): Record<string, unknown> {
  const oldest = inDoubt.reduce((min, r) => Math.min(min, r.deadline), now);
  return {
    _aws: {
      Timestamp: now,
      CloudWatchMetrics: [
        {
          Namespace: "Fencepost",
          Dimensions: [["Construct"]],
          Metrics: [
            { Name: "InDoubtTransactions", Unit: "Count" },
            { Name: "OldestInDoubtSeconds", Unit: "Seconds" },
          ],
        },
      ],
    },
    Construct: construct,
    InDoubtTransactions: inDoubt.length,
    OldestInDoubtSeconds: Math.max(0, Math.round((now - oldest) / 1000)),
  };
}
