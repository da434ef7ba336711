/**
 * The Fencepost construct: every table, queue and function Fencepost needs, declared once,
 * as the parts it composes: `LockService`, `BroadcastLog`, `TransactionCoordinator` and
 * `CoordinationService`.
 *
 * Guarantees: each resource carries a `fencepost:resource` tag naming its role
 * (`locks`, ...), which is how the embedded local cloud and the CLI find them in the
 * synthesized template. The parts create their resources in this construct's scope, so
 * every logical ID is the one the single-construct layout had: an upgrade replaces no
 * table, queue or log group (test/infra/stack.test.ts pins them). Later capabilities add
 * their parts here, never elsewhere.
 * Assumes: nothing about the enclosing app; embed it in any stack, more than once if need be.
 */
import type * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import type * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import type * as iam from "aws-cdk-lib/aws-iam";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import type { NodejsFunction } from "aws-cdk-lib/aws-lambda-nodejs";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import { BroadcastLog } from "./broadcast-log.js";
import type { FencepostFunctionProps } from "./internal.js";
import { CoordinationService, type CoordinationServiceProps } from "./coordination-service.js";
import { LockService, type LockGrantAction } from "./lock-service.js";
import { TransactionCoordinator, type ParticipantResource, type TransactionCoordinatorProps } from "./transaction-coordinator.js";

export { HANDLER_METADATA, RESOURCE_ROLE_TAG } from "./internal.js";

/** Settings of the Fencepost construct: its tables and functions, transaction recovery and the session reaper. */
export interface FencepostProps
  extends FencepostFunctionProps,
    Pick<TransactionCoordinatorProps, "inDoubtAlarmAfter" | "recoveryInterval">,
    Pick<CoordinationServiceProps, "sessionReaperInterval"> {}

/** Locks with fencing tokens, total order broadcast, two-phase commit and the coordination service: every resource they need. */
export class Fencepost extends Construct {
  /** The lock table and the lock service function. */
  public readonly lockService: LockService;
  /** The coordination service part: sessions, keys, watches, groups (lib/coordination). */
  public readonly coordinationService: CoordinationService;
  /** The coordination table (`CoordinationService.coordinationTable`). */
  public readonly coordinationTable: dynamodb.Table;
  /** The coordination service function (`CoordinationService.coordinationFunction`). */
  public readonly coordinationFunction: NodejsFunction;
  /** The scheduled session reaper (`CoordinationService.coordinationReaperFunction`). */
  public readonly coordinationReaperFunction: NodejsFunction;
  /** The broadcast log table, the broadcast queue and its dead-letter queue. */
  public readonly broadcastLog: BroadcastLog;
  /** The decision log, the coordinator and recovery functions, and the in-doubt alarm. */
  public readonly transactionCoordinator: TransactionCoordinator;

  /** The coordination table (`LockService.lockTable`). */
  public readonly lockTable: dynamodb.Table;
  /** The lock service function (`LockService.lockFunction`). */
  public readonly lockFunction: NodejsFunction;
  /** The broadcast log table (`BroadcastLog.logTable`). */
  public readonly logTable: dynamodb.Table;
  /** FIFO queue that carries published messages to consumers (`BroadcastLog.broadcastQueue`). */
  public readonly broadcastQueue: sqs.Queue;
  /** Where broadcast messages go after 5 failed receives (`BroadcastLog.broadcastDeadLetters`). */
  public readonly broadcastDeadLetters: sqs.Queue;
  /** Fires when anything lands in the broadcast dead-letter queue (`BroadcastLog.broadcastDeadLetterAlarm`). */
  public readonly broadcastDeadLetterAlarm: cloudwatch.Alarm;
  /** The two-phase commit decision log (`TransactionCoordinator.txnTable`). */
  public readonly txnTable: dynamodb.Table;
  /** The coordinator service function (`TransactionCoordinator.txnFunction`). */
  public readonly txnFunction: NodejsFunction;
  /** The scheduled recovery function (`TransactionCoordinator.txnRecoveryFunction`). */
  public readonly txnRecoveryFunction: NodejsFunction;
  /** Fires when a transaction stays in doubt too long past its deadline (`TransactionCoordinator.inDoubtAlarm`). */
  public readonly inDoubtAlarm: cloudwatch.Alarm;
  /** Recovery schedule events EventBridge could not deliver (`TransactionCoordinator.recoveryScheduleDeadLetters`). */
  public readonly recoveryScheduleDeadLetters: sqs.Queue;
  /** Reaper schedule events EventBridge could not deliver (`CoordinationService.reaperScheduleDeadLetters`). */
  public readonly reaperScheduleDeadLetters: sqs.Queue;
  /**
   * Every alarm of the construct, each notifying `alarmTopic` if given: in-doubt, broadcast
   * dead letters, the schedules' dead letters, and each function's error and throttle alarms.
   */
  public readonly alarms: cloudwatch.Alarm[];

  /** Declares the parts, their resources in this construct's scope. */
  constructor(scope: Construct, id: string, props: FencepostProps = {}) {
    super(scope, id);
    this.lockService = new LockService(this, "LockService", { ...props, resourceScope: this });
    this.broadcastLog = new BroadcastLog(this, "BroadcastLog", { ...props, resourceScope: this });
    this.transactionCoordinator = new TransactionCoordinator(this, "TransactionCoordinator", { ...props, resourceScope: this });
    this.coordinationService = new CoordinationService(this, "CoordinationService", { ...props, resourceScope: this });
    this.coordinationTable = this.coordinationService.coordinationTable;
    this.coordinationFunction = this.coordinationService.coordinationFunction;
    this.coordinationReaperFunction = this.coordinationService.coordinationReaperFunction;
    this.lockTable = this.lockService.lockTable;
    this.lockFunction = this.lockService.lockFunction;
    this.logTable = this.broadcastLog.logTable;
    this.broadcastQueue = this.broadcastLog.broadcastQueue;
    this.broadcastDeadLetters = this.broadcastLog.broadcastDeadLetters;
    this.broadcastDeadLetterAlarm = this.broadcastLog.broadcastDeadLetterAlarm;
    this.txnTable = this.transactionCoordinator.txnTable;
    this.txnFunction = this.transactionCoordinator.txnFunction;
    this.txnRecoveryFunction = this.transactionCoordinator.txnRecoveryFunction;
    this.inDoubtAlarm = this.transactionCoordinator.inDoubtAlarm;
    this.recoveryScheduleDeadLetters = this.transactionCoordinator.recoveryScheduleDeadLetters;
    this.reaperScheduleDeadLetters = this.coordinationService.reaperScheduleDeadLetters;
    this.alarms = [this.broadcastDeadLetterAlarm, ...this.lockService.alarms, ...this.transactionCoordinator.alarms, ...this.coordinationService.alarms];
  }

  /** Lets `grantee` use the lock client directly against the lock table (`LockService.grantLockClient`). */
  public grantLockClient(grantee: iam.IGrantable): iam.Grant {
    return this.lockService.grantLockClient(grantee);
  }

  /** Lets `grantee` use the Coordination client against the coordination table (`CoordinationService.grantCoordination`). */
  public grantCoordination(grantee: iam.IGrantable): iam.Grant {
    return this.coordinationService.grantCoordination(grantee);
  }

  /** Lets `grantee` invoke the coordination service, by its unqualified ARN (`CoordinationService.grantInvokeCoordination`). */
  public grantInvokeCoordination(grantee: iam.IGrantable): iam.Grant {
    return this.coordinationService.grantInvokeCoordination(grantee);
  }

  /** Lets `grantee` invoke the lock service, by its unqualified ARN (`LockService.grantInvokeLocks`). */
  public grantInvokeLocks(grantee: iam.IGrantable): iam.Grant {
    return this.lockService.grantInvokeLocks(grantee);
  }

  /** Lets `grantee` publish with Broadcast (`BroadcastLog.grantPublish`). */
  public grantPublish(grantee: iam.IGrantable): iam.Grant {
    return this.broadcastLog.grantPublish(grantee);
  }

  /** Lets `grantee` run a ConsumerGroup (`BroadcastLog.grantConsume`). */
  public grantConsume(grantee: iam.IGrantable): iam.Grant {
    return this.broadcastLog.grantConsume(grantee);
  }

  /** Makes `fn` the broadcast queue's consumer (`BroadcastLog.consumeWith`). */
  public consumeWith(fn: lambda.Function): void {
    this.broadcastLog.consumeWith(fn);
  }

  /** Lets `grantee` coordinate transactions: the decision log's items and in-doubt index (`TransactionCoordinator.grantCoordinator`). */
  public grantCoordinator(grantee: iam.IGrantable): iam.Grant {
    return this.transactionCoordinator.grantCoordinator(grantee);
  }

  /** Lets `grantee` invoke the coordinator service (`TransactionCoordinator.grantInvokeCoordinator`). */
  public grantInvokeCoordinator(grantee: iam.IGrantable): iam.Grant {
    return this.transactionCoordinator.grantInvokeCoordinator(grantee);
  }

  /**
   * Lets the coordinator and recovery functions reach a participant: a table, an outbox
   * queue or a Lambda participant (`TransactionCoordinator.addParticipant`).
   */
  public addParticipant(participant: ParticipantResource): iam.Grant {
    return this.transactionCoordinator.addParticipant(participant);
  }

  /**
   * Lets the coordinator and recovery functions reach a participant.
   *
   * @deprecated Use `addParticipant`, which this calls.
   */
  public allowParticipant(participant: ParticipantResource): iam.Grant {
    return this.addParticipant(participant);
  }

  /** A metric Fencepost's functions report in namespace `Fencepost`, dimension `Construct` = this construct's path (`TransactionCoordinator.metric`). */
  public metric(metricName: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.transactionCoordinator.metric(metricName, props);
  }

  /** Transactions unfinished past their deadline after the last recovery run (`TransactionCoordinator.metricInDoubtTransactions`). */
  public metricInDoubtTransactions(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.transactionCoordinator.metricInDoubtTransactions(props);
  }

  /** Seconds the oldest in-doubt transaction is past its deadline; the in-doubt alarm's metric (`TransactionCoordinator.metricOldestInDoubtSeconds`). */
  public metricOldestInDoubtSeconds(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.transactionCoordinator.metricOldestInDoubtSeconds(props);
  }

  /** Messages waiting in the broadcast dead-letter queue; the dead-letter alarm's metric (`BroadcastLog.metricDeadLetters`). */
  public metricDeadLetters(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.broadcastLog.metricDeadLetters(props);
  }

  /** The lock function's failed invocations (`LockService.metricLockFunctionErrors`). */
  public metricLockFunctionErrors(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.lockService.metricLockFunctionErrors(props);
  }

  /** The lock function's throttled invocations (`LockService.metricLockFunctionThrottles`). */
  public metricLockFunctionThrottles(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.lockService.metricLockFunctionThrottles(props);
  }

  /** The lock function's requests answered with a typed error (`LockService.metricLockFunctionRejections`). */
  public metricLockFunctionRejections(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.lockService.metricLockFunctionRejections(props);
  }

  /** Grants the lock function made for `action` (`LockService.metricGrants`). */
  public metricGrants(action: LockGrantAction = "acquire", props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.lockService.metricGrants(action, props);
  }

  /** How long granted requests waited in the lock function (`LockService.metricGrantWait`). */
  public metricGrantWait(action: "acquire" | "elect" = "acquire", props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.lockService.metricGrantWait(action, props);
  }

  /** Requests that gave up waiting for a lock (`LockService.metricLockTimeouts`). */
  public metricLockTimeouts(action: "acquire" | "elect" = "acquire", props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.lockService.metricLockTimeouts(action, props);
  }

  /** A consumer group's lag in messages (`BroadcastLog.metricConsumerLag`). */
  public metricConsumerLag(stream: string, group: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.broadcastLog.metricConsumerLag(stream, group, props);
  }

  /** Holes a consumer group filled with no-ops (`BroadcastLog.metricHoleFills`). */
  public metricHoleFills(stream: string, group: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.broadcastLog.metricHoleFills(stream, group, props);
  }

  /** The coordinator function's requests answered with a typed error (`TransactionCoordinator.metricTxnFunctionRejections`). */
  public metricTxnFunctionRejections(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.transactionCoordinator.metricTxnFunctionRejections(props);
  }

  /** The coordination function's requests answered with a typed error (`CoordinationService.metricCoordinationFunctionRejections`). */
  public metricCoordinationFunctionRejections(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.coordinationService.metricCoordinationFunctionRejections(props);
  }

  /** The coordinator function's failed invocations (`TransactionCoordinator.metricTxnFunctionErrors`). */
  public metricTxnFunctionErrors(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.transactionCoordinator.metricTxnFunctionErrors(props);
  }

  /** The coordinator function's throttled invocations (`TransactionCoordinator.metricTxnFunctionThrottles`). */
  public metricTxnFunctionThrottles(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.transactionCoordinator.metricTxnFunctionThrottles(props);
  }

  /** The recovery function's failed runs (`TransactionCoordinator.metricTxnRecoveryFunctionErrors`). */
  public metricTxnRecoveryFunctionErrors(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.transactionCoordinator.metricTxnRecoveryFunctionErrors(props);
  }

  /** The recovery function's throttled runs (`TransactionCoordinator.metricTxnRecoveryFunctionThrottles`). */
  public metricTxnRecoveryFunctionThrottles(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.transactionCoordinator.metricTxnRecoveryFunctionThrottles(props);
  }

  /** The coordination function's failed invocations (`CoordinationService.metricCoordinationFunctionErrors`). */
  public metricCoordinationFunctionErrors(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.coordinationService.metricCoordinationFunctionErrors(props);
  }

  /** The coordination function's throttled invocations (`CoordinationService.metricCoordinationFunctionThrottles`). */
  public metricCoordinationFunctionThrottles(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.coordinationService.metricCoordinationFunctionThrottles(props);
  }

  /** The session reaper's failed runs (`CoordinationService.metricCoordinationReaperFunctionErrors`). */
  public metricCoordinationReaperFunctionErrors(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.coordinationService.metricCoordinationReaperFunctionErrors(props);
  }

  /** The session reaper's throttled runs (`CoordinationService.metricCoordinationReaperFunctionThrottles`). */
  public metricCoordinationReaperFunctionThrottles(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.coordinationService.metricCoordinationReaperFunctionThrottles(props);
  }
}
