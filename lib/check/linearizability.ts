/**
 * A linearizability checker: is there a total order of a history's operations, consistent
 * with their real-time order, in which a sequential model accepts every result?
 *
 * Algorithm: Wing & Gong's depth-first search over the history's call and return events,
 * with Lowe's memoization (never explore the same set of linearized operations with the
 * same model state twice), as in Porcupine. The history is checked per key (Herlihy &
 * Wing's locality: a history is linearizable iff each object's sub-history is), and each
 * key's history is cut into segments at quiescent points (see `quiescentSegments`).
 *
 * Invariants of the search:
 * - Events are sorted by time; at equal times calls sort before returns, so operations
 *   that touch at one instant count as concurrent (the clock cannot order them).
 * - `fail` operations are dropped: they had no effect.
 * - `info` operations return at +Infinity. They may take effect anywhere after their
 *   invocation or not at all: the search succeeds once every ok operation is placed.
 *   For an info operation the model is asked only for states in which it took effect.
 * - Models may be nondeterministic; the search tracks the set of possible states.
 * - The memo holds a 128-bit Zobrist hash of the set of linearized operations (updated in
 *   O(1) per step) with the exact model states, so an entry is a few dozen bytes whatever
 *   the history's length (it used to be the whole bitset: memory grew as n²). Two
 *   different sets share a hash with probability 2^-128 per pair (the per-operation
 *   values come from the system's CSPRNG, so there is no linear relation among them):
 *   under 10^-25 for a memo of `maxMemoEntries`. A collision can only prune a branch,
 *   never accept a result, so it could only turn a pass into a false "not linearizable";
 *   a failing key is therefore checked again with freshly drawn values, and fails only
 *   if both searches fail (both would have to collide).
 * - "linearizable" is only ever returned with a complete order in hand, in which the
 *   model accepted every placed operation.
 * - The search is bounded by `maxSteps` and `timeoutMs` per key and `maxMemoEntries` per
 *   memo. Running out is the verdict `unknown`, which callers must treat as a failure,
 *   never as a pass.
 *
 * Assumes: every operation of a key is timed by one clock (see history.ts).
 */
import { randomFillSync } from "node:crypto";
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
  /** Search steps spent on this key, confirmations included. */
  readonly steps: number;
  readonly ms: number;
  /** How many quiescent segments the key's history was cut into. */
  readonly segments: number;
  /** The largest memo of any one search on this key: entries, one per distinct (linearized set, states) visited. */
  readonly memoEntries: number;
  readonly counterexample?: Counterexample;
}

export interface CheckResult {
  readonly model: string;
  readonly verdict: Verdict;
  readonly operations: number;
  /** Wall time of the whole check. */
  readonly ms: number;
  /**
   * The process's V8 heap in use (bytes) when the check started, and the highest value
   * sampled during it (every few thousand search steps and after each segment). The
   * difference approximates the checker's own peak memory; both include whatever else
   * the process holds, such as the history itself.
   */
  readonly heap: { readonly atStart: number; readonly peak: number };
  readonly partitions: readonly PartitionResult[];
}

export interface CheckOptions {
  /**
   * Search steps per key before giving up with `unknown`. A step examines one candidate
   * operation; it costs time, not memory. Default: 100 000 000.
   */
  maxSteps?: number;
  /**
   * Entries in one search's memo before giving up with `unknown`: the checker's memory
   * bound (an entry is about 150 bytes). Default: 4 000 000.
   */
  maxMemoEntries?: number;
  /** Wall time per key before giving up with `unknown`. Default: 60 000 ms. */
  timeoutMs?: number;
}

/** Checks `history` against `model`, key by key. */
export function checkLinearizability<S, I, O>(model: Model<S, I, O>, history: readonly Operation[], options: CheckOptions = {}): CheckResult {
  const started = performance.now();
  const heap = new HeapHighWater();
  const byKey = new Map<string, Operation[]>();
  for (const op of history) {
    if (op.outcome === "fail") continue;
    const ops = byKey.get(op.key) ?? [];
    ops.push(op);
    byKey.set(op.key, ops);
  }
  const partitions = [...byKey].map(([key, ops]) => checkPartition(model, key, ops, options, heap));
  const verdict: Verdict = partitions.some((p) => p.verdict === "not-linearizable")
    ? "not-linearizable"
    : partitions.some((p) => p.verdict === "unknown")
      ? "unknown"
      : "linearizable";
  const operations = partitions.reduce((sum, p) => sum + p.operations, 0);
  heap.sample();
  return { model: model.name, verdict, operations, ms: performance.now() - started, heap: { atStart: heap.atStart, peak: heap.peak }, partitions };
}

/** The highest V8 heap use seen at the sampling points. */
class HeapHighWater {
  readonly atStart = process.memoryUsage().heapUsed;
  peak = this.atStart;
  sample(): void {
    this.peak = Math.max(this.peak, process.memoryUsage().heapUsed);
  }
}

/**
 * One key's operations (fail dropped), cut before every operation invoked after every
 * earlier operation had completed (strictly: equal times count as concurrent). An info
 * operation never completes, so there is no cut after one.
 *
 * Why a cut is sound: every operation before it returned before every operation after it
 * was invoked, so real-time order puts the first group wholly before the second in every
 * linearization. So the history is linearizable iff the second group has a linearization
 * starting from some state in which some linearization of the first group can end.
 * `checkPartition` therefore searches every segment but the last exhaustively, collecting
 * the end states of all its linearizations (not just the first found: two concurrent
 * writes can end in either value), and starts the next segment from all of them. The
 * cost is one search per segment, and each memo lives only as long as its segment.
 */
export function quiescentSegments(ops: readonly Operation[]): Operation[][] {
  const sorted = [...ops].sort((a, b) => a.invokedAt - b.invokedAt || a.id - b.id);
  const segments: Operation[][] = [];
  let lastReturn = -Infinity; // the latest completion so far
  for (const op of sorted) {
    if (lastReturn < op.invokedAt) segments.push([]);
    segments[segments.length - 1]!.push(op);
    lastReturn = Math.max(lastReturn, op.completedAt);
  }
  return segments;
}

/** What every search on one key shares: its step and time budget, and the heap sampler. */
interface Budget {
  steps: number;
  readonly maxSteps: number;
  readonly maxMemoEntries: number;
  readonly deadline: number;
  readonly heap: HeapHighWater;
}

function checkPartition<S, I, O>(model: Model<S, I, O>, key: string, ops: readonly Operation[], options: CheckOptions, heap: HeapHighWater): PartitionResult {
  const started = performance.now();
  const budget: Budget = { steps: 0, maxSteps: options.maxSteps ?? 100_000_000, maxMemoEntries: options.maxMemoEntries ?? 4_000_000, deadline: started + (options.timeoutMs ?? 60_000), heap };
  const segments = quiescentSegments(ops);
  let memoEntries = 0;
  const result = (verdict: Verdict, counterexample?: Counterexample): PartitionResult => ({
    key,
    verdict,
    operations: ops.length,
    steps: budget.steps,
    ms: performance.now() - started,
    segments: segments.length,
    memoEntries,
    ...(verdict === "not-linearizable" && counterexample ? { counterexample } : {}),
  });

  // Segment by segment, from every state some linearization of the segments before can
  // end in. Only the last segment may stop at the first linearization found.
  const segmentBySegment = (): SearchResult<S> => {
    let found: SearchResult<S> = { verdict: "linearizable", endStates: [model.init()], memoEntries: 0 };
    for (let k = 0; k < segments.length && found.verdict === "linearizable"; k++) {
      found = search(model, segments[k]!, found.endStates, budget, k === segments.length - 1 ? "first" : "all");
      memoEntries = Math.max(memoEntries, found.memoEntries);
      heap.sample();
    }
    return found;
  };
  let found = segmentBySegment();
  // A hash collision could only have pruned a branch: confirm a failure with fresh hash values.
  if (found.verdict === "not-linearizable") found = segmentBySegment();
  return result(found.verdict, found.counterexample);
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

interface SearchResult<S> {
  readonly verdict: Verdict;
  /** When linearizable: the possible states after the order found ("first"), or after any order ("all"). */
  readonly endStates: readonly S[];
  readonly memoEntries: number;
  readonly counterexample?: Counterexample;
}

/**
 * Wing & Gong's search with Lowe's memo over `ops`, starting from any of the `initial`
 * states. `first` stops at the first linearization; `all` goes on searching and collects
 * the end states of every linearization (every distinct (set, states) node is still
 * visited at most once).
 */
function search<S, I, O>(model: Model<S, I, O>, ops: readonly Operation[], initial: readonly S[], budget: Budget, want: "first" | "all"): SearchResult<S> {
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

  // Zobrist hashing of the linearized set: four random 32-bit words per operation, XORed
  // into the hash when it is placed and again when it is taken back.
  const zobrist = randomFillSync(new Uint32Array(4 * ops.length));
  let h0 = 0;
  let h1 = 0;
  let h2 = 0;
  let h3 = 0;
  const toggle = (i: number) => {
    h0 ^= zobrist[4 * i]!;
    h1 ^= zobrist[4 * i + 1]!;
    h2 ^= zobrist[4 * i + 2]!;
    h3 ^= zobrist[4 * i + 3]!;
  };
  const linearizedKey = () => String.fromCharCode(h0 & 0xffff, h0 >>> 16, h1 & 0xffff, h1 >>> 16, h2 & 0xffff, h2 >>> 16, h3 & 0xffff, h3 >>> 16);
  const cache = new Set<string>();
  const stack: { entry: Entry; states: readonly S[] }[] = [];
  let states: readonly S[] = initial;
  let best: Counterexample | undefined;
  const endStates = new Map<string, S>();
  const result = (verdict: Verdict): SearchResult<S> => ({
    verdict,
    endStates: [...endStates.values()],
    memoEntries: cache.size,
    ...(verdict === "not-linearizable" && best ? { counterexample: best } : {}),
  });

  let entry = head.next;
  for (;;) {
    // Every ok operation is placed: whatever is left are info operations, which may never have happened.
    const complete = entry === undefined || (!entry.isCall && info[entry.op]);
    if (complete) {
      for (const s of states) endStates.set(model.hash(s), s);
      if (want === "first") return result("linearizable");
    }
    if (++budget.steps > budget.maxSteps) return result("unknown");
    if ((budget.steps & 4095) === 0) {
      if (performance.now() > budget.deadline) return result("unknown");
      budget.heap.sample();
    }
    const pending = complete ? undefined : entry;
    if (pending?.isCall) {
      const next = stepAll(model, states, modelOps[pending.op]!);
      if (next.length > 0) {
        toggle(pending.op);
        const memo = linearizedKey() + next.map((s) => model.hash(s)).sort().join("|");
        if (!cache.has(memo)) {
          if (cache.size >= budget.maxMemoEntries) return result("unknown");
          cache.add(memo);
          stack.push({ entry: pending, states });
          states = next;
          lift(pending);
          entry = head.next;
          continue;
        }
        toggle(pending.op);
      }
      entry = pending.next;
    } else {
      // An ok operation returned before it could be placed, or ("all") an order is complete: undo the last placement.
      if (pending && (!best || stack.length > best.linearized)) {
        best = {
          linearized: stack.length,
          lastPlaced: stack.slice(-5).map((s) => ops[s.entry.op]!),
          stuckAt: ops[pending.op]!,
          states: states.map((s) => model.hash(s)),
        };
      }
      const top = stack.pop();
      if (!top) return result(endStates.size > 0 ? "linearizable" : "not-linearizable");
      toggle(top.entry.op);
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
