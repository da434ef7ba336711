/**
 * The in-doubt metrics recovery reports, with Lambda Powertools metrics as one CloudWatch
 * Embedded Metric Format line: `InDoubtTransactions` (unfinished past their deadline) and
 * `OldestInDoubtSeconds` (how long past its deadline the oldest is), in namespace
 * `Fencepost` with the single dimension `Construct` (what the in-doubt alarm watches).
 */
import { MetricUnit, type Metrics } from "@aws-lambda-powertools/metrics";
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

/** The two in-doubt figures of `inDoubt` at `now`: how many, and the oldest one's seconds past its deadline (0 if none). */
export function inDoubtFigures(inDoubt: readonly Pick<TransactionRecord, "deadline">[], now = Date.now()): { InDoubtTransactions: number; OldestInDoubtSeconds: number } {
  const oldest = inDoubt.reduce((min, r) => Math.min(min, r.deadline), now);
  return {
    [IN_DOUBT_METRICS.inDoubtTransactions]: inDoubt.length,
    [IN_DOUBT_METRICS.oldestInDoubtSeconds]: Math.max(0, Math.round((now - oldest) / 1000)),
  };
}

/**
 * Publishes the in-doubt figures at once, as their own EMF line: `metrics` must carry only
 * the default dimension `Construct` (middleware.ts `observability` sets it up so), and
 * holds no other metric when this is called.
 */
export function publishInDoubtMetrics(metrics: Metrics, inDoubt: readonly Pick<TransactionRecord, "deadline">[], now = Date.now()): void {
  const figures = inDoubtFigures(inDoubt, now);
  metrics.addMetric(IN_DOUBT_METRICS.inDoubtTransactions, MetricUnit.Count, figures.InDoubtTransactions);
  metrics.addMetric(IN_DOUBT_METRICS.oldestInDoubtSeconds, MetricUnit.Seconds, figures.OldestInDoubtSeconds);
  metrics.publishStoredMetrics();
}
