/**
 * The in-doubt metrics recovery reports, as one CloudWatch Embedded Metric Format line:
 * `InDoubtTransactions` (unfinished past their deadline) and `OldestInDoubtSeconds` (how
 * long past its deadline the oldest is), in namespace `Fencepost` with dimension `Construct`.
 */
import type { TransactionRecord } from "../txn/log.js";

/**
 * Where the in-doubt metrics are reported: the CloudWatch namespace, the dimension naming
 * the construct, and the two metric names. The Fencepost construct's `metric*` methods and
 * its in-doubt alarm read these, so what is reported and what is watched cannot drift.
 */
export const IN_DOUBT_METRICS = {
  namespace: "Fencepost",
  dimension: "Construct",
  inDoubtTransactions: "InDoubtTransactions",
  oldestInDoubtSeconds: "OldestInDoubtSeconds",
} as const;

export function inDoubtMetrics(inDoubt: readonly TransactionRecord[], construct: string, now = Date.now()): Record<string, unknown> {
  const oldest = inDoubt.reduce((min, r) => Math.min(min, r.deadline), now);
  return {
    _aws: {
      Timestamp: now,
      CloudWatchMetrics: [
        {
          Namespace: IN_DOUBT_METRICS.namespace,
          Dimensions: [[IN_DOUBT_METRICS.dimension]],
          Metrics: [
            { Name: IN_DOUBT_METRICS.inDoubtTransactions, Unit: "Count" },
            { Name: IN_DOUBT_METRICS.oldestInDoubtSeconds, Unit: "Seconds" },
          ],
        },
      ],
    },
    [IN_DOUBT_METRICS.dimension]: construct,
    [IN_DOUBT_METRICS.inDoubtTransactions]: inDoubt.length,
    [IN_DOUBT_METRICS.oldestInDoubtSeconds]: Math.max(0, Math.round((now - oldest) / 1000)),
  };
}
