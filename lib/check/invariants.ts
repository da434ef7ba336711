/**
 * Direct invariant checks that name what went wrong, beside the linearizability verdict
 * (which says only that no order explains the history). Each looks only at ok
 * operations, which certainly happened, and compares them in real-time order.
 *
 * - `duplicate-token`: two grants of one lock returned the same fencing token.
 * - `token-regressed`: a grant that started after another finished got a lower token.
 * - `overlapping-holders`: a grant completed while an earlier holder still believed it
 *   held the lock (between its grant and its recorded `leaseEnd`).
 * - `stale-write-accepted`: a fenced write was accepted after a write with a higher
 *   token had been accepted.
 * - `lock-stuck`: after the run (faults off, nobody else left), a fresh waiter was not
 *   granted the lock within its wait: something (a killed holder's lease, a dead waiter's
 *   place) blocks it for longer than the protocol's bounds allow.
 * - `duplicate-value`: two increments of one counter returned the same value.
 * - `lost-update`: two compare-and-sets from the same version both succeeded.
 * - `not-linearizable` / `check-unknown`: from the linearizability checker.
 */
import type { Operation } from "./history.js";
import type { CheckResult } from "./linearizability.js";

export interface Anomaly {
  readonly kind: string;
  readonly key: string;
  readonly detail: string;
  readonly operations: readonly Operation[];
}

const ok = (history: readonly Operation[], f: string) => history.filter((op) => op.outcome === "ok" && op.f === f);

function byKey(ops: readonly Operation[]): Map<string, Operation[]> {
  const out = new Map<string, Operation[]>();
  for (const op of ops) out.set(op.key, [...(out.get(op.key) ?? []), op]);
  return out;
}

const tokenOf = (op: Operation) => (op.output as { token: number }).token;

/** For a time t: the operation with the highest `value` among those completed before t. */
function highestCompletedBefore(ops: readonly Operation[], value: (op: Operation) => number): (t: number) => Operation | undefined {
  const sorted = [...ops].sort((a, b) => a.completedAt - b.completedAt);
  const best: Operation[] = [];
  for (const op of sorted) best.push(best.length && value(best[best.length - 1]!) >= value(op) ? best[best.length - 1]! : op);
  return (t) => {
    let lo = 0;
    let hi = sorted.length; // first index completed at or after t
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sorted[mid]!.completedAt < t) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? undefined : best[lo - 1];
  };
}

/** Grants, lease ends and fenced writes of the lock workload. */
export function lockAnomalies(history: readonly Operation[]): Anomaly[] {
  const anomalies: Anomaly[] = [];
  for (const [key, grants] of byKey(ok(history, "acquire"))) {
    const seen = new Map<number, Operation>();
    for (const g of grants) {
      const twin = seen.get(tokenOf(g));
      if (twin) anomalies.push({ kind: "duplicate-token", key, detail: `token ${tokenOf(g)} granted to ${twin.process} and ${g.process}`, operations: [twin, g] });
      seen.set(tokenOf(g), g);
    }
    const highestBefore = highestCompletedBefore(grants, tokenOf);
    for (const g of grants) {
      const highest = highestBefore(g.invokedAt);
      if (highest && tokenOf(highest) >= tokenOf(g)) {
        anomalies.push({ kind: "token-regressed", key, detail: `${g.process} got token ${tokenOf(g)} after ${highest.process} had been granted ${tokenOf(highest)}`, operations: [highest, g] });
      }
    }
  }
  const ends = new Map(ok(history, "leaseEnd").map((e) => [`${e.key}#${(e.input as { token: number }).token}`, e]));
  for (const [key, grants] of byKey(ok(history, "acquire"))) {
    const holds = grants.map((g) => ({ grant: g, end: ends.get(`${key}#${tokenOf(g)}`)?.invokedAt ?? g.completedAt }));
    for (const a of holds) {
      for (const b of holds) {
        if (tokenOf(a.grant) < tokenOf(b.grant) && b.grant.completedAt < a.end && a.grant.completedAt < b.end) {
          anomalies.push({
            kind: "overlapping-holders",
            key,
            detail: `${b.grant.process} was granted token ${tokenOf(b.grant)} ${(a.end - b.grant.completedAt).toFixed(0)} ms before ${a.grant.process} (token ${tokenOf(a.grant)}) stopped believing it held the lock`,
            operations: [a.grant, b.grant],
          });
        }
      }
    }
  }
  const writeToken = (w: Operation) => (w.input as { token: number }).token;
  for (const [key, writes] of byKey(ok(history, "write").filter((w) => w.output === "ok"))) {
    const highestBefore = highestCompletedBefore(writes, writeToken);
    for (const w of writes) {
      const newer = highestBefore(w.invokedAt);
      if (newer && writeToken(newer) > writeToken(w)) {
        anomalies.push({ kind: "stale-write-accepted", key, detail: `${w.process}'s write with token ${writeToken(w)} was accepted after ${newer.process}'s with token ${writeToken(newer)}`, operations: [newer, w] });
      }
    }
  }
  return anomalies;
}

/** Acquires by `prober` (the run's final waiter on each lock) that were not granted (see `lock-stuck` above). */
export function stuckLocks(history: readonly Operation[], prober: string): Anomaly[] {
  return history
    .filter((op) => op.process === prober && op.f === "acquire" && op.outcome !== "ok")
    .map((op) => ({ kind: "lock-stuck", key: op.key, detail: `after the run, a fresh waiter was not granted the lock in ${(op.completedAt - op.invokedAt).toFixed(0)} ms (${op.error ?? op.outcome})`, operations: [op] }));
}

/** Increments of the counter workload. */
export function counterAnomalies(history: readonly Operation[]): Anomaly[] {
  const anomalies: Anomaly[] = [];
  for (const [key, incs] of byKey(ok(history, "increment"))) {
    const seen = new Map<unknown, Operation>();
    for (const op of incs) {
      const twin = seen.get(op.output);
      if (twin) anomalies.push({ kind: "duplicate-value", key, detail: `${twin.process} and ${op.process} both got ${String(op.output)}`, operations: [twin, op] });
      seen.set(op.output, op);
    }
  }
  return anomalies;
}

/** Compare-and-sets of the register workload. */
export function registerAnomalies(history: readonly Operation[]): Anomaly[] {
  const anomalies: Anomaly[] = [];
  for (const [key, cas] of byKey(ok(history, "cas").filter((op) => (op.output as { ok: boolean }).ok))) {
    const seen = new Map<number, Operation>();
    for (const op of cas) {
      const expected = (op.input as { expected: number }).expected;
      const twin = seen.get(expected);
      if (twin) anomalies.push({ kind: "lost-update", key, detail: `${twin.process} and ${op.process} both replaced version ${expected}`, operations: [twin, op] });
      seen.set(expected, op);
    }
  }
  return anomalies;
}

/** The checker's verdicts as anomalies: one per key that is not linearizable or was not decided. */
export function checkAnomalies(check: CheckResult): Anomaly[] {
  return check.partitions
    .filter((p) => p.verdict !== "linearizable")
    .map((p) =>
      p.verdict === "unknown"
        ? { kind: "check-unknown", key: p.key, detail: `${check.model}: the search ran out of its budget (steps, memo entries or time) after ${p.steps} steps, ${p.memoEntries} memo entries, ${p.ms} ms; the history is neither passed nor failed`, operations: [] }
        : {
            kind: "not-linearizable",
            key: p.key,
            detail: `${check.model}: no order explains ${describe(p.counterexample?.stuckAt)} after ${p.counterexample?.linearized ?? 0} operations (state then: ${p.counterexample?.states.join(" or ") ?? "?"})`,
            operations: [...(p.counterexample?.lastPlaced ?? []), ...(p.counterexample ? [p.counterexample.stuckAt] : [])],
          },
    );
}

export function describe(op: Operation | undefined): string {
  if (!op) return "?";
  return `${op.process} ${op.f}(${JSON.stringify(op.input)}) → ${JSON.stringify(op.output)} [${op.invokedAt.toFixed(1)}, ${op.completedAt.toFixed(1)}]`;
}
