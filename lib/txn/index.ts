export { Coordinator, type CoordinatorOptions, type RunOptions } from "./coordinator.js";
export { MAX_BRANCHES_BYTES } from "./branches.js";
export type { TransactionResult } from "./result.js";
export { DecisionLog, IN_DOUBT_INDEX, DEFAULT_RETAIN_MS, parseRecord, type AuditEntry, type InDoubtQuery, type BranchRecord, type Decision, type TransactionRecord, type TransactionStatus } from "./log.js";
export { defineParticipant, branch, YES, no, type Participant, type ParticipantDefinition, type Branch, type Vote, type TxContext, type DecisionLookup } from "./participant.js";
export { DynamoDbParticipant, notLockedByTransaction, LOCK_ATTRIBUTES, type DynamoWrite, type Condition, type Key, type DynamoDbParticipantOptions } from "./dynamodb.js";
export { outboxParticipant, outboxDeduplicationId, canonicalQueueUrl, MAX_OUTBOX_BYTES, type OutboxMessage, type OutboxParticipantOptions } from "./outbox.js";
export { LambdaParticipant, participantHandler, parseParticipantRequest, PARTICIPANT_PROTOCOL, type ParticipantRequest } from "./lambda-participant.js";
export type { RecoverOptions, RecoveryReport, RecoveredTransaction, OverrideRequest } from "./recovery.js";

