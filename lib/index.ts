/**
 * fencepost: serverless coordination on AWS. Linearizable locks with fencing tokens,
 * leader election, uniqueness claims, compare-and-set and counters on DynamoDB
 * conditional writes; total order broadcast over SQS FIFO, with Lamport timestamps for
 * causal metadata; two-phase commit.
 *
 * This entry point is what applications use: clients, their options and results, and the
 * typed errors. Storage layers, parsers, wire schemas and named defaults are in
 * `fencepost/advanced`; the embedded local cloud is `fencepost/local`, the verification
 * harness `fencepost/check`, the CDK constructs `fencepost/infra`.
 */
export const VERSION = "0.1.0";

// Locks, elections, fenced writes, claims, registers and counters (lib/locks).
export { LockClient, type LockClientOptions, type RemoteLockClientOptions, type CommonLockClientOptions, type AcquireOptions, type InvocationContext } from "./locks/client.js";
export { Lock } from "./locks/lock.js";
export type { LockState, LockPage, Leader } from "./locks/protocol.js";
export { Election, Leadership, type CampaignOptions, type ObserveOptions } from "./locks/election.js";
export { FencedStore, fenceCondition, type FencingToken, type FenceCondition, type FencedStoreOptions } from "./locks/fencing.js";
export { Claims, type Claim, type ClaimOptions, type ClaimWithOptions, type ClaimsOptions } from "./locks/claims.js";
export { Register, type CasResult, type Versioned, type RegisterOptions } from "./locks/register.js";
export { Counter, type CounterOptions, type IncrementOptions } from "./locks/counter.js";
export { systemClock, type MonotonicClock } from "./locks/clock.js";

// Total order broadcast and Lamport timestamps (lib/ordering).
export { Broadcast, MAX_PAYLOAD_BYTES, type BroadcastOptions, type PublishOptions } from "./ordering/broadcast.js";
export { ConsumerGroup, type ConsumerGroupOptions, type ConsumerObserver, type Delivery, type Handler, type TransactionalHandler, type CatchUpResult, type SqsEvent } from "./ordering/consumer.js";
export { FanOut, type FanOutGroupResult } from "./ordering/fan-out.js";
export { consumerMetrics } from "./service/domain-metrics.js";
export { LamportClock, type LamportTimestamp } from "./ordering/lamport.js";

// The coordination service (lib/coordination).
export { Coordination, type CoordinationOptions, type Entry, type WatchEvent, type PutOptions } from "./coordination/coordination.js";
export { Session } from "./coordination/session.js";
export { Group, type View, type Member } from "./coordination/group.js";
export type { Assignment, AssignmentOptions, PartitionGrant } from "./coordination/assignment.js";

// Two-phase commit (lib/txn).
export { Coordinator, type CoordinatorOptions, type RunOptions } from "./txn/coordinator.js";
export { MAX_BRANCHES_BYTES } from "./txn/branches.js";
export type { TransactionResult } from "./txn/result.js";
export type { TransactionRecord, TransactionStatus, Decision, AuditEntry, BranchRecord } from "./txn/log.js";
export { defineParticipant, branch, VOTE_YES, voteNo, type Participant, type ParticipantDefinition, type Branch, type Vote, type TxContext, type DecisionLookup } from "./txn/participant.js";
export { DynamoDbParticipant, notLockedByTransaction, type DynamoWrite, type Condition, type Key, type DynamoDbParticipantOptions } from "./txn/dynamodb.js";
export { outboxParticipant, MAX_OUTBOX_BYTES, type OutboxMessage, type OutboxParticipantOptions } from "./txn/outbox.js";
export { LambdaParticipant, participantHandler } from "./txn/lambda-participant.js";
export type { RecoverOptions, RecoveryReport, RecoveredTransaction, OverrideRequest } from "./txn/recovery.js";

// Typed errors: every one a FencepostError; branch with instanceof.
export {
  ClaimAlreadyReleasedError,
  ClaimHeldByOtherIncarnationError,
  ClaimOutcomeUnknownError,
  ClaimTakenError,
  CompactedError,
  CoordinationBusyError,
  CounterContentionError,
  DecisionConflictError,
  FencepostError,
  IncrementOutcomeUnknownError,
  InvalidArgumentError,
  KeyInUseError,
  LockLostError,
  LockQueueFullError,
  LockTimeoutError,
  NotLockOwnerError,
  OutcomeUnknownError,
  PayloadTooLargeError,
  ProtocolViolationError,
  PublishConflictError,
  PublishIncompleteError,
  PublishOutcomeUnknownError,
  ReleaseIncompleteError,
  RevisionMismatchError,
  SessionExpiredError,
  RemoteFunctionError,
  RetryWindowExceededError,
  SlotLostError,
  StaleTokenError,
  TransactionTimeoutError,
  UndecidedTransactionError,
  UnknownParticipantError,
  type ClaimHandle,
  type PublishResult,
} from "./errors.js";
