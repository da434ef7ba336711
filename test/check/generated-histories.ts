/**
 * Large generated histories for the linearizability checker: processes that work one
 * operation at a time on one object, with random latencies, so that operations overlap as
 * they do in the verification workloads. Each operation takes effect at a random instant
 * inside its interval on a single correct copy, so the history is linearizable unless a
 * caller tampers with it. Seeded: the same options give the same history.
 */
import type { Operation } from "../../lib/check/history.js";
import { Random } from "../../lib/check/random.js";

export interface GeneratedHistoryOptions {
  /** The object: a counter (increment, read) or a CAS register (read, cas). */
  readonly model: "counter" | "register";
  readonly operations: number;
  /** Workers, each with one operation in flight at a time. Default 4. */
  readonly processes?: number;
  /** Fraction of operations whose outcome is unknown (info); half of them took effect. Default 0. */
  readonly infoRate?: number;
  /** The longest operation latency in ms; the gap between a worker's operations is up to a fifth of it. Default 10. */
  readonly maxLatency?: number;
  readonly seed?: number;
  readonly key?: string;
}

interface Planned {
  readonly id: number;
  readonly process: string;
  readonly invokedAt: number;
  readonly completedAt: number;
  readonly effectAt: number;
  readonly f: string;
  readonly info: boolean;
  readonly applies: boolean;
}

/** A linearizable history of `operations` operations on one key. */
export function generateHistory(options: GeneratedHistoryOptions): Operation[] {
  const random = new Random(options.seed ?? 1);
  const processes = options.processes ?? 4;
  const maxLatency = options.maxLatency ?? 10;
  const key = options.key ?? "k";
  const clocks = new Array<number>(processes).fill(0);
  const planned: Planned[] = [];
  for (let id = 0; id < options.operations; id++) {
    const p = id % processes;
    const invokedAt = clocks[p]! + random.next() * (maxLatency / 5);
    const completedAt = invokedAt + 0.1 + random.next() * maxLatency;
    clocks[p] = completedAt;
    const info = random.chance(options.infoRate ?? 0);
    const f = random.chance(0.5) ? "read" : options.model === "counter" ? "increment" : "cas";
    // An unknown read tells nothing; the workloads record unknown writes only.
    const unknown = info && f !== "read";
    planned.push({ id, process: `p${p}`, invokedAt, completedAt, effectAt: invokedAt + random.next() * (completedAt - invokedAt), f, info: unknown, applies: !unknown || random.chance(0.5) });
  }

  // Apply the operations to one correct copy in the order they took effect.
  let value = 0;
  let version = 0;
  let written: string | null = null;
  const lastSeen = new Map<string, number>();
  const byEffect = [...planned].sort((a, b) => a.effectAt - b.effectAt);
  const outputs = new Map<number, { input: object; output: unknown }>();
  for (const op of byEffect) {
    if (options.model === "counter") {
      if (op.f === "read") outputs.set(op.id, { input: {}, output: value });
      else {
        if (op.applies) value += 1;
        outputs.set(op.id, { input: { delta: 1 }, output: value });
      }
      continue;
    }
    if (op.f === "read") {
      lastSeen.set(op.process, version);
      outputs.set(op.id, { input: {}, output: { version, value: written } });
      continue;
    }
    const expected = lastSeen.get(op.process) ?? 0;
    const input = { expected, value: `${op.process}-${op.id}` };
    if (expected === version) {
      if (op.applies) {
        version += 1;
        written = input.value;
      }
      outputs.set(op.id, { input, output: { ok: true } });
    } else {
      outputs.set(op.id, { input, output: { ok: false, version } });
    }
    lastSeen.set(op.process, version);
  }

  return planned.map((op) => {
    const { input, output } = outputs.get(op.id)!;
    const common = { id: op.id, process: op.process, key, f: op.f, input, invokedAt: op.invokedAt };
    return op.info ? { ...common, outcome: "info" as const, completedAt: Infinity } : { ...common, output, outcome: "ok" as const, completedAt: op.completedAt };
  });
}
