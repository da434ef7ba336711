/**
 * The broadcast log construct: the table that holds each stream's total order, the FIFO
 * queue that carries published messages to consumers, and its alarmed dead-letter queue.
 *
 * Guarantees: the table and both queues keep their logical IDs across releases (the log
 * is the source of truth for order; the queues only speed delivery); both queues are
 * FIFO, SSE-encrypted and refuse plain HTTP; a message that fails 5 receives goes to the
 * dead-letter queue and raises the alarm; every grant names its actions, no wildcard.
 * Assumes: publishers are `Broadcast` and consumers `ConsumerGroup` (lib/ordering), which
 * read the log to fill what the queue drops, so a dead letter delays no consumer for good.
 */
import { Duration, Tags } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import type * as iam from "aws-cdk-lib/aws-iam";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import { SqsEventSource } from "aws-cdk-lib/aws-lambda-event-sources";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import { FENCEPOST_METRICS } from "../lib/service/metric-names.js";
import { LOG_CONSUME_ACTIONS, LOG_ITEM_ACTIONS, QUEUE_CONSUME_ACTIONS, QUEUE_PUBLISH_ACTIONS } from "./iam-actions.js";
import { createTable, notify, RESOURCE_ROLE_TAG, withKeyUse, type FencepostAlarmProps, type FencepostTableProps, type ResourceScopeProps } from "./internal.js";

/** Settings of a BroadcastLog: those of its table (and queues), its alarm, and where its resources are created. */
export interface BroadcastLogProps extends FencepostTableProps, FencepostAlarmProps, ResourceScopeProps {}

/** The broadcast log table, the broadcast FIFO queue and its alarmed dead-letter queue. */
export class BroadcastLog extends Construct {
  /**
   * The broadcast log: per stream a sequencer, write-once slots, dedup records and
   * consumer cursors (lib/ordering/log.ts). Partition key `pk` (S), sort key `sk` (N).
   */
  public readonly logTable: dynamodb.Table;
  /** FIFO queue that carries published messages (MessageGroupId = stream) to consumers. */
  public readonly broadcastQueue: sqs.Queue;
  /** Where broadcast messages go after 5 failed receives; alarmed. */
  public readonly broadcastDeadLetters: sqs.Queue;
  /** Fires when anything lands in the broadcast dead-letter queue (built from `metricDeadLetters`). */
  public readonly broadcastDeadLetterAlarm: cloudwatch.Alarm;
  readonly #props: BroadcastLogProps;
  /** The value of the metrics' `Construct` dimension: the path of the construct holding the resources. */
  readonly #metricDimension: string;

  /** Declares the log table, the queues and the alarm in `props.resourceScope` (default: this construct). */
  constructor(scope: Construct, id: string, props: BroadcastLogProps = {}) {
    super(scope, id);
    const resourceScope = props.resourceScope ?? this;
    this.#props = props;
    this.#metricDimension = resourceScope.node.path;
    const encryption = props.encryptionKey ? { encryption: sqs.QueueEncryption.KMS, encryptionMasterKey: props.encryptionKey } : { encryption: sqs.QueueEncryption.SQS_MANAGED };
    this.logTable = createTable(resourceScope, "LogTable", "log", props, { name: "sk", type: dynamodb.AttributeType.NUMBER });
    this.broadcastDeadLetters = new sqs.Queue(resourceScope, "BroadcastDeadLetters", {
      fifo: true,
      retentionPeriod: Duration.days(14),
      enforceSSL: true,
      ...encryption,
    });
    Tags.of(this.broadcastDeadLetters).add(RESOURCE_ROLE_TAG, "broadcast-dlq");
    this.broadcastQueue = new sqs.Queue(resourceScope, "BroadcastQueue", {
      fifo: true,
      visibilityTimeout: Duration.seconds(60),
      enforceSSL: true,
      ...encryption,
      deadLetterQueue: { queue: this.broadcastDeadLetters, maxReceiveCount: 5 },
    });
    Tags.of(this.broadcastQueue).add(RESOURCE_ROLE_TAG, "broadcast");
    this.broadcastDeadLetterAlarm = notify(new cloudwatch.Alarm(resourceScope, "BroadcastDeadLetterAlarm", {
      alarmDescription: "Broadcast messages failed delivery 5 times. The log still holds them and consumers catch up from it; investigate the consumer.",
      metric: this.metricDeadLetters({ period: Duration.minutes(1) }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    }), props);
  }

  /** Lets `grantee` publish with Broadcast: sequencer, slots and dedup records, and sending to the queue. */
  public grantPublish(grantee: iam.IGrantable): iam.Grant {
    return withKeyUse(this.logTable.grant(grantee, ...LOG_ITEM_ACTIONS).combine(this.broadcastQueue.grant(grantee, ...QUEUE_PUBLISH_ACTIONS)), grantee, this.#props);
  }

  /** Lets `grantee` run a ConsumerGroup: read the log, fill holes, move cursors, take and delete queue messages. */
  public grantConsume(grantee: iam.IGrantable): iam.Grant {
    return withKeyUse(this.logTable.grant(grantee, ...LOG_CONSUME_ACTIONS).combine(this.broadcastQueue.grant(grantee, ...QUEUE_CONSUME_ACTIONS)), grantee, this.#props);
  }

  /**
   * Makes `fn` the queue's consumer: a Lambda whose handler calls
   * `FanOut.handleSqsEvent` (every consumer group of the stream, each reading the log) or
   * `ConsumerGroup.handleSqsEvent` (one group). Batches of up to 10, batch item failures
   * reported, the grants of `grantConsume`, and env METRIC_DIMENSION so `consumerMetrics`
   * reports under this construct (`metricConsumerLag`, `metricHoleFills`). SQS delivers each
   * message to one consumer: serve all groups from this one function with FanOut rather
   * than one queue consumer per group.
   */
  public consumeWith(fn: lambda.Function): void {
    this.grantConsume(fn);
    fn.addEnvironment("METRIC_DIMENSION", this.#metricDimension);
    fn.addEventSource(new SqsEventSource(this.broadcastQueue, { batchSize: 10, reportBatchItemFailures: true }));
  }

  /**
   * How far behind `group` of `stream` was when its catch-ups started (`ConsumerLag`, in
   * messages, reported by `consumerMetrics` in the consumer): maximum over 5 minutes unless
   * `props` says otherwise. Alarm on it to learn that a group stopped keeping up.
   */
  public metricConsumerLag(stream: string, group: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.#consumerMetric(FENCEPOST_METRICS.consumerLag, stream, group, { statistic: cloudwatch.Stats.MAXIMUM, ...props });
  }

  /**
   * Numbers of `stream` that `group` filled with no-ops (`HoleFills`: publishes whose
   * producer took a number and never wrote it, reported by `consumerMetrics`): sum over 5
   * minutes unless `props` says otherwise.
   */
  public metricHoleFills(stream: string, group: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.#consumerMetric(FENCEPOST_METRICS.holeFills, stream, group, { statistic: cloudwatch.Stats.SUM, ...props });
  }

  #consumerMetric(metricName: string, stream: string, group: string, props: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: FENCEPOST_METRICS.namespace,
      metricName,
      dimensionsMap: { [FENCEPOST_METRICS.construct]: this.#metricDimension, [FENCEPOST_METRICS.stream]: stream, [FENCEPOST_METRICS.group]: group },
      ...props,
    });
  }

  /**
   * Messages waiting in the broadcast dead-letter queue (its
   * `ApproximateNumberOfMessagesVisible`): maximum over 5 minutes unless `props` says
   * otherwise. The dead-letter alarm watches it per minute.
   */
  public metricDeadLetters(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.broadcastDeadLetters.metricApproximateNumberOfMessagesVisible(props);
  }
}
