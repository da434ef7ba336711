/** The history recorder's classification, the seeded fault schedule, the pause gate and duplicated requests. */
import { ConditionalCheckFailedException, GetItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb";
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { emptyFaultCounts, FaultSchedule, PauseGate, SkewedClock } from "../../lib/check/faults.js";
import { HistoryRecorder } from "../../lib/check/history.js";
import { duplicateRequests, type Delivery } from "../../lib/check/middleware.js";
import { Random } from "../../lib/check/random.js";
import { dynamoDbClient, lockTable } from "../support/cloud.js";

describe("HistoryRecorder", () => {
  it("records ok results, and thrown errors as info unless classified", async () => {
    let t = 0;
    const recorder = new HistoryRecorder({ now: () => t++ });
    const spec = { process: "p", key: "k", f: "op", input: {} };
    await recorder.record(spec, async () => 42);
    await recorder.record(spec, async () => Promise.reject(new Error("socket hang up")));
    await recorder.record(spec, async () => Promise.reject(new RangeError("no")), () => ({ outcome: "fail" }));
    await recorder.record(spec, async () => Promise.reject(new Error("stale")), () => ({ outcome: "ok", output: "stale" }));
    const [ok, info, fail, mapped] = recorder.operations;
    expect(ok).toMatchObject({ outcome: "ok", output: 42, invokedAt: 0, completedAt: 1 });
    expect(info).toMatchObject({ outcome: "info", completedAt: Infinity, error: "Error: socket hang up" });
    expect(fail).toMatchObject({ outcome: "fail", completedAt: 5 });
    expect(mapped).toMatchObject({ outcome: "ok", output: "stale" });
  });
});

describe("FaultSchedule", () => {
  const sequence = (seed: number) => {
    const counts = emptyFaultCounts();
    const client = dynamoDbClient({ maxAttempts: 1 });
    new FaultSchedule(new Random(seed).fork("w0"), counts, { rate: 0.3 }).attach(client);
    return { client, counts };
  };

  it("replays the same faults from the same seed, and others from another", async () => {
    const outcomes = async (seed: number) => {
      const { client, counts } = sequence(seed);
      const seen: string[] = [];
      for (let i = 0; i < 40; i++) {
        const r = await client.send(new GetItemCommand({ TableName: lockTable(), Key: { pk: { S: "nothing" } } })).then(
          () => "ok",
          (e: Error) => e.name,
        );
        seen.push(r);
      }
      return { seen, counts };
    };
    const a = await outcomes(7);
    const b = await outcomes(7);
    const c = await outcomes(8);
    expect(a.seen).toEqual(b.seen);
    expect(a.counts).toEqual(b.counts);
    expect(c.seen).not.toEqual(a.seen);
    expect(Object.values(a.counts).reduce((x, y) => x + y, 0)).toBeGreaterThan(0);
  });
});

describe("PauseGate", () => {
  it("holds a worker's requests until the pause is over", async () => {
    const counts = emptyFaultCounts();
    const gate = new PauseGate(counts);
    const client = dynamoDbClient();
    gate.attach(client);
    const started = performance.now();
    const pause = gate.pause(300);
    await client.send(new GetItemCommand({ TableName: lockTable(), Key: { pk: { S: "nothing" } } }));
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    await pause;
    expect(counts.pause).toBe(1);
  });
});

describe("SkewedClock", () => {
  it("has an arbitrary origin and a rate within the drift", () => {
    const clock = new SkewedClock(new Random(1), 0.01);
    expect(Math.abs(clock.rate - 1)).toBeLessThanOrEqual(0.01);
    expect(clock.toReal(1000) * clock.rate).toBeCloseTo(1000);
    const a = clock.now();
    expect(clock.now()).toBeGreaterThanOrEqual(a);
  });
});

describe("duplicateRequests", () => {
  it("sends a request twice at once, answers with the chosen copy once both landed, and reports both", async () => {
    for (const answer of [0, 1] as const) {
      const client = dynamoDbClient({ maxAttempts: 1 });
      let heard: readonly [Delivery, Delivery] | undefined;
      const sent: Promise<void>[] = [];
      duplicateRequests(client, (r) => (r.commandName === "PutItemCommand" ? { lagMs: 5, answer } : undefined), (_, deliveries) => (heard = deliveries), (p) => sent.push(p));
      const put = new PutItemCommand({ TableName: lockTable(), Item: { pk: { S: `duplicate-${randomUUID()}` } }, ConditionExpression: "attribute_not_exists(pk)" });
      // Exactly one copy applies (either: they race); the caller hears copy `answer`.
      const outcome = await client.send(put).then(
        () => "applied",
        (err: unknown) => (err instanceof ConditionalCheckFailedException ? "condition failed" : String(err)),
      );
      expect(sent).toHaveLength(1);
      await sent[0];
      expect(heard?.filter((d) => d.ok)).toHaveLength(1);
      expect(outcome).toBe(heard?.[answer]?.ok ? "applied" : "condition failed");
      client.destroy();
    }
  });
});
