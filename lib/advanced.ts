/**
 * fencepost/advanced: the layers beneath the clients, for those who build on them or
 * operate them: the lock backends and the lease store, the broadcast log, the decision
 * log, item parsers and key constants, the services' wire schemas and examples, the error
 * wire format, and every named default. Stable, but closer to the storage format than the
 * root entry point; most applications never need it.
 */

// Locks.
export type { LockBackend, LeaseKeeper, LeaseName, AcquireRequest, Grant } from "./locks/backend.js";
export { DynamoDbLockBackend, stateOf, type DynamoDbLockBackendOptions } from "./locks/dynamodb-backend.js";
export { LambdaLockBackend, WAIT_SLICE_MS } from "./locks/lambda-backend.js";
export { LeaseStore, parseLease, TOKEN_FLOOR_KEY, type LeaseRecord } from "./locks/lease.js";
export { MAX_WAITERS, QUEUE_WINDOW, MIN_WAITER_LEASE_MS, MAX_WAITER_LEASE_MS } from "./locks/queue.js";
export { lockRequestSchema, leaseKey, type LockRequest, type LockAction, type LockResponses, type LockGrant, type LockKind } from "./locks/protocol.js";
export { RETENTION_MARGIN_MS } from "./locks/counter.js";
export * from "./locks/defaults.js";

// Broadcast.
export { MESSAGES_PER_TRANSACTION, deduplicationId } from "./ordering/broadcast.js";
export { StreamLog, FILLS_IN_FLIGHT, parseSlot, type Slot, type SlotPage } from "./ordering/log.js";
export * from "./ordering/defaults.js";
export { listStreams, streamHoles, streamTail, MAX_HOLE_WINDOW, MAX_TAIL, DEFAULT_MAX_SCANNED_ITEMS, type StreamOverview, type StreamSummary, type GroupCursor, type HoleReport } from "./ordering/inspect.js";

// Two-phase commit.
export { DecisionLog, IN_DOUBT_INDEX, parseRecord, type InDoubtQuery } from "./txn/log.js";
export { LOCK_ATTRIBUTES } from "./txn/dynamodb.js";
export { outboxDeduplicationId, canonicalQueueUrl } from "./txn/outbox.js";
export { parseParticipantRequest, PARTICIPANT_PROTOCOL, type ParticipantRequest } from "./txn/lambda-participant.js";
export {
  DEFAULT_TIMEOUT_MS,
  DEFAULT_PHASE_TWO_TIMEOUT_MS,
  DEFAULT_RETAIN_MS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_LIST_LIMIT as DEFAULT_IN_DOUBT_LIST_LIMIT,
  DEFAULT_RETRY_FOR_MS,
} from "./txn/defaults.js";

// The coordination service.
export { CoordinationStore, MAX_CHANGES_PER_COMMIT, type KeyRecord, type ChangeRecord, type SessionRecord, type PartitionRecord, type KeyOperation, type CommitResult } from "./coordination/store.js";
export { SessionReaper, SessionWatch } from "./coordination/reaper.js";
export { ownerOf, shareOf } from "./coordination/assignment.js";
export { GROUPS_PREFIX } from "./coordination/session.js";
export { coordinationRequestSchema, COORDINATION_ACTIONS, MAX_ANSWER_BYTES, type CoordinationRequest, type CoordinationAction, type CoordinationResponses, type ChangePage, type SessionInfo } from "./coordination/protocol.js";
export * from "./coordination/defaults.js";

// The services' wire format.
export { txnRequestSchema, type TxnRequest, type TxnResponses } from "./service/txn-api.js";
export { lockRequestExamples, txnRequestExamples, coordinationRequestExamples } from "./service/wire.js";
export { ERROR_CLASSES, toWire, fromWire, wireError, CoordinatorCrashedError, type WireError } from "./errors.js";
