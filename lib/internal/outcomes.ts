/**
 * Reading an AWS SDK error for what it says about a request's outcome. The rule Fencepost
 * lives by: a condition that failed, or any error, never means "already applied" unless
 * the item proves it; these functions only tell "certainly not applied" from "unknown".
 */

/**
 * True when the error says for certain the write was not applied (a 4xx answer:
 * throttling, validation, condition). Anything else (timeouts, connection resets, 5xx) is
 * an unknown outcome.
 */
export function certainlyNotApplied(err: unknown): boolean {
  const status = (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
  return typeof status === "number" && status >= 400 && status < 500;
}

/**
 * True when the request named a resource that does not exist: a table, a queue, a
 * function. Nothing was applied, and asking again will not help until someone creates it.
 */
export function targetMissing(err: unknown): boolean {
  const name = (err as { name?: string })?.name ?? "";
  return name === "ResourceNotFoundException" || name === "QueueDoesNotExist" || name === "AWS.SimpleQueueService.NonExistentQueue";
}

/** True when DynamoDB refused the request for capacity (throttling of any kind). */
export function isThrottled(err: unknown): boolean {
  return /Throttl|ProvisionedThroughputExceeded|RequestLimitExceeded/.test((err as { name?: string })?.name ?? "");
}

/**
 * True for errors that say DynamoDB is busy rather than that the request is wrong:
 * throttling, or a conflict with a transaction in progress on the item. Nothing applied,
 * and asking again after a backoff may succeed.
 */
export function isBusy(err: unknown): boolean {
  return isThrottled(err) || /TransactionConflict/.test((err as { name?: string })?.name ?? "");
}
