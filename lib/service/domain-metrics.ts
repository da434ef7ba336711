/**
 * Domain metrics in Lambda Powertools' Metrics (EMF): what the coordination primitives did,
 * beside the per-invocation `Requests` and `Duration` (middleware.ts). The lock function
 * counts grants, their waits, timeouts and refusals; a consumer Lambda counts each group's
 * lag and hole fills through `consumerMetrics`.
 *
 * Guarantees: each call adds its dimensions and values and publishes them in one
 * synchronous step, so invocations overlapping in one process never mix dimensions, and
 * nothing is left buffered for another publish to carry. Names: metric-names.ts.
 * Assumes: `metrics` was made by `observability` (namespace `Fencepost`, dimension
 * `Construct`) or is configured the same way by the caller.
 */
import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import type { ConsumerObserver } from "../ordering/consumer.js";
import { FENCEPOST_METRICS } from "./metric-names.js";

type Unit = (typeof MetricUnit)[keyof typeof MetricUnit];

/**
 * A Powertools Metrics for Fencepost's metrics of `service`: namespace `Fencepost`, and the
 * single default dimension `Construct` = env METRIC_DIMENSION (the construct sets it on its
 * functions and on the consumer `consumeWith` wires; "Fencepost" if unset). Powertools'
 * default `service` dimension is dropped, so the construct's `metric*` methods, which name
 * exact dimension sets, see what is reported.
 */
export function fencepostMetrics(service: string): Metrics {
  const metrics = new Metrics({ namespace: FENCEPOST_METRICS.namespace, serviceName: `fencepost-${service}` });
  metrics.clearDefaultDimensions();
  metrics.setDefaultDimensions({ [FENCEPOST_METRICS.construct]: process.env["METRIC_DIMENSION"] || "Fencepost" });
  return metrics;
}

/** Publishes `values` under `dimensions` (plus the instance's defaults) as one EMF line, timestamped `at`. */
export function publishMetrics(metrics: Metrics, dimensions: Record<string, string>, values: readonly (readonly [name: string, unit: Unit, value: number])[], at = Date.now()): void {
  metrics.addDimensions(dimensions);
  for (const [name, unit, value] of values) metrics.addMetric(name, unit, value);
  metrics.setTimestamp(at);
  metrics.publishStoredMetrics();
}

/** What the lock function reports about one acquire, tryAcquire or elect. */
export type GrantOutcome = { granted: true; waitedMs: number } | { granted: false; timedOut: boolean };

/**
 * Reports one grant request of the lock function: `Grants` and `GrantWait` when granted,
 * `LockTimeouts` when a wait ran out, `NotGranted` when a tryAcquire found the lock held;
 * per Function (`locks`) and Action.
 */
export function recordGrant(metrics: Metrics, action: "acquire" | "tryAcquire" | "elect", outcome: GrantOutcome): void {
  const dimensions = { [FENCEPOST_METRICS.function]: "locks", [FENCEPOST_METRICS.action]: action };
  const m = FENCEPOST_METRICS;
  if (outcome.granted) publishMetrics(metrics, dimensions, [[m.grants, MetricUnit.Count, 1], [m.grantWait, MetricUnit.Milliseconds, Math.max(0, Math.round(outcome.waitedMs))]]);
  else publishMetrics(metrics, dimensions, [[outcome.timedOut ? m.lockTimeouts : m.notGranted, MetricUnit.Count, 1]]);
}

/**
 * A ConsumerObserver that reports `ConsumerLag` (when each catch-up starts) and `HoleFills`
 * per Stream and Group, for a consumer Lambda (ConsumerGroup's `observer` option; with
 * FanOut, give each group the same observer). `BroadcastLog.metricConsumerLag` and
 * `metricHoleFills` read them back.
 *
 * @param metrics where to report; default `fencepostMetrics("consumer")` (namespace
 *   `Fencepost`, dimension `Construct` from env METRIC_DIMENSION, which `consumeWith` sets).
 * @example
 * ```ts
 * const observer = consumerMetrics();
 * const billing = new ConsumerGroup({ ...options, observer });
 * ```
 */
export function consumerMetrics(metrics: Metrics = fencepostMetrics("consumer")): ConsumerObserver {
  const m = FENCEPOST_METRICS;
  const dimensionsOf = (g: { stream: string; group: string }) => ({ [m.stream]: g.stream, [m.group]: g.group });
  return {
    catchingUp: (g, lag) => publishMetrics(metrics, dimensionsOf(g), [[m.consumerLag, MetricUnit.Count, lag]]),
    holesFilled: (g, count) => publishMetrics(metrics, dimensionsOf(g), [[m.holeFills, MetricUnit.Count, count]]),
  };
}
