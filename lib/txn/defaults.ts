/**
 * Every default of two-phase commit in one place, each beside what it is for. Options'
 * TSDoc names these with `@default`.
 */

/** Prepare deadline of a transaction, from the start of `run`. */
export const DEFAULT_TIMEOUT_MS = 10_000;
/** How long `run` drives phase two before it leaves the rest to recovery. */
export const DEFAULT_PHASE_TWO_TIMEOUT_MS = 30_000;
/** How long finished records (decisions, votes, ledger items) are kept; `run` stays idempotent by id this long. */
export const DEFAULT_RETAIN_MS = 7 * 24 * 3600_000;
/** Each request to the decision log (begin, decide, complete), retries included, gives up after this long. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 5000;
/** Transactions per page of `listInDoubt` and the in-doubt query. */
export const DEFAULT_LIST_LIMIT = 100;
/** Work nobody else would finish (phase-two calls, releasing a decided transaction's reservations) is retried this long. */
export const DEFAULT_RETRY_FOR_MS = 5000;
/** The scheduled recovery function's budget per run: it ends before the next run (every minute) starts. */
export const SCHEDULED_RECOVERY_BUDGET_MS = 40_000;
