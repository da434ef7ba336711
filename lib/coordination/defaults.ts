/**
 * Every default and limit of the coordination service in one place, each beside what it
 * is for. Options' TSDoc names these with `@default`.
 */

/** The namespace of a client that names none. */
export const DEFAULT_NAMESPACE = "default";
/** How long the change log keeps a change (DynamoDB TTL): watches resume within it. */
export const DEFAULT_RETAIN_CHANGES_MS = 24 * 60 * 60 * 1000;
/** How often a watch polls the change log: the delivery latency of a change is about this. */
export const DEFAULT_WATCH_POLL_MS = 100;
/** How often a group member looks for view changes and for partitions it may take. */
export const DEFAULT_ASSIGNMENT_POLL_MS = 250;
/** Shortest session ttl: keepalives go every ttl/3, so shorter would be mostly keepalives. */
export const MIN_SESSION_TTL_MS = 1000;
/** Longest session ttl: the reaper function (15 minutes at most) must outlast it to expire anything. */
export const MAX_SESSION_TTL_MS = 10 * 60 * 1000;
/** Largest value, as JSON text (a key item holds it, the change log a copy). */
export const MAX_VALUE_BYTES = 64 * 1024;
/** Most partitions a group divides. */
export const MAX_PARTITIONS = 4096;
