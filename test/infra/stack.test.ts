/**
 * The synthesized stack: what the construct promises (tables, function settings,
 * least-privilege IAM without wildcard actions, log retention), that cdk-nag's
 * AwsSolutions checks pass with only justified acknowledgements, that the check is
 * live (a wildcard policy makes synthesis fail), that the logical IDs of stateful
 * resources never change (an upgrade must not replace a table, a queue or a log group),
 * and the parts' conventions: every grant returns an iam.Grant, alarms are built from
 * the `metric*` methods.
 */
import { App, RemovalPolicy, Stack, Validations } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import type * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as iam from "aws-cdk-lib/aws-iam";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as kms from "aws-cdk-lib/aws-kms";
import * as sns from "aws-cdk-lib/aws-sns";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { AwsSolutionsChecks } from "cdk-nag";
import { describe, expect, it } from "vitest";
import { Fencepost, HANDLER_METADATA, RESOURCE_ROLE_TAG } from "../../infra/fencepost.js";
import * as iamActions from "../../infra/iam-actions.js";
import { BroadcastLog, CoordinationService, LockService, TransactionCoordinator } from "../../infra/index.js";
import { Duration } from "aws-cdk-lib";
import { buildApp } from "../../infra/synth.js";
import { inDoubtFigures } from "../../lib/service/txn-metrics.js";

const noBundling = () => new App({ context: { "aws:cdk:bundling-stacks": [] } });

function stackTemplate(): Template {
  return Template.fromStack(buildApp(noBundling()).stack);
}

type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;

/** Logical IDs by resource type, sorted. */
function logicalIds(resources: Resources, type: string): string[] {
  return Object.keys(resources)
    .filter((id) => resources[id]!.Type === type)
    .sort();
}

/**
 * The Fencepost stack's logical IDs as synthesized before the construct was split into
 * LockService, BroadcastLog and TransactionCoordinator: a compatibility contract. A
 * changed ID is a replaced resource on the next deploy; for the lock table that loses the
 * fencing-token floor (tokens go backwards), for the decision log the decisions of
 * transactions in doubt.
 */
const STATEFUL_LOGICAL_IDS: Record<string, string[]> = {
  "AWS::DynamoDB::Table": ["FencepostCoordinationTableDE052BAB", // added with the coordination service
    "FencepostLockTableADCE5140", "FencepostLogTable585E9B98", "FencepostTxnTable4A1A1841"],
  "AWS::SQS::Queue": ["FencepostBroadcastDeadLettersF9D1149F", "FencepostBroadcastQueue9CA76340",
    "FencepostCoordinationReaperScheduleDeadLettersB8F6395B", "FencepostTxnRecoveryScheduleDeadLettersC0BF0258"], // added with the schedules' dead-letter queues
  "AWS::Logs::LogGroup": ["FencepostCoordinationFunctionLogs33CF07A1", "FencepostCoordinationReaperFunctionLogs56946E1E", // added with the coordination service
    "FencepostLockFunctionLogsAB30FA5A", "FencepostTxnFunctionLogsCAFB3A8E", "FencepostTxnRecoveryFunctionLogsC342A64E"],
};
/** Every other logical ID of that stack (functions, roles, policies, rule, alarms): kept too, so nothing is replaced. */
const STATELESS_LOGICAL_IDS = [
  "FencepostBroadcastDeadLettersPolicy9D78591D",
  "FencepostBroadcastQueuePolicyC5D21CE1",
  "FencepostBroadcastDeadLetterAlarm3ACCF0A6",
  "FencepostLockFunctionRole44C42749",
  "FencepostLockFunctionRoleDefaultPolicyB3431F0F",
  "FencepostLockFunctionD72D879D",
  "FencepostTxnFunctionRoleEC7B6978",
  "FencepostTxnFunctionRoleDefaultPolicyD5AE5491",
  "FencepostTxnFunction898810DB",
  "FencepostTxnRecoveryFunctionRoleD11AFE6A",
  "FencepostTxnRecoveryFunctionRoleDefaultPolicy52B0D2B2",
  "FencepostTxnRecoveryFunction98DFA911",
  "FencepostTxnRecoverySchedule796F9D12",
  "FencepostTxnRecoveryScheduleAllowEventRuleFencepostTxnRecoveryFunction9BE4423C082765E4",
  "FencepostInDoubtAlarm96434354",
  // added with the coordination service's functions
  "FencepostCoordinationFunctionRole8AD8CB0C",
  "FencepostCoordinationFunctionRoleDefaultPolicy3B0A74AF",
  "FencepostCoordinationFunction50DBDCFD",
  "FencepostCoordinationReaperFunctionRole20748D43",
  "FencepostCoordinationReaperFunctionRoleDefaultPolicy58B8797E",
  "FencepostCoordinationReaperFunction484CB56E",
  "FencepostCoordinationReaperScheduleFA429822",
];

describe("Fencepost stack", () => {
  it("declares the lock table on demand, with PITR and TTL, tagged with its role", () => {
    stackTemplate().hasResourceProperties("AWS::DynamoDB::Table", {
      BillingMode: "PAY_PER_REQUEST",
      KeySchema: [{ AttributeName: "pk", KeyType: "HASH" }],
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      TimeToLiveSpecification: { AttributeName: "ttl", Enabled: true },
      Tags: Match.arrayWith([{ Key: RESOURCE_ROLE_TAG, Value: "locks" }]),
    });
  });

  it("runs the lock function on Node 22, arm64, with the table's name and its handler recorded for local serving", () => {
    const template = stackTemplate();
    template.hasResource("AWS::Lambda::Function", {
      Properties: Match.objectLike({
        Runtime: "nodejs22.x",
        Architectures: ["arm64"],
        Environment: { Variables: Match.objectLike({ TABLE_NAME: { Ref: Match.stringLikeRegexp("LockTable") } }) },
      }),
      Metadata: Match.objectLike({ [HANDLER_METADATA]: "functions/locks.ts" }),
    });
    template.hasResourceProperties("AWS::Logs::LogGroup", { RetentionInDays: 30 });
    template.hasOutput("LockFunctionName", {});
    template.hasOutput("LockTableName", {});
    template.hasOutput("LogTableName", {});
    template.hasOutput("BroadcastQueueUrl", {});
  });

  it("declares the decision log with its in-doubt index, the recovery schedule and the in-doubt alarm", () => {
    const template = stackTemplate();
    template.hasResourceProperties("AWS::DynamoDB::Table", {
      GlobalSecondaryIndexes: [Match.objectLike({ IndexName: "in-doubt", KeySchema: [{ AttributeName: "inDoubt", KeyType: "HASH" }, { AttributeName: "deadline", KeyType: "RANGE" }] })],
      Tags: Match.arrayWith([{ Key: RESOURCE_ROLE_TAG, Value: "txn" }]),
    });
    template.hasResourceProperties("AWS::Events::Rule", { ScheduleExpression: "rate(1 minute)" });
    template.hasResourceProperties("AWS::CloudWatch::Alarm", { MetricName: "OldestInDoubtSeconds", Namespace: "Fencepost", Threshold: 300 });
  });

  it("grants no wildcard action anywhere, and no managed policies", () => {
    const template = stackTemplate().toJSON() as { Resources: Record<string, { Type: string; Properties: Record<string, unknown> }> };
    const statements = Object.values(template.Resources)
      .filter((r) => r.Type === "AWS::IAM::Policy")
      .flatMap((r) => (r.Properties["PolicyDocument"] as { Statement: { Action: string | string[] }[] }).Statement);
    expect(statements.length).toBeGreaterThan(0);
    const actions = statements.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]));
    expect(actions.filter((a) => a.includes("*"))).toEqual([]);
    expect([...new Set(actions)].sort()).toEqual(
      ["dynamodb:ConditionCheckItem", "dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:UpdateItem", "logs:CreateLogStream", "logs:PutLogEvents", ...iamActions.TRACING_ACTIONS].sort(),
    );
    // Query only on the in-doubt index, named (no `index/*`).
    const queries = statements.filter((s) => [s.Action].flat().includes("dynamodb:Query"));
    expect(JSON.stringify(queries)).toContain("/index/in-doubt");
    expect(JSON.stringify(queries)).not.toContain("index/*");
    for (const role of Object.values(template.Resources).filter((r) => r.Type === "AWS::IAM::Role")) {
      expect(role.Properties["ManagedPolicyArns"]).toBeUndefined();
    }
  });

  it("keeps the logical ID of every table, queue and log group, and of every other resource, from before the split", () => {
    const resources = (stackTemplate().toJSON() as { Resources: Resources }).Resources;
    for (const [type, ids] of Object.entries(STATEFUL_LOGICAL_IDS)) expect(logicalIds(resources, type), type).toEqual([...ids].sort());
    expect(Object.keys(resources)).toEqual(expect.arrayContaining([...Object.values(STATEFUL_LOGICAL_IDS).flat(), ...STATELESS_LOGICAL_IDS]));
  });

  it("passes cdk-nag AwsSolutions with every acknowledgement justified", () => {
    // buildApp registers the checks; synthesis throws on any unacknowledged finding.
    expect(() => buildApp(noBundling()).app.synth()).not.toThrow();
  });

  it("fails synthesis when a finding is not acknowledged (the check is live)", () => {
    const { app, stack } = buildApp(noBundling());
    stack.fencepost.lockFunction.addToRolePolicy(new iam.PolicyStatement({ actions: ["dynamodb:*"], resources: ["*"] }));
    expect(() => app.synth()).toThrow(/AwsSolutions-IAM5\[Action::dynamodb:\*\]/);
  });
});

describe("Fencepost construct, embedded in another app", () => {
  it("honours removal policy and deletion protection, and grants per use", () => {
    const app = noBundling();
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    const stack = new Stack(app, "UserStack");
    const fencepost = new Fencepost(stack, "Coordination", { removalPolicy: RemovalPolicy.DESTROY, deletionProtection: true });
    const worker = new iam.Role(stack, "Worker", { assumedBy: new iam.ServicePrincipal("ecs-tasks.amazonaws.com") });
    fencepost.grantLockClient(worker);
    const operator = new iam.Role(stack, "Operator", { assumedBy: new iam.AccountRootPrincipal() });
    fencepost.grantInvokeLocks(operator);
    const template = Template.fromStack(stack);
    template.hasResource("AWS::DynamoDB::Table", { DeletionPolicy: "Delete", Properties: Match.objectLike({ DeletionProtectionEnabled: true }) });
    template.hasResourceProperties("AWS::IAM::Policy", {
      Roles: [{ Ref: Match.stringLikeRegexp("Worker") }],
      PolicyDocument: { Statement: [Match.objectLike({ Action: ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"] })] },
    });
    template.hasResourceProperties("AWS::IAM::Policy", {
      Roles: [{ Ref: Match.stringLikeRegexp("Operator") }],
      PolicyDocument: { Statement: [Match.objectLike({ Action: "lambda:InvokeFunction" })] },
    });
  });

  it("declares the broadcast queue FIFO with an alarmed FIFO dead-letter queue, and wires a consumer", () => {
    const app = noBundling();
    const stack = new Stack(app, "ConsumerStack");
    const fencepost = new Fencepost(stack, "Coordination");
    const consumer = new lambda.Function(stack, "Billing", { runtime: lambda.Runtime.NODEJS_22_X, handler: "index.handler", code: lambda.Code.fromInline("exports.handler = async () => ({})") });
    fencepost.consumeWith(consumer);
    const template = Template.fromStack(stack);
    template.hasResourceProperties("AWS::SQS::Queue", { FifoQueue: true, RedrivePolicy: Match.objectLike({ maxReceiveCount: 5 }) });
    template.hasResourceProperties("AWS::CloudWatch::Alarm", { Threshold: 1, MetricName: "ApproximateNumberOfMessagesVisible" });
    template.hasResourceProperties("AWS::Lambda::EventSourceMapping", { BatchSize: 10, FunctionResponseTypes: ["ReportBatchItemFailures"] });
    template.hasResourceProperties("AWS::DynamoDB::Table", { KeySchema: [{ AttributeName: "pk", KeyType: "HASH" }, { AttributeName: "sk", KeyType: "RANGE" }] });
    // consumerMetrics in the consumer reports under the construct that metricConsumerLag reads.
    template.hasResourceProperties("AWS::Lambda::Function", { Handler: "index.handler", Environment: { Variables: { METRIC_DIMENSION: "ConsumerStack/Coordination" } } });
    expect(fencepost.metricConsumerLag("orders", "billing").dimensions).toMatchObject({ Construct: "ConsumerStack/Coordination" });
  });
});

describe("Fencepost construct, twice in one stack", () => {
  it("keeps each construct's stateful logical IDs from before the split, distinct from the other's", () => {
    const stack = new Stack(noBundling(), "UserStack");
    new Fencepost(stack, "A");
    new Fencepost(stack, "B");
    const resources = (Template.fromStack(stack).toJSON() as { Resources: Resources }).Resources;
    expect(logicalIds(resources, "AWS::DynamoDB::Table")).toEqual(["ACoordinationTableDF4412CD", "ALockTableFFF54D45", "ALogTable94D9CE82", "ATxnTableB3F4A1F6", "BCoordinationTable422FFADC", "BLockTable1C0195BC", "BLogTable89B885F9", "BTxnTableB9BE7715"]);
    expect(logicalIds(resources, "AWS::SQS::Queue")).toEqual([
      "ABroadcastDeadLetters773993DA",
      "ABroadcastQueue615AAA69",
      "ACoordinationReaperScheduleDeadLettersF2061642",
      "ATxnRecoveryScheduleDeadLetters1B0C9D3E",
      "BBroadcastDeadLetters894CFB05",
      "BBroadcastQueueE67AEC07",
      "BCoordinationReaperScheduleDeadLettersE4C78C81",
      "BTxnRecoveryScheduleDeadLettersFEA8386A",
    ]);
    expect(logicalIds(resources, "AWS::Logs::LogGroup")).toEqual([
      "ACoordinationFunctionLogsA778A2BC",
      "ACoordinationReaperFunctionLogsBA6549A0",
      "ALockFunctionLogs18F22E61",
      "ATxnFunctionLogs7D9D5A85",
      "ATxnRecoveryFunctionLogsD5F7DC22",
      "BCoordinationFunctionLogsF52557BD",
      "BCoordinationReaperFunctionLogsAC6E170F",
      "BLockFunctionLogs8CB7F354",
      "BTxnFunctionLogs95B1DEA2",
      "BTxnRecoveryFunctionLogs88A0A753",
    ]);
  });
});

describe("Fencepost's grants and metrics", () => {
  function embedded() {
    const stack = new Stack(noBundling(), "UserStack");
    const fencepost = new Fencepost(stack, "Coordination");
    const worker = new iam.Role(stack, "Worker", { assumedBy: new iam.ServicePrincipal("ecs-tasks.amazonaws.com") });
    return { stack, fencepost, worker };
  }

  it("returns an iam.Grant from every grant, each granted to the principal", () => {
    const { fencepost, worker } = embedded();
    const grants = [
      fencepost.grantLockClient(worker),
      fencepost.grantInvokeLocks(worker),
      fencepost.grantPublish(worker),
      fencepost.grantConsume(worker),
      fencepost.grantCoordinator(worker),
      fencepost.grantInvokeCoordinator(worker),
      fencepost.grantCoordination(worker),
      fencepost.grantInvokeCoordination(worker),
    ];
    for (const grant of grants) {
      expect(grant).toBeInstanceOf(iam.Grant);
      expect(grant.success).toBe(true);
    }
    // The combined grants carry every statement: table and queue, items and in-doubt index.
    expect(fencepost.grantPublish(worker).principalStatements).toHaveLength(2);
    expect(fencepost.grantCoordinator(worker).principalStatements).toHaveLength(2);
  });

  it("adds a participant to both coordinator functions and returns the grants; allowParticipant still does the same", () => {
    const { stack, fencepost } = embedded();
    const orders = new dynamodb.Table(stack, "Orders", { partitionKey: { name: "pk", type: dynamodb.AttributeType.STRING } });
    const outbox = new sqs.Queue(stack, "Outbox", { fifo: true });
    const grant = fencepost.addParticipant(orders);
    expect(grant).toBeInstanceOf(iam.Grant);
    expect(grant.principalStatements).toHaveLength(2);
    expect(fencepost.allowParticipant(outbox)).toBeInstanceOf(iam.Grant);
    const template = Template.fromStack(stack);
    for (const role of ["TxnFunctionRole", "TxnRecoveryFunctionRole"]) {
      template.hasResourceProperties("AWS::IAM::Policy", {
        Roles: [{ Ref: Match.stringLikeRegexp(role) }],
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Action: [...iamActions.TXN_ITEM_ACTIONS], Resource: { "Fn::GetAtt": [Match.stringLikeRegexp("Orders"), "Arn"] } }),
            Match.objectLike({ Action: Match.arrayWith(["sqs:SendMessage"]), Resource: { "Fn::GetAtt": [Match.stringLikeRegexp("Outbox"), "Arn"] } }),
          ]),
        },
      });
    }
  });

  it("names the in-doubt metrics as recovery reports them, and builds the in-doubt alarm from them", () => {
    const { stack, fencepost } = embedded();
    // What recovery publishes (the EMF line: test/service/observability.test.ts), under METRIC_DIMENSION = the construct's path.
    const reported = { ...inDoubtFigures([]), Construct: fencepost.node.path };
    for (const metric of [fencepost.metricInDoubtTransactions(), fencepost.metricOldestInDoubtSeconds()]) {
      expect(metric.namespace).toBe("Fencepost");
      expect(metric.statistic).toBe("Maximum");
      expect(metric.dimensions).toEqual({ Construct: "UserStack/Coordination" });
      expect(Object.keys(reported)).toContain(metric.metricName);
      expect(reported["Construct"]).toBe(metric.dimensions?.["Construct"]);
    }
    expect(fencepost.metricOldestInDoubtSeconds({ statistic: "Average" }).statistic).toBe("Average");
    expect(fencepost.metric("InDoubtTransactions").metricName).toBe("InDoubtTransactions");
    Template.fromStack(stack).hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: "Fencepost",
      MetricName: fencepost.metricOldestInDoubtSeconds().metricName,
      Dimensions: [{ Name: "Construct", Value: "UserStack/Coordination" }],
      Statistic: "Maximum",
      Period: 60,
    });
    Template.fromStack(stack).hasResourceProperties("AWS::Lambda::Function", {
      Environment: { Variables: Match.objectLike({ METRIC_DIMENSION: "UserStack/Coordination" }) },
    });
  });

  it("offers the dead letters and the functions' errors and throttles as metrics", () => {
    const { fencepost } = embedded();
    expect(fencepost.metricDeadLetters()).toMatchObject({ namespace: "AWS/SQS", metricName: "ApproximateNumberOfMessagesVisible", statistic: "Maximum" });
    expect(fencepost.broadcastDeadLetterAlarm.metric).toMatchObject({ metricName: "ApproximateNumberOfMessagesVisible" });
    const functionMetrics: [cloudwatch.Metric, lambda.IFunction, string][] = [
      [fencepost.metricLockFunctionErrors(), fencepost.lockFunction, "Errors"],
      [fencepost.metricLockFunctionThrottles(), fencepost.lockFunction, "Throttles"],
      [fencepost.metricTxnFunctionErrors(), fencepost.txnFunction, "Errors"],
      [fencepost.metricTxnFunctionThrottles(), fencepost.txnFunction, "Throttles"],
      [fencepost.metricTxnRecoveryFunctionErrors(), fencepost.txnRecoveryFunction, "Errors"],
      [fencepost.metricTxnRecoveryFunctionThrottles(), fencepost.txnRecoveryFunction, "Throttles"],
      [fencepost.metricCoordinationFunctionErrors(), fencepost.coordinationFunction, "Errors"],
      [fencepost.metricCoordinationFunctionThrottles(), fencepost.coordinationFunction, "Throttles"],
      [fencepost.metricCoordinationReaperFunctionErrors(), fencepost.coordinationReaperFunction, "Errors"],
      [fencepost.metricCoordinationReaperFunctionThrottles(), fencepost.coordinationReaperFunction, "Throttles"],
    ];
    for (const [metric, fn, name] of functionMetrics) {
      expect(metric).toMatchObject({ namespace: "AWS/Lambda", metricName: name, statistic: "Sum" });
      expect(metric.dimensions).toEqual({ FunctionName: fn.functionName });
    }
  });
});

describe("Fencepost's parts, each on its own", () => {
  it("synthesize clean under cdk-nag, their resources under their own paths", () => {
    const app = noBundling();
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    const stack = new Stack(app, "Parts");
    const locks = new LockService(stack, "Locks");
    new BroadcastLog(stack, "Broadcast");
    const transactions = new TransactionCoordinator(stack, "Transactions");
    new CoordinationService(stack, "Coordination");
    expect(() => app.synth()).not.toThrow();
    const template = Template.fromStack(stack);
    expect(stack.resolve(locks.lockTable.tableName)).toEqual({ Ref: expect.stringMatching(/^LocksLockTable/) });
    expect(Object.keys(template.findResources("AWS::DynamoDB::Table")).sort()).toEqual([
      expect.stringMatching(/^BroadcastLogTable/),
      expect.stringMatching(/^CoordinationCoordinationTable/),
      expect.stringMatching(/^LocksLockTable/),
      expect.stringMatching(/^TransactionsTxnTable/),
    ]);
    expect(transactions.metricOldestInDoubtSeconds().dimensions).toEqual({ Construct: "Parts/Transactions" });
    template.hasResourceProperties("AWS::Lambda::Function", { Environment: { Variables: Match.objectLike({ METRIC_DIMENSION: "Parts/Transactions" }) } });
  });
});

describe("The coordination service part", () => {
  type Statement = { Action: string | string[]; Resource: unknown };
  /** The statements of the policy attached to the role whose logical ID starts with `role`. */
  function statementsOf(template: Template, role: string): Statement[] {
    const policies = Object.values(template.findResources("AWS::IAM::Policy")).filter((p) =>
      JSON.stringify((p as { Properties: { Roles: unknown } }).Properties.Roles).includes(role),
    ) as { Properties: { PolicyDocument: { Statement: Statement[] } } }[];
    return policies.flatMap((p) => p.Properties.PolicyDocument.Statement);
  }
  const actionsOf = (statements: Statement[]) => statements.flatMap((s) => [s.Action].flat()).sort();

  it("serves the coordination function and runs the reaper every minute for up to 15 minutes, each with its handler recorded", () => {
    const template = stackTemplate();
    template.hasResource("AWS::Lambda::Function", {
      Properties: Match.objectLike({ Timeout: 30, Environment: { Variables: Match.objectLike({ COORDINATION_TABLE: { Ref: Match.stringLikeRegexp("CoordinationTable") } }) } }),
      Metadata: Match.objectLike({ [HANDLER_METADATA]: "functions/coordination.ts" }),
    });
    template.hasResource("AWS::Lambda::Function", {
      Properties: Match.objectLike({ Timeout: 900, Environment: { Variables: Match.objectLike({ COORDINATION_TABLE: { Ref: Match.stringLikeRegexp("CoordinationTable") } }) } }),
      Metadata: Match.objectLike({ [HANDLER_METADATA]: "functions/coordination-reaper.ts" }),
    });
    template.hasResourceProperties("AWS::Events::Rule", {
      ScheduleExpression: "rate(1 minute)",
      Targets: [Match.objectLike({ Arn: { "Fn::GetAtt": [Match.stringLikeRegexp("CoordinationReaperFunction"), "Arn"] } })],
    });
    template.hasResourceProperties("AWS::Lambda::Function", { Tags: Match.arrayWith([{ Key: RESOURCE_ROLE_TAG, Value: "coordination-reaper" }]) });
    template.hasOutput("CoordinationTableName", {});
    template.hasOutput("CoordinationFunctionName", {});
  });

  it("gives each function only the actions it needs, on the coordination table only: Scan for the reaper alone", () => {
    const template = stackTemplate();
    const table = { "Fn::GetAtt": [Match.stringLikeRegexp("CoordinationTable"), "Arn"] };
    for (const [role, actions] of [["FencepostCoordinationFunctionRole", iamActions.COORDINATION_SERVICE_ACTIONS], ["FencepostCoordinationReaperFunctionRole", iamActions.COORDINATION_REAPER_ACTIONS]] as const) {
      const statements = statementsOf(template, role);
      expect(actionsOf(statements), role).toEqual([...actions, ...iamActions.LOG_GROUP_WRITE_ACTIONS, ...iamActions.TRACING_ACTIONS].sort());
      expect(actionsOf(statements).filter((a) => a.includes("*")), role).toEqual([]);
      template.hasResourceProperties("AWS::IAM::Policy", {
        Roles: [{ Ref: Match.stringLikeRegexp(role) }],
        PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Action: [...actions], Resource: Match.arrayWith([table]) })]) },
      });
    }
    expect(iamActions.COORDINATION_SERVICE_ACTIONS).not.toContain("dynamodb:Scan");
    expect(iamActions.COORDINATION_REAPER_ACTIONS).toContain("dynamodb:Scan");
  });

  it("takes the reaper's interval as a prop, and grants invoke and table access as iam.Grant", () => {
    const app = noBundling();
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    const stack = new Stack(app, "UserStack");
    const coordination = new CoordinationService(stack, "Coordination", { sessionReaperInterval: Duration.minutes(5) });
    const worker = new iam.Role(stack, "Worker", { assumedBy: new iam.ServicePrincipal("ecs-tasks.amazonaws.com") });
    const operator = new iam.Role(stack, "Operator", { assumedBy: new iam.AccountRootPrincipal() });
    for (const grant of [coordination.grantCoordination(worker), coordination.grantInvokeCoordination(operator)]) {
      expect(grant).toBeInstanceOf(iam.Grant);
      expect(grant.success).toBe(true);
    }
    expect(() => app.synth()).not.toThrow();
    const template = Template.fromStack(stack);
    template.hasResourceProperties("AWS::Events::Rule", { ScheduleExpression: "rate(5 minutes)" });
    template.hasResourceProperties("AWS::IAM::Policy", {
      Roles: [{ Ref: Match.stringLikeRegexp("Operator") }],
      PolicyDocument: { Statement: [Match.objectLike({ Action: "lambda:InvokeFunction", Resource: { "Fn::GetAtt": [Match.stringLikeRegexp("CoordinationCoordinationFunction"), "Arn"] } })] },
    });
    template.hasResourceProperties("AWS::IAM::Policy", {
      Roles: [{ Ref: Match.stringLikeRegexp("Worker") }],
      PolicyDocument: { Statement: [Match.objectLike({ Action: [...iamActions.COORDINATION_ITEM_ACTIONS] })] },
    });
    expect(new Fencepost(new Stack(noBundling(), "S"), "F", { sessionReaperInterval: Duration.minutes(2) }).coordinationService).toBeInstanceOf(CoordinationService);
  });
});

describe("IAM action lists", () => {
  it("name every action, no wildcard", () => {
    const actions = Object.values(iamActions).flat();
    expect(actions.length).toBeGreaterThan(10);
    expect(actions.filter((action) => action.includes("*"))).toEqual([]);
  });
});

describe("Template hardening", () => {
  /** The functions' logical IDs in `resources`, by their `fencepost:resource` role. */
  function functionsByRole(resources: Resources): Record<string, string> {
    return Object.fromEntries(
      Object.entries(resources)
        .filter(([, r]) => r.Type === "AWS::Lambda::Function")
        .map(([id, r]) => [(r.Properties["Tags"] as { Key: string; Value: string }[]).find((t) => t.Key === RESOURCE_ROLE_TAG)!.Value, id]),
    );
  }
  const alarms = (resources: Resources) => Object.entries(resources).filter(([, r]) => r.Type === "AWS::CloudWatch::Alarm");
  const ROLES = ["locks-function", "txn-function", "txn-recovery", "coordination-function", "coordination-reaper"];

  it("reserves concurrency 1 for the recovery and reaper functions only, so their runs never overlap", () => {
    const resources = (stackTemplate().toJSON() as { Resources: Resources }).Resources;
    const fns = functionsByRole(resources);
    expect(Object.keys(fns).sort()).toEqual([...ROLES].sort());
    for (const role of ROLES) {
      const reserved = resources[fns[role]!]!.Properties["ReservedConcurrentExecutions"];
      expect(reserved, role).toBe(role === "txn-recovery" || role === "coordination-reaper" ? 1 : undefined);
    }
    // A throttled scheduled run (the previous one still going) is dropped, not queued for hours.
    const invokeConfigs = Object.values(resources).filter((r) => r.Type === "AWS::Lambda::EventInvokeConfig");
    expect(invokeConfigs.map((r) => [r.Properties["MaximumRetryAttempts"], r.Properties["MaximumEventAgeInSeconds"]])).toEqual([[0, 60], [0, 60]]);
  });

  it("has an error and a throttle alarm on each function, built from the metric* methods; the service functions' errors exclude typed answers", () => {
    const { stack } = buildApp(noBundling());
    const fencepost = stack.fencepost;
    const template = Template.fromStack(stack);
    const resources = (template.toJSON() as { Resources: Resources }).Resources;
    const fns = functionsByRole(resources);
    for (const role of ROLES) {
      const fnRef = { Ref: fns[role] };
      const mentioning = alarms(resources).filter(([, a]) => JSON.stringify(a.Properties).includes(JSON.stringify(fnRef)));
      const byMetric = (name: string) => mentioning.filter(([, a]) => JSON.stringify(a.Properties).includes(`"MetricName":"${name}"`));
      expect(byMetric("Errors"), role).toHaveLength(1);
      expect(byMetric("Throttles"), role).toHaveLength(1);
    }
    // Errors minus the typed answers the function reported (Powertools EMF), for the service functions.
    for (const [metric, fn] of [
      [fencepost.metricLockFunctionRejections(), "locks"],
      [fencepost.metricTxnFunctionRejections(), "txn"],
      [fencepost.metricCoordinationFunctionRejections(), "coordination"],
    ] as const) {
      expect(metric).toMatchObject({ namespace: "Fencepost", metricName: "Requests", statistic: "Sum" });
      expect(metric.dimensions).toEqual({ Construct: "Fencepost/Fencepost", Function: fn, Outcome: "rejected" });
    }
    // The domain metrics name the dimension sets the lock function and consumerMetrics report (test/service/observability.test.ts).
    expect(fencepost.metricGrants()).toMatchObject({ namespace: "Fencepost", metricName: "Grants", statistic: "Sum" });
    expect(fencepost.metricGrants("tryAcquire").dimensions).toEqual({ Construct: "Fencepost/Fencepost", Function: "locks", Action: "tryAcquire" });
    expect(fencepost.metricGrantWait()).toMatchObject({ metricName: "GrantWait", statistic: "p99" });
    expect(fencepost.metricLockTimeouts("elect").dimensions).toEqual({ Construct: "Fencepost/Fencepost", Function: "locks", Action: "elect" });
    expect(fencepost.metricConsumerLag("orders", "billing")).toMatchObject({ metricName: "ConsumerLag", statistic: "Maximum" });
    expect(fencepost.metricHoleFills("orders", "billing").dimensions).toEqual({ Construct: "Fencepost/Fencepost", Stream: "orders", Group: "billing" });
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Metrics: Match.arrayWith([Match.objectLike({ Expression: "errors - FILL(rejected, 0)" })]),
      Threshold: 1,
    });
    // 1 in-doubt + 1 broadcast dead letters + 2 schedules' dead letters + 2 per function.
    expect(fencepost.alarms).toHaveLength(4 + 2 * ROLES.length);
    expect(alarms(resources)).toHaveLength(fencepost.alarms.length);
    for (const [, alarm] of alarms(resources)) expect(alarm.Properties["AlarmActions"]).toBeUndefined();
  });

  it("wires the alarm topic as the action of every alarm, and stays clean under cdk-nag", () => {
    const app = noBundling();
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    const stack = new Stack(app, "UserStack");
    const topic = new sns.Topic(stack, "Pager", { enforceSSL: true, masterKey: kms.Alias.fromAliasName(stack, "SnsKey", "alias/aws/sns") });
    const fencepost = new Fencepost(stack, "Coordination", { alarmTopic: topic });
    expect(() => app.synth()).not.toThrow();
    const resources = (Template.fromStack(stack).toJSON() as { Resources: Resources }).Resources;
    expect(alarms(resources)).toHaveLength(fencepost.alarms.length);
    const topicId = Object.keys(resources).find((k) => resources[k]!.Type === "AWS::SNS::Topic")!;
    for (const [id, alarm] of alarms(resources)) expect(alarm.Properties["AlarmActions"], id).toEqual([{ Ref: topicId }]);
  });

  it("turns X-Ray tracing on by default (and Powertools' tracer with it), off with tracing: false", () => {
    const on = stackTemplate();
    const onResources = (on.toJSON() as { Resources: Resources }).Resources;
    for (const fn of Object.values(onResources).filter((r) => r.Type === "AWS::Lambda::Function")) {
      expect(fn.Properties["TracingConfig"]).toEqual({ Mode: "Active" });
      expect((fn.Properties["Environment"] as { Variables: Record<string, unknown> }).Variables["POWERTOOLS_TRACE_ENABLED"]).toBe("true");
    }
    const stack = new Stack(noBundling(), "UserStack");
    new Fencepost(stack, "Coordination", { tracing: false });
    const off = (Template.fromStack(stack).toJSON() as { Resources: Resources }).Resources;
    for (const fn of Object.values(off).filter((r) => r.Type === "AWS::Lambda::Function")) {
      expect(fn.Properties["TracingConfig"]).toBeUndefined();
      expect((fn.Properties["Environment"] as { Variables: Record<string, unknown> }).Variables["POWERTOOLS_TRACE_ENABLED"]).toBe("false");
    }
    const offActions = Object.values(off)
      .filter((r) => r.Type === "AWS::IAM::Policy")
      .flatMap((r) => (r.Properties["PolicyDocument"] as { Statement: { Action: string | string[] }[] }).Statement.flatMap((st) => [st.Action].flat()));
    expect(offActions.filter((a) => a.startsWith("xray:"))).toEqual([]);
    // `npm run deploy:local` (LocalStack has no X-Ray) turns it off by context.
    const local = Template.fromStack(buildApp(new App({ context: { "aws:cdk:bundling-stacks": [], "fencepost:tracing": "false" } })).stack);
    for (const fn of Object.values((local.toJSON() as { Resources: Resources }).Resources).filter((r) => r.Type === "AWS::Lambda::Function")) expect(fn.Properties["TracingConfig"]).toBeUndefined();
  });

  it("gives each schedule target a retry policy and an alarmed, encrypted, TLS-only dead-letter queue", () => {
    const template = stackTemplate();
    const resources = (template.toJSON() as { Resources: Resources }).Resources;
    const rules = Object.entries(resources).filter(([, r]) => r.Type === "AWS::Events::Rule");
    expect(rules.map(([id]) => id).sort()).toEqual(["FencepostCoordinationReaperScheduleFA429822", "FencepostTxnRecoverySchedule796F9D12"]);
    for (const [id, rule] of rules) {
      const [target] = rule.Properties["Targets"] as Record<string, unknown>[];
      expect(target!["RetryPolicy"], id).toEqual({ MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 60 });
      expect(target!["DeadLetterConfig"], id).toEqual({ Arn: { "Fn::GetAtt": [`${id.replace(/[0-9A-F]{8}$/, "")}DeadLetters${id.includes("Reaper") ? "B8F6395B" : "C0BF0258"}`, "Arn"] } });
    }
    for (const queue of ["FencepostCoordinationReaperScheduleDeadLettersB8F6395B", "FencepostTxnRecoveryScheduleDeadLettersC0BF0258"]) {
      expect(resources[queue]!.Properties).toMatchObject({ SqsManagedSseEnabled: true, MessageRetentionPeriod: 1_209_600 });
      template.hasResourceProperties("AWS::SQS::QueuePolicy", {
        Queues: [{ Ref: queue }],
        PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: "Deny", Condition: { Bool: { "aws:SecureTransport": "false" } } }), Match.objectLike({ Action: "sqs:SendMessage", Principal: { Service: "events.amazonaws.com" } })]) },
      });
      template.hasResourceProperties("AWS::CloudWatch::Alarm", { MetricName: "ApproximateNumberOfMessagesVisible", Dimensions: [{ Name: "QueueName", Value: { "Fn::GetAtt": [queue, "QueueName"] } }] });
    }
  });

  it("encrypts tables, queues and log groups with a customer-managed key when given one, granting its use without wildcards, clean under cdk-nag", () => {
    const app = noBundling();
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    const stack = new Stack(app, "UserStack");
    const key = new kms.Key(stack, "DataKey", { enableKeyRotation: true });
    const fencepost = new Fencepost(stack, "Coordination", { encryptionKey: key });
    const worker = new iam.Role(stack, "Worker", { assumedBy: new iam.ServicePrincipal("ecs-tasks.amazonaws.com") });
    for (const grant of [fencepost.grantLockClient(worker), fencepost.grantPublish(worker), fencepost.grantConsume(worker), fencepost.grantCoordinator(worker), fencepost.grantCoordination(worker)]) {
      expect(JSON.stringify(stack.resolve(grant.principalStatements.map((st) => st.toStatementJson())))).toContain("kms:GenerateDataKey");
    }
    expect(() => app.synth()).not.toThrow();
    const template = Template.fromStack(stack);
    const keyArn = { "Fn::GetAtt": [Match.stringLikeRegexp("DataKey"), "Arn"] };
    const resources = (template.toJSON() as { Resources: Resources }).Resources;
    const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
    expect(ofType("AWS::DynamoDB::Table")).toHaveLength(4);
    template.allResourcesProperties("AWS::DynamoDB::Table", { SSESpecification: { SSEEnabled: true, SSEType: "KMS", KMSMasterKeyId: keyArn } });
    template.allResourcesProperties("AWS::Logs::LogGroup", { KmsKeyId: keyArn });
    for (const [id, queue] of ofType("AWS::SQS::Queue")) {
      if (id.includes("Schedule")) expect(queue.Properties["SqsManagedSseEnabled"], id).toBe(true);
      else expect(queue.Properties["KmsMasterKeyId"], id).toEqual({ "Fn::GetAtt": [Object.keys(resources).find((k) => k.startsWith("DataKey"))!, "Arn"] });
    }
    // CloudWatch Logs may use the key for this account's log groups.
    template.hasResourceProperties("AWS::KMS::Key", {
      KeyPolicy: { Statement: Match.arrayWith([Match.objectLike({ Principal: { Service: { "Fn::Join": ["", ["logs.", { Ref: "AWS::Region" }, ".amazonaws.com"]] } }, Action: [...iamActions.LOG_GROUP_KEY_ACTIONS] })]) },
    });
    const statements = ofType("AWS::IAM::Policy").flatMap(([, r]) => (r.Properties["PolicyDocument"] as { Statement: { Action: string | string[] }[] }).Statement);
    const actions = statements.flatMap((st) => [st.Action].flat());
    expect(actions.filter((a) => a.includes("*"))).toEqual([]);
    // Every function may use the key.
    for (const [id] of ofType("AWS::IAM::Role").filter(([id]) => id.includes("Function"))) {
      const policy = ofType("AWS::IAM::Policy").find(([, p]) => JSON.stringify(p.Properties["Roles"]).includes(id));
      expect(JSON.stringify(policy?.[1].Properties), id).toContain("kms:GenerateDataKey");
    }
  });

  it("keeps AWS-managed encryption when no key is given", () => {
    const template = stackTemplate();
    template.resourceCountIs("AWS::KMS::Key", 0);
    const resources = (template.toJSON() as { Resources: Resources }).Resources;
    for (const r of Object.values(resources).filter((r) => r.Type === "AWS::SQS::Queue")) expect(r.Properties["SqsManagedSseEnabled"]).toBe(true);
    for (const r of Object.values(resources).filter((r) => r.Type === "AWS::DynamoDB::Table")) expect(r.Properties["SSESpecification"]).toBeUndefined();
  });

  it("outputs every table, queue and function, and retains the tables and log groups by default", () => {
    const template = stackTemplate();
    const outputs = Object.keys((template.toJSON() as { Outputs: Record<string, unknown> }).Outputs).sort();
    expect(outputs).toEqual(
      [
        "LockTableName",
        "TxnTableName",
        "LogTableName",
        "CoordinationTableName",
        "BroadcastQueueUrl",
        "BroadcastDeadLettersUrl",
        "RecoveryScheduleDeadLettersUrl",
        "ReaperScheduleDeadLettersUrl",
        "LockFunctionName",
        "TxnFunctionName",
        "TxnRecoveryFunctionName",
        "CoordinationFunctionName",
        "CoordinationReaperFunctionName",
      ].sort(),
    );
    const resources = (template.toJSON() as { Resources: Record<string, { Type: string; DeletionPolicy?: string }> }).Resources;
    for (const r of Object.values(resources).filter((r) => r.Type === "AWS::DynamoDB::Table" || r.Type === "AWS::Logs::LogGroup")) expect(r.DeletionPolicy).toBe("Retain");
  });
});
