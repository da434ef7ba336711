/**
 * The checker on large generated histories: a clean 100k-operation key within a memory
 * budget (checked in a child process with a capped heap, so running out of memory
 * fails the test instead of the test runner), and known-bad histories of the same size.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { Operation } from "../../lib/check/history.js";
import { checkLinearizability, quiescentSegments } from "../../lib/check/linearizability.js";
import { casRegister, counter, fencedMutex } from "../../lib/check/models.js";
import { generateHistory } from "./generated-histories.js";

const measure = fileURLToPath(new URL("./measure-checker.ts", import.meta.url));
const tsx = fileURLToPath(new URL("../../node_modules/tsx/dist/esm/index.mjs", import.meta.url));

/** The history with operation `id`'s output replaced. */
function tampered(history: readonly Operation[], id: number, output: unknown): Operation[] {
  return history.map((op) => (op.id === id ? { ...op, output } : op));
}

describe("checker on large histories", () => {
  it("passes a clean 100k-operation counter key with a 256 MB heap", { timeout: 120_000 }, () => {
    // The old memo (the whole linearized bitset per entry) needed about 1.5 GB here.
    const child = spawnSync(process.execPath, ["--max-old-space-size=256", "--import", tsx, measure, "100000", "counter", "0", "4"], { encoding: "utf8" });
    expect(child.status, child.stderr.slice(-2000)).toBe(0);
    // Time is reported by `npm run verify`, not asserted here: the heap cap is what the old memo broke.
    const measured = JSON.parse(child.stdout) as { verdict: string; ms: number };
    expect(measured.verdict).toBe("linearizable");
  });

  it("finds one wrong read in the middle of a 100k-operation counter history", () => {
    const clean = generateHistory({ model: "counter", operations: 100_000, seed: 7 });
    const read = clean.find((op) => op.id > 50_000 && op.f === "read")!;
    // More increments than could have happened by then, whatever the order.
    const result = checkLinearizability(counter, tampered(clean, read.id, (read.output as number) + 1000));
    expect(result.verdict).toBe("not-linearizable");
    expect(result.partitions[0]!.counterexample?.stuckAt.id).toBe(read.id);
  });

  it("finds one lost update in a 20k-operation register history with eight workers and unknown outcomes", () => {
    // With info operations pending to the end there is no quiescent cut after the first one: one long segment.
    const clean = generateHistory({ model: "register", operations: 20_000, processes: 8, infoRate: 0.002, seed: 3 });
    expect(checkLinearizability(casRegister, clean).verdict).toBe("linearizable");
    const failed = clean.find((op) => op.id > 15_000 && op.f === "cas" && op.outcome === "ok" && (op.output as { ok: boolean }).ok === false)!;
    const result = checkLinearizability(casRegister, tampered(clean, failed.id, { ok: true }));
    expect(result.verdict).toBe("not-linearizable");
  });
});

describe("quiescent segments", () => {
  let nextId = 0;
  const op = (f: string, invokedAt: number, completedAt: number, input: object, output: unknown): Operation => ({
    id: nextId++,
    process: `p${nextId}`,
    key: "k",
    f,
    input,
    output,
    outcome: "ok",
    invokedAt,
    completedAt,
  });

  it("cuts where nothing is pending, never at a touch or after an unknown operation", () => {
    const a = op("increment", 0, 2, {}, 1);
    const b = op("increment", 1, 3, {}, 2);
    const touching = op("read", 3, 4, {}, 2);
    const after = op("read", 5, 6, {}, 2);
    const unknown: Operation = { ...op("increment", 7, 8, {}, undefined), outcome: "info", completedAt: Infinity };
    const late = op("read", 9, 10, {}, 3);
    expect(quiescentSegments([late, a, unknown, b, after, touching]).map((s) => s.map((o) => o.id))).toEqual([[a.id, b.id, touching.id], [after.id], [unknown.id, late.id]]);
  });

  it("does not fail a history whose first segment ended in a state the next one rules out", () => {
    // Two concurrent writes under one token: either may have been last. The search tries
    // "x" then "y" first; the read after the quiescent point shows "x" was last.
    const history = [
      op("acquire", 0, 1, {}, { token: 1 }),
      op("write", 2, 5, { token: 1, value: "x" }, "ok"),
      op("write", 3, 6, { token: 1, value: "y" }, "ok"),
      op("read", 7, 8, {}, { token: 1, value: "x" }),
    ];
    expect(quiescentSegments(history)).toHaveLength(3);
    expect(checkLinearizability(fencedMutex, history).verdict).toBe("linearizable");
    const impossible = [...history, op("read", 9, 10, {}, { token: 1, value: "y" })];
    expect(checkLinearizability(fencedMutex, impossible).verdict).toBe("not-linearizable");
  });
});
