/**
 * Every default of total order broadcast in one place, each beside what it is for.
 * Options' TSDoc names these with `@default`.
 */

/** How long a slot stays empty, after a consumer first saw it empty, before it is filled with a no-op and skipped. */
export const DEFAULT_HOLE_TIMEOUT_MS = 2000;
/** Attempts of a publish whose slots were lost to hole filling, or whose dedup record a twin publish held. */
export const DEFAULT_PUBLISH_ATTEMPTS = 3;
/**
 * How long, at most, a publish waits for others to share its group (one sequencer write,
 * one transaction) while other publishes of its stream are in flight in the same
 * Broadcast. A publish with nothing in flight beside it never waits. 0: no wait.
 */
export const DEFAULT_PUBLISH_LINGER_MS = 2;
/**
 * Longest a group's sequencer write or transaction may take before it counts as an unknown
 * outcome (and is settled by filling its slot): a hung connection must not hold up every
 * later publish of the stream, which waits for the group in flight.
 */
export const GROUP_WRITE_TIMEOUT_MS = 10_000;
/** How often `ConsumerGroup.run` polls the log (or waits between empty receives). */
export const DEFAULT_CONSUMER_POLL_MS = 200;
