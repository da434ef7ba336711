/**
 * The coordination service construct: the table behind sessions, keys, watches, groups and
 * partition grants (lib/coordination).
 *
 * Guarantees: the table is retained by default; its items are keyed `pk` (S) and `sk` (S),
 * with DynamoDB TTL on `ttl` (the change log's retention, ended sessions).
 * Assumes: clients reach the table directly (`grantCoordination`).
 */
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import type * as iam from "aws-cdk-lib/aws-iam";
import { Construct } from "constructs";
import { COORDINATION_ITEM_ACTIONS } from "./iam-actions.js";
import { createTable, type FencepostFunctionProps, type ResourceScopeProps } from "./internal.js";

/** Settings of a CoordinationService: those of its table, and where it is created. */
export interface CoordinationServiceProps extends FencepostFunctionProps, ResourceScopeProps {}

/** The coordination table. */
export class CoordinationService extends Construct {
  /**
   * The coordination table: per namespace its head (revision, group epochs), keys,
   * change log, sessions and partition grants. Partition key `pk` (S), sort key `sk` (S).
   */
  public readonly coordinationTable: dynamodb.Table;

  /** Declares the coordination table in `props.resourceScope` (default: this construct). */
  constructor(scope: Construct, id: string, props: CoordinationServiceProps = {}) {
    super(scope, id);
    const resourceScope = props.resourceScope ?? this;
    this.coordinationTable = createTable(resourceScope, "CoordinationTable", "coordination", props, { name: "sk", type: dynamodb.AttributeType.STRING });
  }

  /** Lets `grantee` use the Coordination client against the table (item actions and Query; no Scan, no admin). */
  public grantCoordination(grantee: iam.IGrantable): iam.Grant {
    return this.coordinationTable.grant(grantee, ...COORDINATION_ITEM_ACTIONS);
  }
}
