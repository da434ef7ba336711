// Transitional: lib/txn still imports its errors from here until its split lands.
export { ProtocolViolationError, DecisionConflictError, TransactionTimeoutError, UnknownParticipantError, CoordinatorCrashedError } from "../errors.js";
