export { Fencepost, HANDLER_METADATA, RESOURCE_ROLE_TAG, type FencepostProps } from "./fencepost.js";
export { LockService, type LockGrantAction, type LockServiceProps } from "./lock-service.js";
export { BroadcastLog, type BroadcastLogProps } from "./broadcast-log.js";
export { CoordinationService, type CoordinationServiceProps } from "./coordination-service.js";
export { TransactionCoordinator, type ParticipantResource, type TransactionCoordinatorProps } from "./transaction-coordinator.js";
export type { FencepostAlarmProps, FencepostFunctionProps, FencepostTableProps, ResourceScopeProps } from "./internal.js";
export { FencepostStack, STACK_NAME } from "./stack.js";
export { buildApp, synthesizeTemplate } from "./synth.js";
