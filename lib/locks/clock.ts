/**
 * The monotonic clock every lease decision is measured on. Never wall-clock time:
 * safety must not depend on synchronized clocks. Injectable so tests and the verification
 * harness can skew or pause a worker's clock. (Waiting itself is lib/internal/time.ts.)
 */
export interface MonotonicClock {
  /** Milliseconds since an arbitrary origin; never decreases. */
  now(): number;
}

export const systemClock: MonotonicClock = { now: () => performance.now() };

