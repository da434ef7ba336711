/**
 * fencepost/check: the verification harness. Record histories of your own use of
 * Fencepost, check them for linearizability, inject faults into SDK clients, and run the
 * built-in workloads (`runVerification`).
 */
export { HistoryRecorder, type Operation, type Outcome, type Classification, type OperationSpec } from "./history.js";
export {
  checkLinearizability,
  type Model,
  type ModelOperation,
  type Verdict,
  type CheckResult,
  type CheckOptions,
  type PartitionResult,
  type Counterexample,
} from "./linearizability.js";
export { fencedMutex, casRegister, counter, kvRegister, type MutexState, type RegisterState, type KvState } from "./models.js";
export { lockAnomalies, stuckLocks, registerAnomalies, counterAnomalies, checkAnomalies, type Anomaly } from "./invariants.js";
export { FaultSchedule, PauseGate, SkewedClock, FAULT_KINDS, emptyFaultCounts, type FaultCounts, type FaultRates } from "./faults.js";
export { injectFaults, duplicateRequests, RequestCounter, type FaultKind, type FaultPlan, type RequestInfo, type Delivery, type DuplicatePlan } from "./middleware.js";
export { Random } from "./random.js";
export { runVerification, WORKLOADS, type WorkloadName, type VerifyOptions, type VerificationReport, type ControlResult } from "./verify.js";
export { runLockWorkload, LOCK_CONTROLS, type LockWorkloadOptions } from "./workloads/locks.js";
export { runRegisterWorkload, type RegisterWorkloadOptions } from "./workloads/register.js";
export { runCounterWorkload, type CounterWorkloadOptions } from "./workloads/counter.js";
export type { WorkloadEnvironment, WorkloadResult, Pause } from "./workloads/workers.js";
export { formatTable, renderHtml } from "./report.js";
export { runBroadcastWorkload, broadcastAnomalies, type BroadcastWorkloadOptions } from "./workloads/broadcast.js";
export { runBankWorkload, type BankWorkloadOptions } from "./workloads/bank.js";
export { runCoordinationWorkload, COORDINATION_CONTROLS, type CoordinationWorkloadOptions, type CoordinationControl } from "./workloads/coordination.js";
export { viewAnomalies, watchAnomalies, ephemeralAnomalies } from "./coordination-invariants.js";
