/**
 * Every default of total order broadcast in one place, each beside what it is for.
 * Options' TSDoc names these with `@default`.
 */

/** How long a slot stays empty, after a consumer first saw it empty, before it is filled with a no-op and skipped. */
export const DEFAULT_HOLE_TIMEOUT_MS = 2000;
/** Attempts of a publish whose slots were lost to hole filling, or whose dedup record a twin publish held. */
export const DEFAULT_PUBLISH_ATTEMPTS = 3;
/** How often `ConsumerGroup.run` polls the log (or waits between empty receives). */
export const DEFAULT_CONSUMER_POLL_MS = 200;
