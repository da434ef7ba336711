/**
 * A linearizability checker: is there a total order of a history's operations, consistent
 * with their real-time order, in which a sequential model accepts every result?
 *
 * Algorithm: Wing & Gong's depth-first search over the history's call and return events,
 * with Lowe's memoization (never explore the same set of linearized operations with the
 * same model state twice), as in Porcupine. The history is checked per key (Herlihy &
 * Wing's locality: a history is linearizable iff each object's sub-history is).
 *
 * Invariants of the search:
 * - Events are sorted by time; at equal times calls sort before returns, so operations
 *   that touch at one instant count as concurrent (the clock cannot order them).
 * - `fail` operations are dropped: they had no effect.
 * - `info` operations return at +Infinity. They may take effect anywhere after their
 *   invocation or not at all: the search succeeds once every ok operation is placed.
 *   For an info operation the model is asked only for states in which it took effect.
 * - Models may be nondeterministic; the search tracks the set of possible states.
 * - The search is bounded by `maxSteps` and `timeoutMs`. Running out is the verdict
 *   `unknown`, which callers must treat as a failure, never as a pass.
 */
import type { Operation } from "./history.js";

/** What a model sees of an operation. `output` is undefined when the outcome is unknown (info). */
export interface ModelOperation<I, O> {
  readonly process: string;
  readonly f: string;
  readonly input: I;
  readonly output: O | undefined;
}

/** A sequential specification. */
export interface Model<S, I = unknown, O = unknown> {
  readonly name: string;
  init(): S;
  /**
   * The states after `op` in `state`: empty if `op` (with its output) is illegal there.
   * For an operation with unknown output, the states in which it took effect.
   */
  step(state: S, op: ModelOperation<I, O>): readonly S[];
  /** Equal for equal states: the memoization key. */
  hash(state: S): string;
}

export type Verdict = "linearizable" | "not-linearizable" | "unknown";

export interface Counterexample {
  /** How many operations the deepest attempt managed to linearize. */
  readonly linearized: number;
  /** The last operations of that attempt, in the order it placed them. */
  readonly lastPlaced: readonly Operation[];
  /** The ok operation whose result no remaining order could explain. */
  readonly stuckAt: Operation;
  /** The model's possible states at that point (hashes). */
  readonly states: readonly string[];
}

export interface PartitionResult {
  readonly key: string;
  readonly verdict: Verdict;
  readonly operations: number;
  readonly steps: number;
  readonly ms: number;
  readonly counterexample?: Counterexample;
}

export interface CheckResult {
  readonly model: string;
  readonly verdict: Verdict;
  readonly operations: number;
  readonly ms: number;
  readonly partitions: readonly PartitionResult[];
}

export interface CheckOptions {
  /** Search steps per key before giving up with `unknown`. Default: 5 000 000. */
  maxSteps?: number;
  /** Wall time per key before giving up with `unknown`. Default: 60 000 ms. */
  timeoutMs?: number;
}

/** Checks `history` against `model`, key by key. */
export function checkLinearizability<S, I, O>(model: Model<S, I, O>, history: readonly Operation[], options: CheckOptions = {}): CheckResult {
  const started = performance.now();
  const byKey = new Map<string, Operation[]>();
  for (const op of history) {
    if (op.outcome === "fail") continue;
    const ops = byKey.get(op.key) ?? [];
    ops.push(op);
    byKey.set(op.key, ops);
  }
  const partitions = [...byKey].map(([key, ops]) => checkPartition(model, key, ops, options));
  const verdict: Verdict = partitions.some((p) => p.verdict === "not-linearizable")
    ? "not-linearizable"
    : partitions.some((p) => p.verdict === "unknown")
      ? "unknown"
      : "linearizable";
  const operations = partitions.reduce((sum, p) => sum + p.operations, 0);
  return { model: model.name, verdict, operations, ms: performance.now() - started, partitions };
}

interface Entry {
  readonly op: number;
  readonly isCall: boolean;
  readonly time: number;
  /** A call's return entry. */
  match: Entry | undefined;
  prev: Entry | undefined;
  next: Entry | undefined;
}

function checkPartition<S, I, O>(model: Model<S, I, O>, key: string, ops: readonly Operation[], options: CheckOptions): PartitionResult {
  const started = performance.now();
  const maxSteps = options.maxSteps ?? 5_000_000;
  const deadline = started + (options.timeoutMs ?? 60_000);
  const info = ops.map((op) => op.outcome === "info");
  const modelOps: ModelOperation<I, O>[] = ops.map((op) => ({
    process: op.process,
    f: op.f,
    input: op.input as I,
    output: op.outcome === "ok" ? (op.output as O) : undefined,
  }));

  // The event list, sorted by time with calls first at equal times, as a doubly linked list.
  const events: Entry[] = [];
  ops.forEach((op, i) => {
    const call: Entry = { op: i, isCall: true, time: op.invokedAt, match: undefined, prev: undefined, next: undefined };
    const ret: Entry = { op: i, isCall: false, time: op.outcome === "info" ? Infinity : op.completedAt, match: undefined, prev: undefined, next: undefined };
    call.match = ret;
    events.push(call, ret);
  });
  events.sort((a, b) => a.time - b.time || Number(b.isCall) - Number(a.isCall) || a.op - b.op);
  const head: Entry = { op: -1, isCall: false, time: -Infinity, match: undefined, prev: undefined, next: undefined };
  let last = head;
  for (const e of events) {
    last.next = e;
    e.prev = last;
    last = e;
  }

  const lift = (e: Entry) => {
    const m = e.match!;
    e.prev!.next = e.next;
    e.next!.prev = e.prev;
    m.prev!.next = m.next;
    if (m.next) m.next.prev = m.prev;
  };
  const unlift = (e: Entry) => {
    const m = e.match!;
    m.prev!.next = m;
    if (m.next) m.next.prev = m;
    e.prev!.next = e;
    e.next!.prev = e;
  };

  const linearized = new Uint32Array(Math.ceil(ops.length / 32) + 1);
  const bitsKey = () => Buffer.from(linearized.buffer).toString("latin1");
  const setBit = (i: number, on: boolean) => {
    if (on) linearized[i >>> 5]! |= 1 << (i & 31);
    else linearized[i >>> 5]! &= ~(1 << (i & 31));
  };
  const cache = new Set<string>();
  const stack: { entry: Entry; states: S[] }[] = [];
  let states: S[] = [model.init()];
  let steps = 0;
  let best: Counterexample | undefined;

  const result = (verdict: Verdict): PartitionResult => ({
    key,
    verdict,
    operations: ops.length,
    steps,
    ms: performance.now() - started,
    ...(verdict === "not-linearizable" && best ? { counterexample: best } : {}),
  });

  let entry = head.next;
  for (;;) {
    // Every ok operation is placed: whatever is left are info operations, which may never have happened.
    if (entry === undefined || (!entry.isCall && info[entry.op])) return result("linearizable");
    if (++steps > maxSteps || ((steps & 1023) === 0 && performance.now() > deadline)) return result("unknown");
    if (entry.isCall) {
      const next = stepAll(model, states, modelOps[entry.op]!);
      if (next.length > 0) {
        setBit(entry.op, true);
        const memo = bitsKey() + "|" + next.map((s) => model.hash(s)).sort().join("|");
        if (!cache.has(memo)) {
          cache.add(memo);
          stack.push({ entry, states });
          states = next;
          lift(entry);
          entry = head.next;
          continue;
        }
        setBit(entry.op, false);
      }
      entry = entry.next;
    } else {
      // An ok operation returned before it could be placed: undo the last placement.
      if (!best || stack.length > best.linearized) {
        best = {
          linearized: stack.length,
          lastPlaced: stack.slice(-5).map((s) => ops[s.entry.op]!),
          stuckAt: ops[entry.op]!,
          states: states.map((s) => model.hash(s)),
        };
      }
      const top = stack.pop();
      if (!top) return result("not-linearizable");
      setBit(top.entry.op, false);
      states = top.states;
      unlift(top.entry);
      entry = top.entry.next;
    }
  }
}

/** The union of the states `op` leads to from each of `states`, without duplicates. */
function stepAll<S, I, O>(model: Model<S, I, O>, states: readonly S[], op: ModelOperation<I, O>): S[] {
  const out = new Map<string, S>();
  for (const state of states) {
    for (const next of model.step(state, op)) out.set(model.hash(next), next);
  }
  return [...out.values()];
}
