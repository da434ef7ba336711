/**
 * fencepost: serverless coordination on AWS. Linearizable locks with fencing tokens,
 * leader election, uniqueness claims, compare-and-set and counters on DynamoDB
 * conditional writes; total order broadcast over SQS FIFO; two-phase commit.
 *
 * The embedded local cloud is exported separately as `fencepost/local`.
 */
export const VERSION = "0.1.0";
export * from "./locks/index.js";
export * from "./ordering/index.js";
export * from "./txn/index.js";
export * from "./errors.js";
export { txnRequestSchema, type TxnRequest, type TxnResponses } from "./service/txn-api.js";
export { lockRequestExamples, txnRequestExamples } from "./service/wire.js";
