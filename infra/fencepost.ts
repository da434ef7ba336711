/**
 * The Fencepost construct: every table and queue Fencepost needs, declared once.
 *
 * Guarantees: each resource carries a `fencepost:resource` tag naming its role
 * (`locks`, ...), which is how the embedded local cloud and the CLI find them in the
 * synthesized template. Later capabilities add their tables and queues here, never elsewhere.
 * Assumes: nothing about the enclosing app; embed it in any stack.
 */
import { Duration, RemovalPolicy, Tags, Validations } from "aws-cdk-lib";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { NodejsFunction, OutputFormat } from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { SqsEventSource } from "aws-cdk-lib/aws-lambda-event-sources";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import { Construct } from "constructs";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Tag key carrying the role of each Fencepost resource in the template. */
export const RESOURCE_ROLE_TAG = "fencepost:resource";
/** Metadata key naming a function's handler source (relative to the package root), for the local cloud. */
export const HANDLER_METADATA = "fencepost:handler";

/** The package root: the repository in development, `dist/` once compiled. */
const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** A handler's entry file: the TypeScript source if present, else its compiled twin. */
function entryOf(source: string): string {
  const ts = join(packageRoot, source);
  return existsSync(ts) ? ts : join(packageRoot, source.replace(/\.ts$/, ".js"));
}

export interface FencepostProps {
  /** What happens to tables when the stack is deleted. Default: RETAIN. */
  readonly removalPolicy?: RemovalPolicy;
  /** Protect tables against accidental deletion. Default: false. */
  readonly deletionProtection?: boolean;
  /** Point-in-time recovery on every table. Default: true. */
  readonly pointInTimeRecovery?: boolean;
  /** Retention of the functions' logs. Default: one month. */
  readonly logRetention?: logs.RetentionDays;
  /** Lambda architecture. Default: ARM_64. */
  readonly architecture?: lambda.Architecture;
  /** The in-doubt alarm fires when a transaction stays unfinished this long past its deadline. Default: 5 minutes. */
  readonly inDoubtAlarmAfter?: Duration;
  /** How often the recovery function runs. Default: every minute. */
  readonly recoveryInterval?: Duration;
}

/** The DynamoDB actions the lock protocol uses (TransactWriteItems needs these per item). */
const LOG_ITEM_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"];
/** The transaction protocol's item actions (decision records, vote records, participants' items), plus the in-doubt index query. */
const TXN_ITEM_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"];
const LOCK_ITEM_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"];

export class Fencepost extends Construct {
  /**
   * The coordination table: lock items (lease, holder, fencing token), leader
   * elections, uniqueness claims, registers and counters. Partition key `pk`; items
   * with a `ttl` attribute (epoch seconds) are removed by DynamoDB TTL.
   */
  public readonly lockTable: dynamodb.Table;
  /**
   * The lock service: acquire, tryAcquire, heartbeat, release, inspect, list, elect,
   * leader and claims by direct invoke (see lib/service/lock-api.ts).
   */
  public readonly lockFunction: NodejsFunction;
  /**
   * The broadcast log: per stream a sequencer, write-once slots, dedup records and
   * consumer cursors (lib/ordering/log.ts). Partition key `pk` (S), sort key `sk` (N).
   */
  public readonly logTable: dynamodb.Table;
  /** FIFO queue that carries published messages (MessageGroupId = stream) to consumers. */
  public readonly broadcastQueue: sqs.Queue;
  /** Where broadcast messages go after 5 failed receives; alarmed. */
  public readonly broadcastDeadLetters: sqs.Queue;
  /** Fires when anything lands in the broadcast dead-letter queue. */
  public readonly broadcastDeadLetterAlarm: cloudwatch.Alarm;
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
  /** Fires when a transaction stays in doubt longer than `inDoubtAlarmAfter` past its deadline. */
  public readonly inDoubtAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: FencepostProps = {}) {
    super(scope, id);
    this.lockTable = this.#table("LockTable", "locks", props);
    this.logTable = this.#table("LogTable", "log", props, { name: "sk", type: dynamodb.AttributeType.NUMBER });
    this.broadcastDeadLetters = new sqs.Queue(this, "BroadcastDeadLetters", {
      fifo: true,
      retentionPeriod: Duration.days(14),
      enforceSSL: true,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
    });
    Tags.of(this.broadcastDeadLetters).add(RESOURCE_ROLE_TAG, "broadcast-dlq");
    this.broadcastQueue = new sqs.Queue(this, "BroadcastQueue", {
      fifo: true,
      visibilityTimeout: Duration.seconds(60),
      enforceSSL: true,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      deadLetterQueue: { queue: this.broadcastDeadLetters, maxReceiveCount: 5 },
    });
    Tags.of(this.broadcastQueue).add(RESOURCE_ROLE_TAG, "broadcast");
    this.broadcastDeadLetterAlarm = new cloudwatch.Alarm(this, "BroadcastDeadLetterAlarm", {
      alarmDescription: "Broadcast messages failed delivery 5 times. The log still holds them and consumers catch up from it; investigate the consumer.",
      metric: this.broadcastDeadLetters.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1) }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    this.lockFunction = this.#function("LockFunction", "locks-function", "functions/locks.ts", props, {
      description: "Fencepost lock service: locks with fencing tokens, elections, uniqueness claims",
      environment: { TABLE_NAME: this.lockTable.tableName },
      timeout: Duration.seconds(30),
    });
    // The lock protocol's item actions, plus Scan for `list`.
    this.lockTable.grant(this.lockFunction, ...LOCK_ITEM_ACTIONS, "dynamodb:Scan");

    this.txnTable = this.#table("TxnTable", "txn", props);
    this.txnTable.addGlobalSecondaryIndex({
      indexName: "in-doubt",
      partitionKey: { name: "inDoubt", type: dynamodb.AttributeType.STRING },
      sortKey: { name: "deadline", type: dynamodb.AttributeType.NUMBER },
      projectionType: dynamodb.ProjectionType.ALL,
    });
    this.txnFunction = this.#function("TxnFunction", "txn-function", "functions/txn.ts", props, {
      description: "Fencepost two-phase commit coordinator: run, status, list in-doubt, recover, override",
      environment: { TXN_TABLE: this.txnTable.tableName },
      timeout: Duration.minutes(2),
    });
    this.txnRecoveryFunction = this.#function("TxnRecoveryFunction", "txn-recovery", "functions/txn-recovery.ts", props, {
      description: "Fencepost two-phase commit recovery: finishes transactions stuck past their deadline",
      environment: { TXN_TABLE: this.txnTable.tableName, METRIC_DIMENSION: this.node.path },
      timeout: Duration.minutes(5),
    });
    for (const fn of [this.txnFunction, this.txnRecoveryFunction]) this.grantCoordinator(fn);
    new events.Rule(this, "TxnRecoverySchedule", {
      description: "Runs two-phase commit recovery",
      schedule: events.Schedule.rate(props.recoveryInterval ?? Duration.minutes(1)),
      targets: [new targets.LambdaFunction(this.txnRecoveryFunction, { event: events.RuleTargetInput.fromObject({ source: "schedule" }) })],
    });
    const alarmAfter = props.inDoubtAlarmAfter ?? Duration.minutes(5);
    this.inDoubtAlarm = new cloudwatch.Alarm(this, "InDoubtAlarm", {
      alarmDescription: `A transaction has been in doubt for more than ${alarmAfter.toHumanString()} past its deadline and recovery could not finish it: a participant is unreachable. See 'fencepost tx list --in-doubt'.`,
      metric: new cloudwatch.Metric({
        namespace: "Fencepost",
        metricName: "OldestInDoubtSeconds",
        dimensionsMap: { Construct: this.node.path },
        statistic: "Maximum",
        period: Duration.minutes(1),
      }),
      threshold: alarmAfter.toSeconds(),
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }

  /**
   * Lets `grantee` coordinate transactions: the decision log's items and in-doubt index.
   * Participants' own resources are granted with `allowParticipant`.
   */
  public grantCoordinator(grantee: iam.IGrantable): void {
    // Explicit ARNs: Table.grant would add `index/*` for the GSI, a wildcard the index name makes unnecessary.
    iam.Grant.addToPrincipal({ grantee, actions: TXN_ITEM_ACTIONS, resourceArns: [this.txnTable.tableArn] });
    iam.Grant.addToPrincipal({ grantee, actions: ["dynamodb:Query"], resourceArns: [`${this.txnTable.tableArn}/index/in-doubt`] });
  }

  /**
   * Lets the coordinator and recovery functions reach a participant: a table (the
   * DynamoDB participant's item actions), a queue (outbox: SendMessage) or a function
   * (Lambda participant: InvokeFunction).
   */
  public allowParticipant(resource: dynamodb.ITable | sqs.IQueue | lambda.IFunction): void {
    for (const fn of [this.txnFunction, this.txnRecoveryFunction]) {
      if ("tableArn" in resource) iam.Grant.addToPrincipal({ grantee: fn, actions: TXN_ITEM_ACTIONS, resourceArns: [resource.tableArn] });
      else if ("queueArn" in resource) resource.grantSendMessages(fn);
      else iam.Grant.addToPrincipal({ grantee: fn, actions: ["lambda:InvokeFunction"], resourceArns: [resource.functionArn] });
    }
  }

  /** Lets `grantee` invoke the coordinator service (the CLI, your applications). */
  public grantInvokeCoordinator(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({ grantee, actions: ["lambda:InvokeFunction"], resourceArns: [this.txnFunction.functionArn] });
  }

  /**
   * Lets `grantee` invoke the lock service (the remote-mode LockClient, the CLI): this
   * function's unqualified ARN only, so the grant needs no wildcard.
   */
  public grantInvokeLocks(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({ grantee, actions: ["lambda:InvokeFunction"], resourceArns: [this.lockFunction.functionArn] });
  }

  /** An on-demand table with partition key `pk` (S), TTL on `ttl`, PITR, tagged with its role. */
  #table(id: string, role: string, props: FencepostProps, sortKey?: dynamodb.Attribute): dynamodb.Table {
    const table = new dynamodb.Table(this, id, {
      partitionKey: { name: "pk", type: dynamodb.AttributeType.STRING },
      ...(sortKey ? { sortKey } : {}),
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: "ttl",
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: props.pointInTimeRecovery ?? true },
      deletionProtection: props.deletionProtection ?? false,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    Tags.of(table).add(RESOURCE_ROLE_TAG, role);
    return table;
  }

  /**
   * A function with its own role (logs to its own log group, nothing else until granted),
   * bundled by esbuild, and the metadata the local cloud serves it by.
   */
  #function(id: string, role: string, source: string, props: FencepostProps, options: { description: string; environment: Record<string, string>; timeout: Duration }): NodejsFunction {
    const logGroup = new logs.LogGroup(this, `${id}Logs`, {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    const executionRole = new iam.Role(this, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
      description: `Execution role of ${id}: its own log group; table access is granted per action`,
    });
    executionRole.addToPolicy(new iam.PolicyStatement({ actions: ["logs:CreateLogStream", "logs:PutLogEvents"], resources: [logGroup.logGroupArn] }));
    const fn = new NodejsFunction(this, id, {
      entry: entryOf(source),
      handler: "handler",
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: props.architecture ?? lambda.Architecture.ARM_64,
      memorySize: 256,
      role: executionRole,
      logGroup,
      bundling: { format: OutputFormat.ESM, target: "node22", minify: true, sourceMap: true, mainFields: ["module", "main"], banner: "import { createRequire } from 'module';const require = createRequire(import.meta.url);" },
      ...options,
      environment: { ...options.environment, NODE_OPTIONS: "--enable-source-maps" },
    });
    Tags.of(fn).add(RESOURCE_ROLE_TAG, role);
    (fn.node.defaultChild as lambda.CfnFunction).addMetadata(HANDLER_METADATA, source);
    Validations.of(fn).acknowledge({
      id: "AwsSolutions::AwsSolutions-L1",
      reason: "Node.js 22 is pinned on purpose: it is the newest runtime the library is tested on (Node >= 20); a runtime upgrade is a tested release, not an automatic bump.",
    });
    return fn;
  }

  /** Lets `grantee` publish with Broadcast: sequencer, slots and dedup records, and sending to the queue. */
  public grantPublish(grantee: iam.IGrantable): void {
    this.logTable.grant(grantee, ...LOG_ITEM_ACTIONS);
    this.broadcastQueue.grant(grantee, "sqs:SendMessage", "sqs:GetQueueAttributes");
  }

  /** Lets `grantee` run a ConsumerGroup: read the log, fill holes, move cursors, take and delete queue messages. */
  public grantConsume(grantee: iam.IGrantable): void {
    this.logTable.grant(grantee, ...LOG_ITEM_ACTIONS, "dynamodb:Query");
    this.broadcastQueue.grant(grantee, "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes");
  }

  /**
   * Makes `fn` the queue's consumer: a Lambda whose handler calls
   * `ConsumerGroup.handleSqsEvent`. Batches of up to 10, batch item failures reported,
   * and the grants of `grantConsume`. (SQS delivers each message to one consumer: other
   * groups run `ConsumerGroup.run` or `catchUp`, which read the log.)
   */
  public consumeWith(fn: lambda.Function): void {
    this.grantConsume(fn);
    fn.addEventSource(new SqsEventSource(this.broadcastQueue, { batchSize: 10, reportBatchItemFailures: true }));
  }

  /** Lets `grantee` use the lock client directly against the lock table (no Scan, no admin). */
  public grantLockClient(grantee: iam.IGrantable): void {
    this.lockTable.grant(grantee, ...LOCK_ITEM_ACTIONS);
  }
}
