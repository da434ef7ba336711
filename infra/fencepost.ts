/**
 * The Fencepost construct: every table and queue Fencepost needs, declared once.
 *
 * Guarantees: each resource carries a `fencepost:resource` tag naming its role
 * (`locks`, ...), which is how the embedded local cloud and the CLI find them in the
 * synthesized template. Later capabilities add their tables and queues here, never elsewhere.
 * Assumes: nothing about the enclosing app; embed it in any stack.
 */
import { RemovalPolicy, Tags } from "aws-cdk-lib";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import type { IGrantable } from "aws-cdk-lib/aws-iam";
import { Construct } from "constructs";

/** Tag key carrying the role of each Fencepost resource in the template. */
export const RESOURCE_ROLE_TAG = "fencepost:resource";

export interface FencepostProps {
  /** What happens to tables when the stack is deleted. Default: RETAIN. */
  readonly removalPolicy?: RemovalPolicy;
  /** Protect tables against accidental deletion. Default: false. */
  readonly deletionProtection?: boolean;
  /** Point-in-time recovery on every table. Default: true. */
  readonly pointInTimeRecovery?: boolean;
}

export class Fencepost extends Construct {
  /**
   * The coordination table: lock items (lease, holder, fencing token), leader
   * elections, uniqueness claims, registers and counters. Partition key `pk`; items
   * with a `ttl` attribute (epoch seconds) are removed by DynamoDB TTL.
   */
  public readonly lockTable: dynamodb.Table;

  constructor(scope: Construct, id: string, props: FencepostProps = {}) {
    super(scope, id);
    this.lockTable = new dynamodb.Table(this, "LockTable", {
      partitionKey: { name: "pk", type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: "ttl",
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: props.pointInTimeRecovery ?? true },
      deletionProtection: props.deletionProtection ?? false,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    Tags.of(this.lockTable).add(RESOURCE_ROLE_TAG, "locks");
  }

  /** Lets `grantee` use the lock client directly against the lock table (no Scan, no admin). */
  public grantLockClient(grantee: IGrantable): void {
    this.lockTable.grant(
      grantee,
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:ConditionCheckItem",
    );
  }
}
