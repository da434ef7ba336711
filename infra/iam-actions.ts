/**
 * Every IAM action list the Fencepost constructs grant, in one place.
 *
 * Guarantees: each list names its actions one by one (no wildcard, so cdk-nag's
 * AwsSolutions-IAM5 has nothing to flag), and each is the least a protocol needs.
 * Assumes: grants scope these actions to named resources (a table, a named index, a
 * queue, a function's unqualified ARN, a log group), never to `*`.
 */

/**
 * The lock protocol's item actions on the lock table (TransactWriteItems needs these
 * per item): what a direct-mode LockClient needs.
 */
export const LOCK_ITEM_ACTIONS: readonly string[] = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"];

/** The lock service function's actions on the lock table: the item actions, plus Scan for `list`. */
export const LOCK_SERVICE_ACTIONS: readonly string[] = [...LOCK_ITEM_ACTIONS, "dynamodb:Scan"];

/** The broadcast log's item actions: sequencer, write-once slots, dedup records (TransactWriteItems needs these per item). */
export const LOG_ITEM_ACTIONS: readonly string[] = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"];

/** A consumer group's actions on the broadcast log: the item actions, plus Query to read a stream's slots in order. */
export const LOG_CONSUME_ACTIONS: readonly string[] = [...LOG_ITEM_ACTIONS, "dynamodb:Query"];

/** A publisher's actions on the broadcast queue. */
export const QUEUE_PUBLISH_ACTIONS: readonly string[] = ["sqs:SendMessage", "sqs:GetQueueAttributes"];

/** A consumer's actions on the broadcast queue: take, delete and hold back messages. */
export const QUEUE_CONSUME_ACTIONS: readonly string[] = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"];

/**
 * The transaction protocol's item actions: decision records and vote records on the
 * decision log, and a DynamoDB participant's items on its own table.
 */
export const TXN_ITEM_ACTIONS: readonly string[] = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"];

/** The coordinator's action on the decision log's `in-doubt` index (granted on the named index, not `index/*`). */
export const IN_DOUBT_INDEX_ACTIONS: readonly string[] = ["dynamodb:Query"];

/** Invoking a function (granted on its unqualified ARN only). */
export const FUNCTION_INVOKE_ACTIONS: readonly string[] = ["lambda:InvokeFunction"];

/** What a Fencepost function's execution role may do with its own log group. */
export const LOG_GROUP_WRITE_ACTIONS: readonly string[] = ["logs:CreateLogStream", "logs:PutLogEvents"];

/** The coordination client's actions on the coordination table: items, transactions' condition checks, and Query (lists, the change log, sessions). */
export const COORDINATION_ITEM_ACTIONS: readonly string[] = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem", "dynamodb:Query"];

/**
 * The coordination function's actions on the coordination table: reads (GetItem, Query)
 * and the items of a change's transaction (the head and the session: UpdateItem; the
 * change-log item: PutItem; a key: UpdateItem or DeleteItem). It holds no sessions and
 * grants no partitions, so no ConditionCheckItem, and lists nothing by Scan.
 */
export const COORDINATION_SERVICE_ACTIONS: readonly string[] = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query"];

/** The session reaper's actions: the coordination function's (expiring a session is a change), plus Scan to find the namespaces with live sessions. */
export const COORDINATION_REAPER_ACTIONS: readonly string[] = [...COORDINATION_SERVICE_ACTIONS, "dynamodb:Scan"];

/**
 * What a Fencepost function or grantee may do with the construct's customer-managed key
 * (`encryptionKey`), for the encrypted tables and queues: read (Decrypt), write
 * (Encrypt, GenerateDataKey) and look the key up (DescribeKey). No ReEncrypt: the
 * services re-encrypt under their own grants.
 */
export const KEY_USE_ACTIONS: readonly string[] = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"];

/** What CloudWatch Logs needs on a key that encrypts log groups (added to the key's policy, for this account's log groups only). */
export const LOG_GROUP_KEY_ACTIONS: readonly string[] = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo"];

/**
 * What X-Ray active tracing (the `tracing` prop, on by default) adds to each function's
 * role: Lambda's `Tracing.ACTIVE` grants these on `*`, the only resource X-Ray supports.
 */
export const TRACING_ACTIONS: readonly string[] = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"];
