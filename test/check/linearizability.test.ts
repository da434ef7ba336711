/** The checker on small hand-made histories, linearizable and not. */
import { describe, expect, it } from "vitest";
import type { Operation } from "../../lib/check/history.js";
import { checkLinearizability } from "../../lib/check/linearizability.js";
import { casRegister, counter, fencedMutex } from "../../lib/check/models.js";

let nextId = 0;
/** An operation on key "k": `[invokedAt, completedAt]`, outcome ok unless `info`/`fail`. */
function op(process: string, f: string, at: [number, number | "info" | "fail"], input: object, output?: unknown): Operation {
  const [invokedAt, end] = at;
  const outcome = end === "info" ? "info" : end === "fail" ? "fail" : "ok";
  return { id: nextId++, process, key: "k", f, input, output, outcome, invokedAt, completedAt: typeof end === "number" ? end : Infinity };
}

describe("counter model", () => {
  it("accepts concurrent increments in either order", () => {
    const h = [op("a", "increment", [0, 10], {}, 2), op("b", "increment", [1, 9], {}, 1), op("c", "read", [11, 12], {}, 2)];
    expect(checkLinearizability(counter, h).verdict).toBe("linearizable");
  });

  it("rejects a value that real-time order forbids", () => {
    // a finished with 1 before b started, so b cannot also see 1.
    const h = [op("a", "increment", [0, 1], {}, 1), op("b", "increment", [2, 3], {}, 1)];
    const result = checkLinearizability(counter, h);
    expect(result.verdict).toBe("not-linearizable");
    expect(result.partitions[0]!.counterexample?.stuckAt.process).toBe("b");
  });

  it("lets an info increment explain a jump, and also not happen at all", () => {
    const jump = [op("a", "increment", [0, "info"], {}), op("b", "increment", [5, 6], {}, 2)];
    expect(checkLinearizability(counter, jump).verdict).toBe("linearizable");
    const none = [op("a", "increment", [0, "info"], {}), op("b", "increment", [5, 6], {}, 1)];
    expect(checkLinearizability(counter, none).verdict).toBe("linearizable");
  });

  it("does not let an info increment take effect before it was invoked", () => {
    const h = [op("b", "increment", [0, 1], {}, 2), op("a", "increment", [5, "info"], {})];
    expect(checkLinearizability(counter, h).verdict).toBe("not-linearizable");
  });

  it("lets an info increment take effect only once", () => {
    const h = [op("a", "increment", [0, "info"], {}), op("b", "increment", [5, 6], {}, 2), op("c", "increment", [7, 8], {}, 4)];
    expect(checkLinearizability(counter, h).verdict).toBe("not-linearizable");
  });

  it("drops failed operations", () => {
    const h = [op("a", "increment", [0, "fail"], {}), op("b", "increment", [5, 6], {}, 1)];
    expect(checkLinearizability(counter, h).verdict).toBe("linearizable");
  });

  it("treats operations that touch at one instant as concurrent", () => {
    // b is invoked at the instant a completes: either order is allowed.
    const h = [op("a", "increment", [0, 5], {}, 2), op("b", "increment", [5, 6], {}, 1)];
    expect(checkLinearizability(counter, h).verdict).toBe("linearizable");
  });

  it("checks each key on its own", () => {
    const h = [op("a", "increment", [0, 1], {}, 1), { ...op("b", "increment", [2, 3], {}, 1), key: "other" }];
    const result = checkLinearizability(counter, h);
    expect(result.verdict).toBe("linearizable");
    expect(result.partitions).toHaveLength(2);
  });

  it("reports unknown, not a pass, when the budget runs out", () => {
    const h = Array.from({ length: 14 }, (_, i) => op(`p${i}`, "increment", [0, 100], {}, 14 - i));
    h.push(op("z", "read", [101, 102], {}, 99));
    expect(checkLinearizability(counter, h, { maxSteps: 50 }).verdict).toBe("unknown");
    // Concurrent reads can be placed in any order: each subset of them is a memo entry.
    const reads = Array.from({ length: 14 }, (_, i) => op(`p${i}`, "read", [0, 100], {}, 0));
    reads.push(op("z", "read", [101, 102], {}, 99));
    expect(checkLinearizability(counter, reads, { maxMemoEntries: 50 }).verdict).toBe("unknown");
  });

  it("reports the check's time, memo size and heap high-water mark", () => {
    const h = [op("a", "increment", [0, 10], {}, 2), op("b", "increment", [1, 9], {}, 1), op("c", "read", [11, 12], {}, 2)];
    const result = checkLinearizability(counter, h);
    expect(result.heap.peak).toBeGreaterThanOrEqual(result.heap.atStart);
    expect(result.partitions[0]).toMatchObject({ segments: 2, memoEntries: 2 });
    expect(result.ms).toBeGreaterThanOrEqual(result.partitions[0]!.ms);
  });
});

describe("CAS register model", () => {
  it("accepts a history where a failed CAS saw the winner's version", () => {
    const h = [
      op("a", "cas", [0, 10], { expected: 0, value: "x" }, { ok: true }),
      op("b", "cas", [1, 11], { expected: 0, value: "y" }, { ok: false, version: 1 }),
      op("c", "read", [12, 13], {}, { version: 1, value: "x" }),
    ];
    expect(checkLinearizability(casRegister, h).verdict).toBe("linearizable");
  });

  it("rejects two successful CAS from the same version (a lost update)", () => {
    const h = [
      op("a", "cas", [0, 10], { expected: 0, value: "x" }, { ok: true }),
      op("b", "cas", [1, 11], { expected: 0, value: "y" }, { ok: true }),
    ];
    expect(checkLinearizability(casRegister, h).verdict).toBe("not-linearizable");
  });

  it("rejects a stale read", () => {
    const h = [
      op("a", "cas", [0, 1], { expected: 0, value: "x" }, { ok: true }),
      op("b", "read", [2, 3], {}, { version: 0, value: null }),
    ];
    expect(checkLinearizability(casRegister, h).verdict).toBe("not-linearizable");
  });

  it("lets an info CAS land late, but only if its expected version still matches", () => {
    const late = [
      op("a", "cas", [0, "info"], { expected: 0, value: "x" }),
      op("b", "read", [1, 2], {}, { version: 0, value: null }),
      op("c", "read", [3, 4], {}, { version: 1, value: "x" }),
    ];
    expect(checkLinearizability(casRegister, late).verdict).toBe("linearizable");
    const impossible = [
      op("a", "cas", [0, "info"], { expected: 0, value: "x" }),
      op("b", "cas", [1, 2], { expected: 0, value: "y" }, { ok: true }),
      op("c", "read", [3, 4], {}, { version: 2, value: "x" }),
    ];
    expect(checkLinearizability(casRegister, impossible).verdict).toBe("not-linearizable");
  });
});

describe("fenced mutex model", () => {
  const grant = (p: string, at: [number, number], token: number) => op(p, "acquire", at, {}, { token });
  const leaseEnd = (p: string, at: number, token: number) => op(p, "leaseEnd", [at, at], { token }, null);

  it("accepts grants with increasing tokens separated by lease ends", () => {
    const h = [grant("a", [0, 2], 1), leaseEnd("a", 10, 1), grant("b", [5, 12], 2), op("b", "release", [13, 14], { token: 2 }, { released: true })];
    expect(checkLinearizability(fencedMutex, h).verdict).toBe("linearizable");
  });

  it("rejects a grant completed while the previous holder still believed it held the lock", () => {
    const h = [grant("a", [0, 2], 1), grant("b", [3, 5], 2), leaseEnd("a", 10, 1)];
    expect(checkLinearizability(fencedMutex, h).verdict).toBe("not-linearizable");
  });

  it("rejects a token that does not increase", () => {
    const h = [grant("a", [0, 2], 5), leaseEnd("a", 3, 5), grant("b", [4, 6], 5)];
    expect(checkLinearizability(fencedMutex, h).verdict).toBe("not-linearizable");
  });

  it("accepts a release after the lease ended if nobody took over, and rejects one after a takeover", () => {
    const quiet = [grant("a", [0, 1], 1), leaseEnd("a", 5, 1), op("a", "release", [6, 7], { token: 1 }, { released: true })];
    expect(checkLinearizability(fencedMutex, quiet).verdict).toBe("linearizable");
    const takenOver = [grant("a", [0, 1], 1), leaseEnd("a", 5, 1), grant("b", [6, 7], 2), op("a", "release", [8, 9], { token: 1 }, { released: true })];
    expect(checkLinearizability(fencedMutex, takenOver).verdict).toBe("not-linearizable");
  });

  it("rejects a stale fenced write that was accepted, and accepts one that was refused", () => {
    const base = [grant("a", [0, 1], 1), leaseEnd("a", 2, 1), grant("b", [3, 4], 2), op("b", "write", [5, 6], { token: 2, value: "b" }, "ok")];
    const accepted = [...base, op("a", "write", [7, 8], { token: 1, value: "a" }, "ok")];
    expect(checkLinearizability(fencedMutex, accepted).verdict).toBe("not-linearizable");
    const refused = [...base, op("a", "write", [7, 8], { token: 1, value: "a" }, "stale"), op("c", "read", [9, 10], {}, { token: 2, value: "b" })];
    expect(checkLinearizability(fencedMutex, refused).verdict).toBe("linearizable");
  });

  it("lets an unknown acquire leave an orphan grant that raises the token floor", () => {
    const h = [op("a", "acquire", [0, "info"], {}), grant("b", [5, 6], 2)];
    expect(checkLinearizability(fencedMutex, h).verdict).toBe("linearizable");
  });
});
