/**
 * The transaction coordinator construct: the two-phase commit decision log, the
 * coordinator function, the recovery function on a schedule, and the in-doubt alarm.
 *
 * Guarantees: the decision log keeps its logical ID across releases (replacing it would
 * lose the decisions of transactions in doubt); recovery runs every `recoveryInterval`
 * and reports `InDoubtTransactions` and `OldestInDoubtSeconds` (namespace `Fencepost`,
 * dimension `Construct` = the path of the construct holding the resources), which the
 * in-doubt alarm watches; the functions may touch only the decision log (item actions,
 * and Query on the named `in-doubt` index), their own log groups and the participants
 * added with `addParticipant`; no grant has a wildcard action.
 * Assumes: the handlers are `functions/txn.ts` and `functions/txn-recovery.ts` (see
 * lib/service/txn-api.ts and lib/service/txn-metrics.ts); participants that recovery
 * must reach unattended are DynamoDB tables, outbox queues or Lambda functions.
 */
import { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import type { NodejsFunction } from "aws-cdk-lib/aws-lambda-nodejs";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import { FENCEPOST_METRICS, FUNCTION_METRIC_NAMES } from "../lib/service/metric-names.js";
import { Construct } from "constructs";
import { IN_DOUBT_METRICS } from "../lib/service/txn-metrics.js";
import { IN_DOUBT_INDEX_ACTIONS, TXN_ITEM_ACTIONS } from "./iam-actions.js";
import { createFunction, createFunctionAlarms, createTable, grantInvokeFunction, invocationMetric, notify, scheduleFunction, unexpectedErrors, withKeyUse, type FencepostFunctionProps, type ResourceScopeProps } from "./internal.js";

/** What a transaction can name as a participant that the coordinator functions must reach. */
export type ParticipantResource = dynamodb.ITable | sqs.IQueue | lambda.IFunction;

/** Settings of a TransactionCoordinator: its table and functions, recovery and alarm, and where they are created. */
export interface TransactionCoordinatorProps extends FencepostFunctionProps, ResourceScopeProps {
  /**
   * The in-doubt alarm fires when a transaction stays unfinished this long past its deadline.
   *
   * @default Duration.minutes(5)
   */
  readonly inDoubtAlarmAfter?: Duration;
  /**
   * How often the recovery function runs.
   *
   * @default Duration.minutes(1)
   */
  readonly recoveryInterval?: Duration;
}

/** The decision log, the coordinator and recovery functions, the recovery schedule and the in-doubt alarm. */
export class TransactionCoordinator extends Construct {
  /**
   * The two-phase commit decision log: transaction records (`tx#<id>`), participants'
   * vote records, and the sparse index `in-doubt` (partition `inDoubt`, sort `deadline`)
   * over unfinished transactions (lib/txn/log.ts).
   */
  public readonly txnTable: dynamodb.Table;
  /** The coordinator service: run, status, list, recover and override by direct invoke (lib/service/txn-api.ts). */
  public readonly txnFunction: NodejsFunction;
  /** Runs recovery on a schedule and reports the in-doubt metrics the alarm watches. */
  public readonly txnRecoveryFunction: NodejsFunction;
  /** Fires when a transaction stays in doubt longer than `inDoubtAlarmAfter` past its deadline (built from `metricOldestInDoubtSeconds`). */
  public readonly inDoubtAlarm: cloudwatch.Alarm;
  /**
   * Where the recovery schedule's events go when EventBridge cannot invoke the recovery
   * function (after 2 retries): a standard SQS queue, alarmed.
   */
  public readonly recoveryScheduleDeadLetters: sqs.Queue;
  /**
   * Every alarm of this part, each notifying `alarmTopic`: the in-doubt alarm, the
   * recovery schedule's dead-letter alarm, and both functions' error and throttle alarms.
   */
  public readonly alarms: cloudwatch.Alarm[];
  readonly #props: TransactionCoordinatorProps;
  /** The value of the metrics' `Construct` dimension: the path of the construct holding the resources. */
  readonly #metricDimension: string;

  /** Declares the decision log, the functions, the schedule and the alarm in `props.resourceScope` (default: this construct). */
  constructor(scope: Construct, id: string, props: TransactionCoordinatorProps = {}) {
    super(scope, id);
    const resourceScope = props.resourceScope ?? this;
    this.#metricDimension = resourceScope.node.path;
    this.#props = props;
    this.txnTable = createTable(resourceScope, "TxnTable", "txn", props);
    this.txnTable.addGlobalSecondaryIndex({
      indexName: "in-doubt",
      partitionKey: { name: "inDoubt", type: dynamodb.AttributeType.STRING },
      sortKey: { name: "deadline", type: dynamodb.AttributeType.NUMBER },
      projectionType: dynamodb.ProjectionType.ALL,
    });
    this.txnFunction = createFunction(resourceScope, "TxnFunction", "txn-function", "functions/txn.ts", props, {
      description: "Fencepost two-phase commit coordinator: run, status, list in-doubt, recover, override",
      environment: { TXN_TABLE: this.txnTable.tableName },
      timeout: Duration.minutes(2),
    });
    this.txnRecoveryFunction = createFunction(resourceScope, "TxnRecoveryFunction", "txn-recovery", "functions/txn-recovery.ts", props, {
      description: "Fencepost two-phase commit recovery: finishes transactions stuck past their deadline",
      environment: { TXN_TABLE: this.txnTable.tableName },
      timeout: Duration.minutes(5),
      // Runs must not overlap: two recoveries would drive the same transactions at once.
      reservedConcurrentExecutions: 1,
    });
    for (const fn of [this.txnFunction, this.txnRecoveryFunction]) this.grantCoordinator(fn);
    const schedule = scheduleFunction(resourceScope, "TxnRecoverySchedule", this.txnRecoveryFunction, props.recoveryInterval ?? Duration.minutes(1), "Runs two-phase commit recovery", "txn-recovery-dlq", props);
    this.recoveryScheduleDeadLetters = schedule.deadLetters;
    const alarmAfter = props.inDoubtAlarmAfter ?? Duration.minutes(5);
    this.inDoubtAlarm = notify(new cloudwatch.Alarm(resourceScope, "InDoubtAlarm", {
      alarmDescription: `A transaction has been in doubt for more than ${alarmAfter.toHumanString()} past its deadline and recovery could not finish it: a participant is unreachable. See 'fencepost tx list --in-doubt'.`,
      metric: this.metricOldestInDoubtSeconds({ period: Duration.minutes(1) }),
      threshold: alarmAfter.toSeconds(),
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    }), props);
    const functionAlarms = createFunctionAlarms(resourceScope, [
      { id: "TxnFunction", description: "The coordinator function", errors: unexpectedErrors(this.txnFunction, this.metricTxnFunctionRejections(), "Coordinator function errors that are not typed answers"), throttles: this.metricTxnFunctionThrottles() },
      { id: "TxnRecoveryFunction", description: "The recovery function", errors: this.metricTxnRecoveryFunctionErrors(), throttles: this.metricTxnRecoveryFunctionThrottles(), throttlesExpected: true },
    ], props);
    this.alarms = [this.inDoubtAlarm, schedule.deadLetterAlarm, ...functionAlarms];
  }

  /**
   * Lets `grantee` coordinate transactions: the decision log's items and in-doubt index.
   * Participants' own resources are granted with `addParticipant`.
   */
  public grantCoordinator(grantee: iam.IGrantable): iam.Grant {
    // Explicit ARNs: Table.grant would add `index/*` for the GSI, a wildcard the index name makes unnecessary.
    const items = iam.Grant.addToPrincipal({ grantee, actions: [...TXN_ITEM_ACTIONS], resourceArns: [this.txnTable.tableArn] });
    const inDoubtIndex = iam.Grant.addToPrincipal({ grantee, actions: [...IN_DOUBT_INDEX_ACTIONS], resourceArns: [`${this.txnTable.tableArn}/index/in-doubt`] });
    return withKeyUse(items.combine(inDoubtIndex), grantee, this.#props);
  }

  /**
   * Lets the coordinator and recovery functions reach a participant: a table (the
   * DynamoDB participant's item actions), a queue (outbox: SendMessage) or a function
   * (Lambda participant: InvokeFunction). Returns the grants to both functions.
   */
  public addParticipant(participant: ParticipantResource): iam.Grant {
    return grantParticipant(this.txnFunction, participant).combine(grantParticipant(this.txnRecoveryFunction, participant));
  }

  /**
   * Lets the coordinator and recovery functions reach a participant.
   *
   * @deprecated Use `addParticipant`, which this calls.
   */
  public allowParticipant(participant: ParticipantResource): iam.Grant {
    return this.addParticipant(participant);
  }

  /** Lets `grantee` invoke the coordinator service (the CLI, your applications): its unqualified ARN only. */
  public grantInvokeCoordinator(grantee: iam.IGrantable): iam.Grant {
    return grantInvokeFunction(grantee, this.txnFunction);
  }

  /**
   * A metric the recovery function reports: namespace `Fencepost`, dimension `Construct`
   * = the path of the construct holding the resources. CloudWatch's defaults (average
   * over 5 minutes) unless `props` says otherwise.
   */
  public metric(metricName: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: IN_DOUBT_METRICS.namespace,
      metricName,
      dimensionsMap: { [IN_DOUBT_METRICS.dimension]: this.#metricDimension },
      ...props,
    }).attachTo(this);
  }

  /**
   * How many transactions were unfinished past their deadline after the last recovery
   * run (`InDoubtTransactions`): maximum over 5 minutes unless `props` says otherwise.
   */
  public metricInDoubtTransactions(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(IN_DOUBT_METRICS.inDoubtTransactions, { statistic: cloudwatch.Stats.MAXIMUM, ...props });
  }

  /**
   * How long past its deadline the oldest unfinished transaction was after the last
   * recovery run, in seconds (`OldestInDoubtSeconds`): maximum over 5 minutes unless
   * `props` says otherwise. The in-doubt alarm watches it per minute.
   */
  public metricOldestInDoubtSeconds(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(IN_DOUBT_METRICS.oldestInDoubtSeconds, { statistic: cloudwatch.Stats.MAXIMUM, ...props });
  }

  /** The coordinator function's failed invocations (`Errors`): sum over 5 minutes unless `props` says otherwise. */
  public metricTxnFunctionErrors(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.txnFunction.metricErrors(props);
  }

  /** The coordinator function's throttled invocations (`Throttles`): sum over 5 minutes unless `props` says otherwise. */
  public metricTxnFunctionThrottles(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.txnFunction.metricThrottles(props);
  }

  /** The recovery function's failed runs (`Errors`): sum over 5 minutes unless `props` says otherwise. */
  public metricTxnRecoveryFunctionErrors(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.txnRecoveryFunction.metricErrors(props);
  }

  /** The recovery function's throttled runs (`Throttles`): sum over 5 minutes unless `props` says otherwise. */
  public metricTxnRecoveryFunctionThrottles(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.txnRecoveryFunction.metricThrottles(props);
  }

  /**
   * The coordinator function's requests answered with a typed error (`Requests` with
   * Outcome `rejected`, reported by the function in namespace `Fencepost`): sum over 5
   * minutes unless `props` says otherwise.
   */
  public metricTxnFunctionRejections(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return invocationMetric(this.#metricDimension, FUNCTION_METRIC_NAMES.txn, FENCEPOST_METRICS.requests, "rejected", props);
  }
}

/** The grant that lets a coordinator function reach one participant. */
function grantParticipant(fn: lambda.IFunction, participant: ParticipantResource): iam.Grant {
  if ("tableArn" in participant) return iam.Grant.addToPrincipal({ grantee: fn, actions: [...TXN_ITEM_ACTIONS], resourceArns: [participant.tableArn] });
  if ("queueArn" in participant) return participant.grantSendMessages(fn);
  return grantInvokeFunction(fn, participant);
}
