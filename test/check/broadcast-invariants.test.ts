/**
 * The broadcast workload's checks (broadcastAnomalies) on hand-made observations: a correct
 * run passes, and each kind of broken run is named by its own check and by no other (the
 * checks' own negative controls, without a cloud; the workload's controls in verify.test.ts
 * show two of them catching real bugs end to end).
 */
import { describe, expect, it } from "vitest";
import { broadcastAnomalies } from "../../lib/check/workloads/broadcast.js";
import type { Operation } from "../../lib/check/history.js";
import type { Slot } from "../../lib/ordering/log.js";

type Observed = Parameters<typeof broadcastAnomalies>[0];
type Effects = Observed["effects"];

let nextId = 0;
const publish = (id: string, outcome: "ok" | "info", seq?: number): Operation => ({
  id: nextId++,
  process: "p1",
  key: "s",
  f: "publish",
  input: { id },
  ...(outcome === "ok" ? { output: { seq } } : {}),
  outcome,
  invokedAt: nextId,
  completedAt: outcome === "ok" ? nextId + 1 : Number.POSITIVE_INFINITY,
});
const message = (seq: number, id: string, dedupId?: string): Slot => ({ seq, kind: "message", payload: JSON.stringify({ id }), writer: "p1", ...(dedupId ? { dedupId } : {}) });
const applied = (seq: number, id: string, times = 1) => [seq, { applied: times, payload: JSON.stringify({ id }) }] as const;

/**
 * A correct run: 'a' at 1, a number whose publisher crashed filled with a no-op at 2, 'b'
 * (with a dedup id) at 3; 'c' was published with an unknown outcome and never written.
 * Both groups applied 1 and 3 once, and stopped at the head; the consumer handled in order.
 */
function clean(): Observed {
  const effects: Effects = new Map([
    ["queue", new Map([applied(1, "a"), applied(3, "b")])],
    ["log", new Map([applied(1, "a"), applied(3, "b")])],
  ]);
  return {
    stream: "s",
    head: 3,
    slots: [message(1, "a"), { seq: 2, kind: "noop" }, message(3, "b", "d-b")],
    effects,
    cursors: new Map([
      ["queue", 3],
      ["log", 3],
    ]),
    history: [publish("a", "ok", 1), publish("b", "ok", 3), publish("c", "info")],
    handled: new Map([["c1", [{ seq: 1, committedBefore: 0 }, { seq: 3, committedBefore: 1 }]]]),
  };
}

/** The observation with slot `seq` (4 if new) holding `slot`, applied by the groups named, and the head and cursors moved to it. */
function withSlot(o: Observed, slot: Slot, appliedBy: readonly string[]): Observed {
  const effects: Effects = new Map([...o.effects].map(([group, m]) => [group, new Map(m)]));
  for (const group of appliedBy) effects.get(group)!.set(slot.seq, { applied: 1, payload: slot.kind === "message" ? JSON.stringify(JSON.parse(slot.payload)) : "" });
  const head = Math.max(o.head, slot.seq);
  return { ...o, head, slots: [...o.slots.filter((s) => s.seq !== slot.seq), slot], effects, cursors: new Map([...o.cursors].map(([g]) => [g, head])) };
}

const kinds = (o: Observed) => [...new Set(broadcastAnomalies(o).map((a) => a.kind))].sort();

describe("broadcast checks", () => {
  it("pass a correct run", () => {
    expect(broadcastAnomalies(clean())).toEqual([]);
  });

  it("name a slot left empty, and a group that stopped short of the head (permanent-gap)", () => {
    const o = clean();
    expect(kinds({ ...o, slots: o.slots.filter((s) => s.seq !== 2) })).toEqual(["permanent-gap"]);
    expect(kinds({ ...o, cursors: new Map([["queue", 3], ["log", 2]]) })).toEqual(["permanent-gap"]);
  });

  it("name an acknowledged publish whose slot holds something else, or that a group never applied (lost-publish)", () => {
    const o = clean();
    expect(kinds({ ...o, history: [...o.history, publish("z", "ok", 2)] })).toEqual(["lost-publish"]);
    const lostByOne: Effects = new Map([...o.effects].map(([group, m]) => [group, new Map(m)]));
    lostByOne.get("log")!.delete(1);
    expect(kinds({ ...o, effects: lostByOne })).toContain("lost-publish");
  });

  it("name an effect applied twice (duplicate-delivery)", () => {
    const o = clean();
    const twice: Effects = new Map([...o.effects].map(([group, m]) => [group, new Map(m)]));
    twice.get("queue")!.set(3, { applied: 2, payload: JSON.stringify({ id: "b" }) });
    expect(kinds({ ...o, effects: twice })).toEqual(["duplicate-delivery"]);
  });

  it("name a group that applied what the log does not hold there, or skipped a message nobody was told of (disagreement)", () => {
    const o = clean();
    const wrong: Effects = new Map([...o.effects].map(([group, m]) => [group, new Map(m)]));
    wrong.get("queue")!.set(3, { applied: 1, payload: JSON.stringify({ id: "x" }) });
    expect(kinds({ ...o, effects: wrong })).toEqual(["disagreement"]);
    const onNoop: Effects = new Map([...o.effects].map(([group, m]) => [group, new Map(m)]));
    onNoop.get("log")!.set(2, { applied: 1, payload: "" });
    expect(kinds({ ...o, effects: onNoop })).toEqual(["disagreement"]);
    // 'c' (its publish's outcome unknown) landed at 4; one group never applied it.
    expect(kinds(withSlot(o, message(4, "c"), ["queue"]))).toEqual(["disagreement"]);
  });

  it("name one payload or one dedup id in two slots (duplicate-message)", () => {
    const o = clean();
    expect(kinds(withSlot(o, message(4, "a"), ["queue", "log"]))).toEqual(["duplicate-message"]);
    expect(kinds(withSlot(o, message(4, "c", "d-b"), ["queue", "log"]))).toEqual(["duplicate-message"]);
  });

  it("name a slot holding a payload nobody published (not-published)", () => {
    expect(kinds(withSlot(clean(), message(4, "forged"), ["queue", "log"]))).toEqual(["not-published"]);
  });

  it("name a consumer that handled a number at or below a cursor it had seen (out-of-order)", () => {
    const o = clean();
    expect(kinds({ ...o, handled: new Map([["c1", [{ seq: 3, committedBefore: 0 }, { seq: 1, committedBefore: 3 }]]]) })).toEqual(["out-of-order"]);
  });

  it("accept the clean run's unknown-outcome publish landing, applied by both groups", () => {
    expect(broadcastAnomalies(withSlot(clean(), message(4, "c"), ["queue", "log"]))).toEqual([]);
  });
});
