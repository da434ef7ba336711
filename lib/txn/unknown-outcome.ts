/**
 * Unknown outcomes: how every step of `run` (begin, decide, complete, the fast path)
 * reports a request it cannot know the result of.
 *
 * Guarantees: an error that leaves a step's outcome open (a timeout, a dropped
 * connection, throttling or a server error after the SDK's retries) reaches the caller as
 * TransactionTimeoutError, naming the step and carrying the cause; a definite refusal and
 * the library's own errors pass through unchanged.
 * Assumes: the step is safe to run again under the same transaction id (run is idempotent
 * by id), which is what TransactionTimeoutError tells the caller to do.
 */
import { isThrottled } from "../internal/outcomes.js";
import { FencepostError, TransactionTimeoutError } from "../errors.js";

/**
 * Whether an error from a request leaves its outcome open: a timeout, a dropped
 * connection, throttling or a server error after the SDK's retries (an earlier attempt may
 * have applied). A definite refusal (bad input, a missing table, access denied) and the
 * library's own errors are not.
 */
export function outcomeUnknown(err: unknown): boolean {
  if (err instanceof FencepostError || err instanceof TypeError || err instanceof RangeError) return false;
  const e = err as { name?: string; $fault?: string; $metadata?: { httpStatusCode?: number } };
  if (e?.name === "AbortError" || e?.name === "TimeoutError") return true;
  if (isThrottled(err) || e?.name === "TransactionInProgressException") return true;
  return e?.$fault !== "client";
}

/** Runs a step's requests; an error that leaves their outcome open is rethrown as TransactionTimeoutError. */
export async function runStep<T>(txId: string, step: TransactionTimeoutError["step"], timeoutMs: number, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (err) {
    if (outcomeUnknown(err)) throw new TransactionTimeoutError(txId, step, timeoutMs, { cause: err });
    throw err;
  }
}
