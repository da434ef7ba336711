/**
 * fencepost/console: the operator console, a local web page over a Fencepost stack's
 * locks, streams, transactions and membership (`fencepost console`, and `fencepost up`).
 * See server.ts for what it guarantees (loopback, read-only by default, CSRF checks) and
 * sources.ts for where its data comes from.
 */
export { startConsole, consoleApp, isLoopback, ACTION_HEADER, DEFAULT_POLL_MS, DEFAULT_STREAM_POLL_MS, type ConsoleOptions, type RunningConsole } from "./server.js";
export { ConsoleData, NotConfiguredError, MAX_LOCKS, MAX_GROUPS, TAIL_SLOTS, type ConsoleSources, type FunctionSource, type LockRow, type LockDetail, type StreamDetail, type TransactionsView, type MembershipView } from "./sources.js";
export type { TokenSighting } from "./history.js";
export { localSources, type LocalStackDescription } from "./local.js";
