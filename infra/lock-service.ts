/**
 * The lock service construct: the coordination table and the function that serves locks
 * with fencing tokens, elections and uniqueness claims by direct invoke.
 *
 * Guarantees: the table is retained by default and keeps its logical ID across releases
 * (replacing it would lose the fencing-token floor, and tokens would go backwards); the
 * function may touch only the lock table (item actions and Scan) and its own log group;
 * every grant names its actions and resources, no wildcard.
 * Assumes: the function's handler is `functions/locks.ts` (see lib/locks/protocol.ts for
 * what it serves), and clients reach the table either directly (`grantLockClient`) or
 * through the function (`grantInvokeLocks`).
 */
import { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import { FENCEPOST_METRICS, FUNCTION_METRIC_NAMES } from "../lib/service/metric-names.js";
import type * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import type * as iam from "aws-cdk-lib/aws-iam";
import type { NodejsFunction } from "aws-cdk-lib/aws-lambda-nodejs";
import { Construct } from "constructs";
import { LOCK_ITEM_ACTIONS, LOCK_SERVICE_ACTIONS } from "./iam-actions.js";
import { createFunction, createFunctionAlarms, createTable, grantInvokeFunction, invocationMetric, unexpectedErrors, withKeyUse, type FencepostFunctionProps, type ResourceScopeProps } from "./internal.js";

/** The lock function's actions that grant (the `Action` dimension of its grant metrics). */
export type LockGrantAction = "acquire" | "tryAcquire" | "elect";

/** Settings of a LockService: those of its table and its function, and where they are created. */
export interface LockServiceProps extends FencepostFunctionProps, ResourceScopeProps {}

/** The lock table and the lock service function. */
export class LockService extends Construct {
  /**
   * The coordination table: lock items (lease, holder, fencing token), leader
   * elections, uniqueness claims, registers and counters. Partition key `pk`; items
   * with a `ttl` attribute (epoch seconds) are removed by DynamoDB TTL.
   */
  public readonly lockTable: dynamodb.Table;
  /**
   * The lock service: acquire, tryAcquire, heartbeat, release, inspect, list, elect,
   * leader and claims by direct invoke (see lib/locks/protocol.ts).
   */
  public readonly lockFunction: NodejsFunction;
  /** The lock function's error alarm (errors that are not typed answers) and throttle alarm, notifying `alarmTopic`. */
  public readonly alarms: cloudwatch.Alarm[];
  readonly #props: LockServiceProps;
  /** The value of the metrics' `Construct` dimension: the path of the construct holding the resources. */
  readonly #metricDimension: string;

  /** Declares the lock table and the lock function in `props.resourceScope` (default: this construct). */
  constructor(scope: Construct, id: string, props: LockServiceProps = {}) {
    super(scope, id);
    const resourceScope = props.resourceScope ?? this;
    this.#props = props;
    this.#metricDimension = resourceScope.node.path;
    this.lockTable = createTable(resourceScope, "LockTable", "locks", props);
    this.lockFunction = createFunction(resourceScope, "LockFunction", "locks-function", "functions/locks.ts", props, {
      description: "Fencepost lock service: locks with fencing tokens, elections, uniqueness claims",
      environment: { TABLE_NAME: this.lockTable.tableName },
      timeout: Duration.seconds(30),
    });
    this.lockTable.grant(this.lockFunction, ...LOCK_SERVICE_ACTIONS);
    this.alarms = createFunctionAlarms(resourceScope, [
      { id: "LockFunction", description: "The lock function", errors: unexpectedErrors(this.lockFunction, this.metricLockFunctionRejections(), "Lock function errors that are not typed answers"), throttles: this.metricLockFunctionThrottles() },
    ], props);
  }

  /** Lets `grantee` use the lock client directly against the lock table (item actions; no Scan, no admin). */
  public grantLockClient(grantee: iam.IGrantable): iam.Grant {
    return withKeyUse(this.lockTable.grant(grantee, ...LOCK_ITEM_ACTIONS), grantee, this.#props);
  }

  /**
   * Lets `grantee` invoke the lock service (the remote-mode LockClient, the CLI): this
   * function's unqualified ARN only, so the grant needs no wildcard.
   */
  public grantInvokeLocks(grantee: iam.IGrantable): iam.Grant {
    return grantInvokeFunction(grantee, this.lockFunction);
  }

  /**
   * The lock function's invocations that failed (its `Errors` metric): sum over 5
   * minutes unless `props` says otherwise.
   */
  public metricLockFunctionErrors(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.lockFunction.metricErrors(props);
  }

  /**
   * The lock function's invocations Lambda throttled (its `Throttles` metric): sum over
   * 5 minutes unless `props` says otherwise.
   */
  public metricLockFunctionThrottles(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.lockFunction.metricThrottles(props);
  }

  /**
   * The lock function's requests answered with a typed error (LockTimeoutError,
   * InvalidArgumentError, ...: `Requests` with Outcome `rejected`, reported by the function
   * in namespace `Fencepost`): sum over 5 minutes unless `props` says otherwise.
   */
  public metricLockFunctionRejections(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return invocationMetric(this.#metricDimension, FUNCTION_METRIC_NAMES.locks, FENCEPOST_METRICS.requests, "rejected", props);
  }

  /**
   * Grants the lock function made for `action` (`Grants`): sum over 5 minutes unless
   * `props` says otherwise.
   */
  public metricGrants(action: LockGrantAction = "acquire", props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.#grantMetric(FENCEPOST_METRICS.grants, action, { statistic: cloudwatch.Stats.SUM, ...props });
  }

  /**
   * Milliseconds granted `acquire`s (or `elect`s) waited in the lock function
   * (`GrantWait`): p99 over 5 minutes unless `props` says otherwise.
   */
  public metricGrantWait(action: "acquire" | "elect" = "acquire", props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.#grantMetric(FENCEPOST_METRICS.grantWait, action, { statistic: cloudwatch.Stats.p(99), ...props });
  }

  /**
   * `acquire`s (or `elect`s) that gave up waiting (`LockTimeouts`): sum over 5 minutes
   * unless `props` says otherwise. A rising count means contention beyond what callers wait.
   */
  public metricLockTimeouts(action: "acquire" | "elect" = "acquire", props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.#grantMetric(FENCEPOST_METRICS.lockTimeouts, action, { statistic: cloudwatch.Stats.SUM, ...props });
  }

  #grantMetric(metricName: string, action: LockGrantAction, props: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: FENCEPOST_METRICS.namespace,
      metricName,
      dimensionsMap: { [FENCEPOST_METRICS.construct]: this.#metricDimension, [FENCEPOST_METRICS.function]: FUNCTION_METRIC_NAMES.locks, [FENCEPOST_METRICS.action]: action },
      ...props,
    });
  }
}
