/**
 * What `Coordinator.run` answers: the outcome of one transaction id, whichever path and
 * whichever run decided it.
 *
 * Guarantees: `outcome` is the decision the log holds (never a run's own wish when another
 * party decided first); `acknowledged: false` means the decision is final and recovery
 * finishes phase two for the participants in `pending`.
 * Assumes: nothing; this is a plain record.
 */
import type { Decision } from "./log.js";

export interface TransactionResult {
  readonly txId: string;
  readonly outcome: Decision;
  readonly path: "fast" | "protocol";
  /** Why it aborted: the first no vote, a timeout, or who decided. */
  readonly reason?: string;
  /** Every participant acknowledged the decision; if false, recovery finishes phase two. */
  readonly acknowledged: boolean;
  /** Participants that had not acknowledged when run returned. */
  readonly pending: readonly string[];
  /** An earlier run of this transaction id decided it. */
  readonly duplicate: boolean;
}
