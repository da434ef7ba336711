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
}

/** The DynamoDB actions the lock protocol uses (TransactWriteItems needs these per item). */
const LOG_ITEM_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"];
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
