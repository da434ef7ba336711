/**
 * The synthesized stack: what the construct promises (tables, function settings,
 * least-privilege IAM without wildcard actions, log retention), that cdk-nag's
 * AwsSolutions checks pass with only justified acknowledgements, and that the check is
 * live (a wildcard policy makes synthesis fail).
 */
import { App, RemovalPolicy, Stack, Validations } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { AwsSolutionsChecks } from "cdk-nag";
import { describe, expect, it } from "vitest";
import { Fencepost, HANDLER_METADATA, RESOURCE_ROLE_TAG } from "../../infra/fencepost.js";
import { buildApp } from "../../infra/synth.js";

const noBundling = () => new App({ context: { "aws:cdk:bundling-stacks": [] } });

function stackTemplate(): Template {
  return Template.fromStack(buildApp(noBundling()).stack);
}

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
      ["dynamodb:ConditionCheckItem", "dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:UpdateItem", "logs:CreateLogStream", "logs:PutLogEvents"].sort(),
    );
    // Query only on the in-doubt index, named (no `index/*`).
    const queries = statements.filter((s) => [s.Action].flat().includes("dynamodb:Query"));
    expect(JSON.stringify(queries)).toContain("/index/in-doubt");
    expect(JSON.stringify(queries)).not.toContain("index/*");
    for (const role of Object.values(template.Resources).filter((r) => r.Type === "AWS::IAM::Role")) {
      expect(role.Properties["ManagedPolicyArns"]).toBeUndefined();
    }
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
  });
});
