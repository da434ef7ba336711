/**
 * What the Fencepost constructs share: the tag and metadata keys the local cloud reads,
 * the settings every part takes, and the factories for tables and functions.
 *
 * Guarantees: every table and function is built one way (on-demand table keyed by `pk`
 * with TTL on `ttl` and PITR; a function with its own role, its own log group and
 * nothing else until granted), carries a `fencepost:resource` tag naming its role, and
 * every function carries the `fencepost:handler` metadata the local cloud serves it by.
 * Assumes: handler sources live under the package root (`functions/*.ts` in the
 * repository, their `.js` twins under `dist/` once compiled).
 */
import { Duration, RemovalPolicy, Stack, Tags, Validations } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as cloudwatchActions from "aws-cdk-lib/aws-cloudwatch-actions";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as kms from "aws-cdk-lib/aws-kms";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { NodejsFunction, OutputFormat } from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import type * as sns from "aws-cdk-lib/aws-sns";
import * as sqs from "aws-cdk-lib/aws-sqs";
import type { Construct } from "constructs";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { FENCEPOST_METRICS } from "../lib/service/metric-names.js";
import { FUNCTION_INVOKE_ACTIONS, KEY_USE_ACTIONS, LOG_GROUP_KEY_ACTIONS, LOG_GROUP_WRITE_ACTIONS } from "./iam-actions.js";

/** Tag key carrying the role of each Fencepost resource in the template. */
export const RESOURCE_ROLE_TAG = "fencepost:resource";
/** Metadata key naming a function's handler source (relative to the package root), for the local cloud. */
export const HANDLER_METADATA = "fencepost:handler";

/** Settings of the tables (and queues and log groups) a Fencepost construct declares. */
export interface FencepostTableProps {
  /**
   * What happens to tables and function log groups when the stack is deleted (or a
   * resource is replaced). RETAIN by default because the tables are the coordination
   * state: the lock table holds the fencing-token floor (a new table would issue tokens
   * from 1 again) and the decision log the decisions of transactions in doubt. Use
   * `RemovalPolicy.DESTROY` for throwaway stacks; queues are always deleted with the stack.
   *
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Protect tables against accidental deletion.
   *
   * @default false
   */
  readonly deletionProtection?: boolean;
  /**
   * Point-in-time recovery on every table.
   *
   * @default true
   */
  readonly pointInTimeRecovery?: boolean;
  /**
   * A customer-managed KMS key that encrypts the tables, the queues and the functions'
   * log groups (the schedules' dead-letter queues keep SQS-managed encryption: they hold
   * only the schedule's fixed event, and EventBridge would need the key too). Every
   * function and every `grant*` gets `kms:Decrypt`, `kms:DescribeKey`, `kms:Encrypt` and
   * `kms:GenerateDataKey` on it. CloudWatch Logs must be allowed to use the key: for a
   * `kms.Key` of your app the construct adds that to its key policy; for an imported key,
   * add it yourself (see the README).
   *
   * @default - AWS-managed encryption: AWS owned keys for tables, SQS-managed SSE for queues, CloudWatch Logs' own for logs
   */
  readonly encryptionKey?: kms.IKey;
}

/** Where a Fencepost construct's alarms notify. */
export interface FencepostAlarmProps {
  /**
   * The SNS topic every alarm of the construct notifies when it goes into ALARM (the
   * in-doubt and dead-letter alarms, each function's error and throttle alarms).
   *
   * @default - no action: the alarms only change state
   */
  readonly alarmTopic?: sns.ITopic;
}

/** Settings of the tables and the functions a Fencepost construct declares, and of its alarms. */
export interface FencepostFunctionProps extends FencepostTableProps, FencepostAlarmProps {
  /**
   * Retention of the functions' logs.
   *
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Lambda architecture of the functions.
   *
   * @default lambda.Architecture.ARM_64
   */
  readonly architecture?: lambda.Architecture;
  /**
   * X-Ray active tracing of the functions: a segment per invocation, a subsegment per
   * AWS SDK call (Powertools tracer). Off also sets `POWERTOOLS_TRACE_ENABLED=false`.
   *
   * @default true
   */
  readonly tracing?: boolean;
}

/** Where a part of Fencepost creates its resources. */
export interface ResourceScopeProps {
  /**
   * The construct the resources are created in: their CloudFormation logical IDs follow
   * from its path. `Fencepost` passes itself, so the resources of its parts keep the
   * logical IDs they had before the parts were split out (replacing the lock table would
   * lose the fencing-token floor, replacing the decision log its decisions). Tags and
   * aspects reach the resources through this scope, not through the part's own node.
   *
   * @default - this construct
   */
  readonly resourceScope?: Construct;
}

/** The package root: the repository in development, `dist/` once compiled. */
const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** A handler's entry file: the TypeScript source if present, else its compiled twin. */
function entryOf(source: string): string {
  const ts = join(packageRoot, source);
  return existsSync(ts) ? ts : join(packageRoot, source.replace(/\.ts$/, ".js"));
}

/** An on-demand table with partition key `pk` (S), TTL on `ttl`, PITR, tagged with its role. */
export function createTable(scope: Construct, id: string, role: string, props: FencepostTableProps, sortKey?: dynamodb.Attribute): dynamodb.Table {
  const table = new dynamodb.Table(scope, id, {
    partitionKey: { name: "pk", type: dynamodb.AttributeType.STRING },
    ...(sortKey ? { sortKey } : {}),
    billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
    timeToLiveAttribute: "ttl",
    pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: props.pointInTimeRecovery ?? true },
    deletionProtection: props.deletionProtection ?? false,
    removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    ...(props.encryptionKey ? { encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED, encryptionKey: props.encryptionKey } : {}),
  });
  Tags.of(table).add(RESOURCE_ROLE_TAG, role);
  return table;
}

/** What differs between Fencepost's functions. */
export interface ServiceFunctionOptions {
  /** The function's description in the console. */
  readonly description: string;
  /** Its environment (the factory adds `NODE_OPTIONS=--enable-source-maps`). */
  readonly environment: Record<string, string>;
  /** Its timeout. */
  readonly timeout: Duration;
  /** Concurrent executions reserved (and so at most allowed); 1 for scheduled functions whose runs must not overlap. @default - unreserved */
  readonly reservedConcurrentExecutions?: number;
}

/**
 * A function with its own role (logs to its own log group, nothing else until granted),
 * bundled by esbuild, and the metadata the local cloud serves it by.
 */
export function createFunction(scope: Construct, id: string, role: string, source: string, props: FencepostFunctionProps, options: ServiceFunctionOptions): NodejsFunction {
  const tracing = props.tracing ?? true;
  if (props.encryptionKey) allowLogsToUse(scope, props.encryptionKey);
  const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
    retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
    removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    ...(props.encryptionKey ? { encryptionKey: props.encryptionKey } : {}),
  });
  const executionRole = new iam.Role(scope, `${id}Role`, {
    assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
    description: `Execution role of ${id}: its own log group; table access is granted per action`,
  });
  executionRole.addToPolicy(new iam.PolicyStatement({ actions: [...LOG_GROUP_WRITE_ACTIONS], resources: [logGroup.logGroupArn] }));
  const fn = new NodejsFunction(scope, id, {
    entry: entryOf(source),
    handler: "handler",
    runtime: lambda.Runtime.NODEJS_22_X,
    architecture: props.architecture ?? lambda.Architecture.ARM_64,
    memorySize: 256,
    role: executionRole,
    logGroup,
    bundling: { format: OutputFormat.ESM, target: "node22", minify: true, sourceMap: true, mainFields: ["module", "main"], banner: "import { createRequire } from 'module';const require = createRequire(import.meta.url);" },
    tracing: tracing ? lambda.Tracing.ACTIVE : lambda.Tracing.DISABLED,
    ...options,
    environment: {
      ...options.environment,
      NODE_OPTIONS: "--enable-source-maps",
      // The Powertools metrics' Construct dimension (lib/service/middleware.ts), which the construct's metric* methods name.
      METRIC_DIMENSION: scope.node.path,
      POWERTOOLS_TRACE_ENABLED: String(tracing),
    },
  });
  Tags.of(fn).add(RESOURCE_ROLE_TAG, role);
  grantKeyUse(fn, props);
  if (tracing) {
    Validations.of(executionRole).acknowledge({
      id: "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
      reason: "X-Ray tracing (lambda.Tracing.ACTIVE) grants xray:PutTraceSegments and xray:PutTelemetryRecords, which support no resource-level permissions: their resource is always '*'.",
    });
  }
  (fn.node.defaultChild as lambda.CfnFunction).addMetadata(HANDLER_METADATA, source);
  Validations.of(fn).acknowledge({
    id: "AwsSolutions::AwsSolutions-L1",
    reason: "Node.js 22 is pinned on purpose: it is the newest runtime the library is tested on (Node >= 20); a runtime upgrade is a tested release, not an automatic bump.",
  });
  return fn;
}

/**
 * Lets `grantee` invoke `fn` by its unqualified ARN only. (`fn.grantInvoke` would add
 * `<arn>:*` for versions and aliases, a wildcard resource this needs not.)
 */
export function grantInvokeFunction(grantee: iam.IGrantable, fn: lambda.IFunction): iam.Grant {
  return iam.Grant.addToPrincipal({ grantee, actions: [...FUNCTION_INVOKE_ACTIONS], resourceArns: [fn.functionArn] });
}

/** Lets `grantee` use the construct's customer-managed key, if it has one (KEY_USE_ACTIONS on the key). */
export function grantKeyUse(grantee: iam.IGrantable, props: FencepostTableProps): iam.Grant | undefined {
  if (!props.encryptionKey) return undefined;
  return iam.Grant.addToPrincipal({ grantee, actions: [...KEY_USE_ACTIONS], resourceArns: [props.encryptionKey.keyArn] });
}

/** `grant`, combined with the key grant when the construct has a customer-managed key. */
export function withKeyUse(grant: iam.Grant, grantee: iam.IGrantable, props: FencepostTableProps): iam.Grant {
  const key = grantKeyUse(grantee, props);
  return key ? grant.combine(key) : grant;
}

/** Keys whose policy already lets CloudWatch Logs use them (one statement per key, however many log groups). */
const keysAllowingLogs = new WeakSet<kms.IKey>();

/**
 * Lets CloudWatch Logs of this stack's region encrypt log groups of this account with
 * `key` (a no-op for an imported key, whose policy is not ours: the README says what to add).
 */
function allowLogsToUse(scope: Construct, key: kms.IKey): void {
  if (keysAllowingLogs.has(key)) return;
  keysAllowingLogs.add(key);
  const stack = Stack.of(scope);
  key.addToResourcePolicy(
    new iam.PolicyStatement({
      principals: [new iam.ServicePrincipal(`logs.${stack.region}.amazonaws.com`)],
      actions: [...LOG_GROUP_KEY_ACTIONS],
      resources: ["*"],
      conditions: { ArnLike: { "kms:EncryptionContext:aws:logs:arn": `arn:${stack.partition}:logs:${stack.region}:${stack.account}:log-group:*` } },
    }),
    /* allowNoOp */ true,
  );
}

/** Makes `alarm` notify `props.alarmTopic`, if given; returns the alarm. */
export function notify(alarm: cloudwatch.Alarm, props: FencepostAlarmProps): cloudwatch.Alarm {
  if (props.alarmTopic) alarm.addAlarmAction(new cloudwatchActions.SnsAction(props.alarmTopic));
  return alarm;
}

/**
 * A Fencepost function's per-invocation metric (Powertools EMF, lib/service/middleware.ts):
 * `Requests` or `Duration` in namespace `Fencepost`, dimensions `Construct` (`construct`:
 * the path of the construct holding the resources), `Function` and `Outcome`. Sum over 5 minutes unless `props` says otherwise.
 */
export function invocationMetric(construct: string, functionName: string, metricName: string, outcome: "ok" | "rejected" | "fault", props?: cloudwatch.MetricOptions): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: FENCEPOST_METRICS.namespace,
    metricName,
    dimensionsMap: { [FENCEPOST_METRICS.construct]: construct, [FENCEPOST_METRICS.function]: functionName, [FENCEPOST_METRICS.outcome]: outcome },
    statistic: cloudwatch.Stats.SUM,
    ...props,
  });
}

/** A function's error and throttle alarms: what they watch. */
export interface FunctionAlarmSpec {
  /** The function's construct id: the alarms are `${id}ErrorsAlarm` and `${id}ThrottlesAlarm`. */
  readonly id: string;
  /** How the alarm descriptions name it ("The lock function"). */
  readonly description: string;
  /**
   * The failures to alarm on: Lambda's `Errors` for a scheduled function (every failed run
   * counts), or `Errors` minus the typed answers it rejected with for a service function
   * (a lock timeout is an answer, not a failure: `unexpectedErrors`).
   */
  readonly errors: cloudwatch.IMetric;
  /** Lambda's `Throttles`. */
  readonly throttles: cloudwatch.IMetric;
  /**
   * Throttling is expected now and then (a scheduled function with reserved concurrency 1
   * whose previous run is still going): alarm only when it lasts 3 periods in a row.
   */
  readonly throttlesExpected?: boolean;
}

/** Each function's error alarm and throttle alarm (threshold 1 per 5-minute period), all notifying `props.alarmTopic`. */
export function createFunctionAlarms(scope: Construct, specs: readonly FunctionAlarmSpec[], props: FencepostAlarmProps): cloudwatch.Alarm[] {
  return specs.flatMap((spec) => {
    const periods = spec.throttlesExpected ? 3 : 1;
    const alarm = (kind: string, alarmDescription: string, metric: cloudwatch.IMetric, evaluationPeriods: number) =>
      notify(
        new cloudwatch.Alarm(scope, `${spec.id}${kind}Alarm`, {
          alarmDescription,
          metric,
          threshold: 1,
          evaluationPeriods,
          datapointsToAlarm: evaluationPeriods,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
        props,
      );
    return [
      alarm("Errors", `${spec.description} failed (an error that is not a typed answer, a timeout or a crash). See its log group: level ERROR lines.`, spec.errors, 1),
      alarm(
        "Throttles",
        spec.throttlesExpected
          ? `${spec.description} was throttled in ${periods} periods in a row: its runs keep overlapping (reserved concurrency 1), so a run takes longer than its schedule's interval.`
          : `${spec.description} was throttled: callers were refused. Raise the account's concurrency limit or reserve concurrency for it.`,
        spec.throttles,
        periods,
      ),
    ];
  });
}

/**
 * The errors of a service function that are not typed answers: Lambda's `Errors` minus
 * the requests it answered with a typed FencepostError (`Requests`, Outcome `rejected`),
 * both summed per period (the function's metrics carry the invocation's start as Lambda's do).
 */
export function unexpectedErrors(fn: lambda.IFunction, rejected: cloudwatch.IMetric, label: string): cloudwatch.MathExpression {
  return new cloudwatch.MathExpression({
    expression: "errors - FILL(rejected, 0)",
    usingMetrics: { errors: fn.metricErrors({ period: Duration.minutes(5) }), rejected },
    period: Duration.minutes(5),
    label,
  });
}

/**
 * Runs `fn` on `schedule`: one run at a time (reserved concurrency 1 is set on the
 * function by its factory), a delivery retried twice within the interval, then kept in
 * `${id}DeadLetters` (a standard queue, SSE-SQS, TLS only, 14 days), which is alarmed.
 * A throttled run (the previous one still going) is dropped after a minute, not queued
 * for hours: the next tick is the retry.
 */
export function scheduleFunction(scope: Construct, id: string, fn: lambda.Function, schedule: Duration, description: string, role: string, props: FencepostAlarmProps): { rule: events.Rule; deadLetters: sqs.Queue; deadLetterAlarm: cloudwatch.Alarm } {
  const deadLetters = new sqs.Queue(scope, `${id}DeadLetters`, {
    retentionPeriod: Duration.days(14),
    enforceSSL: true,
    encryption: sqs.QueueEncryption.SQS_MANAGED,
  });
  Tags.of(deadLetters).add(RESOURCE_ROLE_TAG, role);
  Validations.of(deadLetters).acknowledge({
    id: "AwsSolutions::AwsSolutions-SQS3",
    reason: "This queue is itself a dead-letter queue: the EventBridge schedule target's (cdk-nag recognises only SQS redrive dead-letter queues). It is alarmed.",
  });
  const maxEventAge = Duration.seconds(Math.max(60, Math.min(schedule.toSeconds(), 86_400)));
  const rule = new events.Rule(scope, id, {
    description,
    schedule: events.Schedule.rate(schedule),
    targets: [new targets.LambdaFunction(fn, { event: events.RuleTargetInput.fromObject({ source: "schedule" }), deadLetterQueue: deadLetters, retryAttempts: 2, maxEventAge })],
  });
  fn.configureAsyncInvoke({ retryAttempts: 0, maxEventAge: Duration.seconds(60) });
  const deadLetterAlarm = notify(
    new cloudwatch.Alarm(scope, `${id}DeadLetterAlarm`, {
      alarmDescription: `EventBridge could not invoke ${fn.node.id} on its schedule (see the message attributes in ${id}DeadLetters for the error).`,
      metric: deadLetters.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5) }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    }),
    props,
  );
  return { rule, deadLetters, deadLetterAlarm };
}
