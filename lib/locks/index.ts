export { LockClient, type LockClientOptions, type AcquireOptions, type LockState, type InvocationContext } from "./client.js";
export { Lock } from "./lock.js";
export { FencedStore, fenceCondition, type FencingToken, type FenceCondition, type FencedStoreOptions } from "./fencing.js";
export { systemClock, type MonotonicClock } from "./clock.js";
export { parseLease, TOKEN_FLOOR_KEY, type LeaseRecord } from "./lease.js";
export * from "./errors.js";
