/** The stack `cdk deploy` creates: one Fencepost construct and nothing else. */
import { CfnOutput, Stack, type StackProps } from "aws-cdk-lib";
import type { Construct } from "constructs";
import { Fencepost, type FencepostProps } from "./fencepost.js";

export const STACK_NAME = "Fencepost";

/**
 * The stack `cdk deploy` creates: one Fencepost construct, and every table name, queue URL
 * and function name as outputs (what the clients and the CLI are configured with).
 */
export class FencepostStack extends Stack {
  public readonly fencepost: Fencepost;

  constructor(scope: Construct, id: string, props: StackProps & { fencepost?: FencepostProps } = {}) {
    super(scope, id, props);
    this.fencepost = new Fencepost(this, "Fencepost", props.fencepost);
    new CfnOutput(this, "LockTableName", { value: this.fencepost.lockTable.tableName, description: "The lock table (direct-mode LockClient tableName)" });
    new CfnOutput(this, "TxnTableName", { value: this.fencepost.txnTable.tableName, description: "The two-phase commit decision log (Coordinator tableName)" });
    new CfnOutput(this, "LogTableName", { value: this.fencepost.logTable.tableName, description: "The broadcast log (Broadcast and ConsumerGroup tableName)" });
    new CfnOutput(this, "BroadcastQueueUrl", { value: this.fencepost.broadcastQueue.queueUrl, description: "The broadcast FIFO queue (Broadcast queueUrl; consumers' event source)" });
    new CfnOutput(this, "TxnFunctionName", { value: this.fencepost.txnFunction.functionName, description: "The coordinator service (fencepost tx --function)" });
    new CfnOutput(this, "CoordinationTableName", { value: this.fencepost.coordinationTable.tableName, description: "The coordination table (Coordination tableName)" });
    new CfnOutput(this, "CoordinationFunctionName", { value: this.fencepost.coordinationFunction.functionName, description: "The coordination service (fencepost kv|members|session --function)" });
    new CfnOutput(this, "LockFunctionName", { value: this.fencepost.lockFunction.functionName, description: "The lock service (remote-mode LockClient functionName; fencepost lock --function)" });
    new CfnOutput(this, "BroadcastDeadLettersUrl", { value: this.fencepost.broadcastDeadLetters.queueUrl, description: "Broadcast messages that failed delivery 5 times (alarmed)" });
    new CfnOutput(this, "TxnRecoveryFunctionName", { value: this.fencepost.txnRecoveryFunction.functionName, description: "The scheduled two-phase commit recovery (invoke to run it now)" });
    new CfnOutput(this, "CoordinationReaperFunctionName", { value: this.fencepost.coordinationReaperFunction.functionName, description: "The scheduled session reaper (invoke to run it now)" });
    new CfnOutput(this, "RecoveryScheduleDeadLettersUrl", { value: this.fencepost.recoveryScheduleDeadLetters.queueUrl, description: "Recovery schedule events EventBridge could not deliver (alarmed)" });
    new CfnOutput(this, "ReaperScheduleDeadLettersUrl", { value: this.fencepost.reaperScheduleDeadLetters.queueUrl, description: "Reaper schedule events EventBridge could not deliver (alarmed)" });
  }
}
