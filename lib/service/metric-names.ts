/**
 * The names under which Fencepost's functions report metrics (Powertools EMF, see
 * middleware.ts) and the construct builds its metrics and alarms from: one place, so
 * what is reported and what is watched cannot drift. No imports: infra reads it too.
 */

/** Where every Fencepost function reports its per-invocation metrics. */
export const FENCEPOST_METRICS = {
  namespace: "Fencepost",
  /** Dimension on every metric: the path of the construct holding the resources (env METRIC_DIMENSION). */
  construct: "Construct",
  /** Dimension of the per-invocation metrics: which function (FUNCTION_METRIC_NAMES). */
  function: "Function",
  /** Dimension of the per-invocation metrics: the request's action (`acquire`, `run`, ...; `unknown` when not one of the function's). */
  action: "Action",
  /** Dimension of the per-invocation metrics: `ok`, `rejected` (a typed FencepostError: an expected answer) or `fault` (anything else). */
  outcome: "Outcome",
  /** Count of invocations, per Function/Action/Outcome and per Function/Outcome. */
  requests: "Requests",
  /** Milliseconds an invocation took, same dimensions as `Requests`. */
  duration: "Duration",
  /** Locks, leaderships and claims granted by the lock function, per Function/Action (`acquire`, `tryAcquire`, `elect`). */
  grants: "Grants",
  /** Milliseconds a granted `acquire` or `elect` waited in the function, per Function/Action. */
  grantWait: "GrantWait",
  /** `acquire` and `elect` requests that gave up waiting (LockTimeoutError), per Function/Action. */
  lockTimeouts: "LockTimeouts",
  /** `tryAcquire` requests that found the lock held, per Function/Action. */
  notGranted: "NotGranted",
  /** Dimension of the consumer metrics: the stream. */
  stream: "Stream",
  /** Dimension of the consumer metrics: the consumer group. */
  group: "Group",
  /** Messages between a consumer group's cursor and the seq its catch-up must reach, when the catch-up starts; per Stream/Group. */
  consumerLag: "ConsumerLag",
  /** Holes (numbers a crashed producer never wrote) a consumer group filled with no-ops; per Stream/Group. */
  holeFills: "HoleFills",
} as const;

/** The `Function` dimension's value of each Fencepost function (the handler's `observability(name)`). */
export const FUNCTION_METRIC_NAMES = {
  locks: "locks",
  txn: "txn",
  txnRecovery: "txn-recovery",
  coordination: "coordination",
  coordinationReaper: "coordination-reaper",
} as const;
