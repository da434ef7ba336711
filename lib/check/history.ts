/**
 * Histories: what a verification workload did, as a list of operations with invocation
 * and completion times on one monotonic clock (Jepsen's model).
 * (Guarantees and assumptions: see the TSDoc of HistoryRecorder below.)
 */
import { systemClock, type MonotonicClock } from "../locks/clock.js";

export type Outcome = "ok" | "fail" | "info";

export interface Operation<I = unknown, O = unknown> {
  /** Unique within the history. */
  readonly id: number;
  /** The worker that performed it. */
  readonly process: string;
  /** The object it acted on; the checker checks each key separately. */
  readonly key: string;
  /** The operation's name in the model: "acquire", "cas", "read", ... */
  readonly f: string;
  readonly input: I;
  /** Present when `outcome` is ok. */
  readonly output?: O;
  readonly outcome: Outcome;
  readonly invokedAt: number;
  /** +Infinity when `outcome` is info. */
  readonly completedAt: number;
  /** The error's name and message, for fail and info. */
  readonly error?: string;
}

/** How a thrown error classifies an operation: definitely not applied, or an ok result after all. */
export type Classification<O> = { outcome: "fail" } | { outcome: "ok"; output: O } | { outcome: "info" };

export interface OperationSpec<I> {
  process: string;
  key: string;
  f: string;
  input: I;
}

/**
 * Histories: what a verification workload did, as a list of operations with invocation
 * and completion times on one monotonic clock (Jepsen's model).
 *
 * An operation's outcome is
 * - `ok`: it completed and we know its result;
 * - `fail`: it certainly had no effect (the service said so before applying it);
 * - `info`: we do not know whether it took effect. A timeout, a lost connection or any
 *   error the workload cannot prove harmless is `info`, never `fail`: its completion
 *   time is +Infinity, because its effect may land at any later moment.
 * Checkers drop `fail` operations and let `info` operations take effect at most once,
 * anywhere after their invocation.
 * Assumes: every operation of a history is timed by the same recorder's clock.
 */
export class HistoryRecorder {
  readonly #clock: MonotonicClock;
  readonly #operations: Operation[] = [];
  #nextId = 0;

  constructor(clock: MonotonicClock = systemClock) {
    this.#clock = clock;
  }

  now(): number {
    return this.#clock.now();
  }

  /** How many operations have been recorded. */
  get size(): number {
    return this.#operations.length;
  }

  /** The operations recorded so far, in invocation order. */
  get operations(): readonly Operation[] {
    return [...this.#operations].sort((a, b) => a.invokedAt - b.invokedAt || a.id - b.id);
  }

  /**
   * Runs `body` as one operation. Its result is the output of an ok operation; a thrown
   * error is classified by `classify` (default: info) and rethrown only if `rethrow`.
   * Resolves to the outcome and output.
   */
  async record<I, O>(
    spec: OperationSpec<I>,
    body: () => Promise<O>,
    classify: (err: unknown) => Classification<O> = () => ({ outcome: "info" }),
  ): Promise<{ outcome: Outcome; output?: O; error?: unknown }> {
    const id = this.#nextId++;
    const invokedAt = this.#clock.now();
    try {
      const output = await body();
      this.#operations.push({ ...spec, id, output, outcome: "ok", invokedAt, completedAt: this.#clock.now() });
      return { outcome: "ok", output };
    } catch (err) {
      const completedAt = this.#clock.now();
      const c = classify(err);
      const error = describeError(err);
      if (c.outcome === "ok") {
        this.#operations.push({ ...spec, id, output: c.output, outcome: "ok", invokedAt, completedAt });
        return { outcome: "ok", output: c.output, error: err };
      }
      this.#operations.push({ ...spec, id, outcome: c.outcome, invokedAt, completedAt: c.outcome === "info" ? Infinity : completedAt, error });
      return { outcome: c.outcome, error: err };
    }
  }

  /** Records an instantaneous ok operation at `at` (an observation such as the end of a lease). */
  point<I, O>(spec: OperationSpec<I>, output: O, at: number): void {
    this.#operations.push({ ...spec, id: this.#nextId++, output, outcome: "ok", invokedAt: at, completedAt: at });
  }
}

function describeError(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
