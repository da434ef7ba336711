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
import { Duration, RemovalPolicy, Tags, Validations } from "aws-cdk-lib";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { NodejsFunction, OutputFormat } from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import type { Construct } from "constructs";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { FUNCTION_INVOKE_ACTIONS, LOG_GROUP_WRITE_ACTIONS } from "./iam-actions.js";

/** Tag key carrying the role of each Fencepost resource in the template. */
export const RESOURCE_ROLE_TAG = "fencepost:resource";
/** Metadata key naming a function's handler source (relative to the package root), for the local cloud. */
export const HANDLER_METADATA = "fencepost:handler";

/** Settings of the tables a Fencepost construct declares. */
export interface FencepostTableProps {
  /**
   * What happens to tables and function log groups when the stack is deleted.
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
}

/** Settings of the tables and the functions a Fencepost construct declares. */
export interface FencepostFunctionProps extends FencepostTableProps {
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
}

/**
 * A function with its own role (logs to its own log group, nothing else until granted),
 * bundled by esbuild, and the metadata the local cloud serves it by.
 */
export function createFunction(scope: Construct, id: string, role: string, source: string, props: FencepostFunctionProps, options: ServiceFunctionOptions): NodejsFunction {
  const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
    retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
    removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
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

/**
 * Lets `grantee` invoke `fn` by its unqualified ARN only. (`fn.grantInvoke` would add
 * `<arn>:*` for versions and aliases, a wildcard resource this needs not.)
 */
export function grantInvokeFunction(grantee: iam.IGrantable, fn: lambda.IFunction): iam.Grant {
  return iam.Grant.addToPrincipal({ grantee, actions: [...FUNCTION_INVOKE_ACTIONS], resourceArns: [fn.functionArn] });
}
