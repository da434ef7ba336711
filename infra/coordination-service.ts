/**
 * The coordination service construct: the table behind sessions, keys, watches, groups and
 * partition grants (lib/coordination), the function that serves it by direct invoke, and
 * the session reaper on a schedule.
 *
 * Guarantees: the table is retained by default; its items are keyed `pk` (S) and `sk` (S),
 * with DynamoDB TTL on `ttl` (the change log's retention, ended sessions). The functions
 * may touch only the coordination table (the coordination function: reads and a change's
 * item writes; the reaper: the same plus Scan, to find the namespaces with live sessions)
 * and their own log groups; no grant has a wildcard action. The reaper runs every
 * `sessionReaperInterval` with a 15-minute timeout, longer than the longest session ttl
 * (10 minutes), so a session whose owner stopped its keepalives and that no client
 * observes is expired within about its ttl plus the interval.
 * Assumes: the handlers are `functions/coordination.ts` and `functions/coordination-reaper.ts`
 * (see lib/coordination/protocol.ts and lib/service/coordination-reaper.ts); clients reach
 * the table directly (`grantCoordination`, which sessions need) or the function
 * (`grantInvokeCoordination`).
 */
import { Duration } from "aws-cdk-lib";
import type * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import type * as iam from "aws-cdk-lib/aws-iam";
import type { NodejsFunction } from "aws-cdk-lib/aws-lambda-nodejs";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import { FENCEPOST_METRICS, FUNCTION_METRIC_NAMES } from "../lib/service/metric-names.js";
import { Construct } from "constructs";
import { COORDINATION_ITEM_ACTIONS, COORDINATION_REAPER_ACTIONS, COORDINATION_SERVICE_ACTIONS } from "./iam-actions.js";
import { createFunction, createFunctionAlarms, createTable, grantInvokeFunction, invocationMetric, scheduleFunction, unexpectedErrors, withKeyUse, type FencepostFunctionProps, type ResourceScopeProps } from "./internal.js";

/** Settings of a CoordinationService: those of its table and functions, the reaper's schedule, and where they are created. */
export interface CoordinationServiceProps extends FencepostFunctionProps, ResourceScopeProps {
  /**
   * How often the session reaper runs. A session nobody observes is expired within about
   * its ttl plus this; runs overlap only when a session's ttl is longer than this.
   *
   * @default Duration.minutes(1)
   */
  readonly sessionReaperInterval?: Duration;
}

/** The coordination table, the coordination function and the scheduled session reaper. */
export class CoordinationService extends Construct {
  /**
   * The coordination table: per namespace its head (revision, group epochs), keys,
   * change log, sessions and partition grants. Partition key `pk` (S), sort key `sk` (S).
   */
  public readonly coordinationTable: dynamodb.Table;
  /**
   * The coordination service: put, get, delete, list, compareAndSet, revision, changes,
   * view and sessions by direct invoke (see lib/coordination/protocol.ts).
   */
  public readonly coordinationFunction: NodejsFunction;
  /** Expires, on a schedule, the sessions that stopped their keepalives (lib/service/coordination-reaper.ts). */
  public readonly coordinationReaperFunction: NodejsFunction;
  /**
   * Where the reaper schedule's events go when EventBridge cannot invoke the reaper
   * (after 2 retries): a standard SQS queue, alarmed.
   */
  public readonly reaperScheduleDeadLetters: sqs.Queue;
  /**
   * Every alarm of this part, each notifying `alarmTopic`: the reaper schedule's
   * dead-letter alarm, and both functions' error and throttle alarms.
   */
  public readonly alarms: cloudwatch.Alarm[];
  readonly #props: CoordinationServiceProps;
  /** The value of the metrics' `Construct` dimension: the path of the construct holding the resources. */
  readonly #metricDimension: string;

  /** Declares the table, the functions and the reaper's schedule in `props.resourceScope` (default: this construct). */
  constructor(scope: Construct, id: string, props: CoordinationServiceProps = {}) {
    super(scope, id);
    const resourceScope = props.resourceScope ?? this;
    this.#props = props;
    this.#metricDimension = resourceScope.node.path;
    this.coordinationTable = createTable(resourceScope, "CoordinationTable", "coordination", props, { name: "sk", type: dynamodb.AttributeType.STRING });
    const environment = { COORDINATION_TABLE: this.coordinationTable.tableName };
    this.coordinationFunction = createFunction(resourceScope, "CoordinationFunction", "coordination-function", "functions/coordination.ts", props, {
      description: "Fencepost coordination service: keys and revisions, the change log, group views, sessions",
      environment,
      timeout: Duration.seconds(30),
    });
    this.coordinationReaperFunction = createFunction(resourceScope, "CoordinationReaperFunction", "coordination-reaper", "functions/coordination-reaper.ts", props, {
      description: "Fencepost coordination session reaper: expires sessions that stopped their keepalives",
      environment,
      // Longer than MAX_SESSION_TTL_MS (10 minutes) plus the reaper's reserve: one run can watch any session for its whole ttl.
      timeout: Duration.minutes(15),
      // Runs must not overlap: with a session ttl longer than the interval they would watch the same sessions twice.
      reservedConcurrentExecutions: 1,
    });
    this.coordinationTable.grant(this.coordinationFunction, ...COORDINATION_SERVICE_ACTIONS);
    this.coordinationTable.grant(this.coordinationReaperFunction, ...COORDINATION_REAPER_ACTIONS);
    const schedule = scheduleFunction(resourceScope, "CoordinationReaperSchedule", this.coordinationReaperFunction, props.sessionReaperInterval ?? Duration.minutes(1), "Runs the coordination service's session reaper", "coordination-reaper-dlq", props);
    this.reaperScheduleDeadLetters = schedule.deadLetters;
    const functionAlarms = createFunctionAlarms(resourceScope, [
      { id: "CoordinationFunction", description: "The coordination function", errors: unexpectedErrors(this.coordinationFunction, this.metricCoordinationFunctionRejections(), "Coordination function errors that are not typed answers"), throttles: this.metricCoordinationFunctionThrottles() },
      { id: "CoordinationReaperFunction", description: "The session reaper", errors: this.metricCoordinationReaperFunctionErrors(), throttles: this.metricCoordinationReaperFunctionThrottles(), throttlesExpected: true },
    ], props);
    this.alarms = [schedule.deadLetterAlarm, ...functionAlarms];
  }

  /** Lets `grantee` use the Coordination client against the table (item actions and Query; no Scan, no admin). */
  public grantCoordination(grantee: iam.IGrantable): iam.Grant {
    return withKeyUse(this.coordinationTable.grant(grantee, ...COORDINATION_ITEM_ACTIONS), grantee, this.#props);
  }

  /**
   * Lets `grantee` invoke the coordination service (the `fencepost kv|members|session`
   * commands, callers in other languages): this function's unqualified ARN only.
   */
  public grantInvokeCoordination(grantee: iam.IGrantable): iam.Grant {
    return grantInvokeFunction(grantee, this.coordinationFunction);
  }

  /** The coordination function's failed invocations (`Errors`): sum over 5 minutes unless `props` says otherwise. */
  public metricCoordinationFunctionErrors(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.coordinationFunction.metricErrors(props);
  }

  /** The coordination function's throttled invocations (`Throttles`): sum over 5 minutes unless `props` says otherwise. */
  public metricCoordinationFunctionThrottles(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.coordinationFunction.metricThrottles(props);
  }

  /** The session reaper's failed runs (`Errors`): sum over 5 minutes unless `props` says otherwise. */
  public metricCoordinationReaperFunctionErrors(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.coordinationReaperFunction.metricErrors(props);
  }

  /** The session reaper's throttled runs (`Throttles`): sum over 5 minutes unless `props` says otherwise. */
  public metricCoordinationReaperFunctionThrottles(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.coordinationReaperFunction.metricThrottles(props);
  }

  /**
   * The coordination function's requests answered with a typed error (`Requests` with
   * Outcome `rejected`, reported by the function in namespace `Fencepost`): sum over 5
   * minutes unless `props` says otherwise.
   */
  public metricCoordinationFunctionRejections(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return invocationMetric(this.#metricDimension, FUNCTION_METRIC_NAMES.coordination, FENCEPOST_METRICS.requests, "rejected", props);
  }
}
