/**
 * Lamport timestamps: properties of LamportClock (fast-check), with a negative control for
 * the causality property (a clock that forgets to observe breaks it), and broadcast
 * messages carrying their stamps through the log to consumers on the local cloud, at no
 * extra request.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RequestCounter } from "../../lib/check/middleware.js";
import { Broadcast, ConsumerGroup, InvalidArgumentError, LamportClock, type Delivery, type LamportTimestamp } from "../../lib/index.js";
import { broadcastQueueUrl, dynamoDbClient, logTable, sqsClient } from "../support/cloud.js";
import { uniqueName } from "../support/locks.js";

/**
 * Node ids from a small alphabet, so that ties on the counter meet equal and prefix ids,
 * and characters whose UTF-16 order differs from their code point order (U+E000 against a
 * surrogate pair).
 */
const nodeId = fc.array(fc.constantFrom("a", "b", "-", "@", "é", "\ue000", "\uffff", "😀", "𝔸"), { minLength: 1, maxLength: 4 }).map((parts) => parts.join(""));
const counter = fc.oneof(fc.nat(5), fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER));
const timestamp: fc.Arbitrary<LamportTimestamp> = fc.record({ counter, node: nodeId });

const { compare } = LamportClock;

describe("LamportClock", () => {
  it("ticks strictly upwards, from its initial counter", () => {
    fc.assert(
      fc.property(nodeId, fc.nat(1_000_000), fc.nat(50), (node, initial, n) => {
        const clock = new LamportClock(node, initial);
        let last = clock.peek();
        expect(last).toEqual({ counter: initial, node });
        for (let i = 0; i < n; i++) {
          const next = clock.tick();
          expect(next).toEqual({ counter: last.counter + 1, node });
          expect(compare(last, next)).toBeLessThan(0);
          expect(clock.peek()).toEqual(next);
          expect(clock.current).toBe(next.counter);
          last = next;
        }
      }),
    );
  });

  it("observe returns max(local, received) + 1: after both what it had and what it received", () => {
    fc.assert(
      fc.property(nodeId, fc.nat(1000), fc.record({ counter: fc.nat(1000), node: nodeId }), (node, initial, received) => {
        const clock = new LamportClock(node, initial);
        const before = clock.peek();
        const after = clock.observe(received);
        expect(after).toEqual({ counter: Math.max(initial, received.counter) + 1, node });
        expect(compare(before, after)).toBeLessThan(0);
        expect(compare(received, after)).toBeLessThan(0);
        expect(clock.peek()).toEqual(after);
      }),
    );
  });

  it("observe(undefined) is a receive without news: one tick", () => {
    const clock = new LamportClock("a", 7);
    expect(clock.observe(undefined)).toEqual({ counter: 8, node: "a" });
  });

  it("compare is a total order: reflexive, antisymmetric, transitive, 0 only for equal timestamps", () => {
    fc.assert(
      fc.property(timestamp, timestamp, timestamp, (a, b, c) => {
        expect(compare(a, a)).toBe(0);
        expect(Math.sign(compare(a, b)) + Math.sign(compare(b, a))).toBe(0); // (a sum: toBe tells -0 from 0, for equal a and b)
        expect(compare(a, b) === 0).toBe(a.counter === b.counter && a.node === b.node);
        if (compare(a, b) <= 0 && compare(b, c) <= 0) expect(compare(a, c)).toBeLessThanOrEqual(0);
        // Counter first: a larger counter wins whatever the nodes.
        if (a.counter < b.counter) expect(compare(a, b)).toBeLessThan(0);
      }),
      { numRuns: 500 },
    );
  });

  it("orders nodes by code point, as UTF-8 bytes do (not by UTF-16 code unit)", () => {
    expect(compare({ counter: 1, node: "\ue000" }, { counter: 1, node: "😀" })).toBeLessThan(0);
    expect("\ue000" < "😀").toBe(false); // what JavaScript's < would have said
    expect(compare({ counter: 1, node: "a" }, { counter: 1, node: "ab" })).toBeLessThan(0);
  });

  it("format strings sort like compare (by UTF-8 bytes), and parse reads them back", () => {
    fc.assert(
      fc.property(timestamp, timestamp, (a, b) => {
        const [fa, fb] = [LamportClock.format(a), LamportClock.format(b)];
        expect(Math.sign(Buffer.compare(Buffer.from(fa), Buffer.from(fb)))).toBe(Math.sign(compare(a, b)));
        expect(LamportClock.parse(fa)).toEqual(a);
      }),
      { numRuns: 500 },
    );
    expect(LamportClock.format({ counter: 42, node: "node-a" })).toBe("0000000000000042@node-a");
    expect(LamportClock.parse("42@node-a@b")).toEqual({ counter: 42, node: "node-a@b" });
    // As JSON a timestamp is itself.
    expect(JSON.parse(JSON.stringify(new LamportClock("n", 3).tick()))).toEqual({ counter: 4, node: "n" });
  });

  it("refuses bad node ids, counters and timestamps with InvalidArgumentError, leaving the clock as it was", () => {
    for (const bad of ["", "a\u0000b", "\ud800"]) expect(() => new LamportClock(bad)).toThrow(InvalidArgumentError);
    for (const bad of [-1, 1.5, Number.NaN, Number.MAX_SAFE_INTEGER + 1]) expect(() => new LamportClock("a", bad)).toThrow(InvalidArgumentError);
    const clock = new LamportClock("a", 5);
    for (const bad of [{ counter: -1, node: "b" }, { counter: 1, node: "" }, { counter: "9", node: "b" }, null]) {
      expect(() => clock.observe(bad as unknown as LamportTimestamp)).toThrow(InvalidArgumentError);
    }
    expect(clock.current).toBe(5);
    for (const bad of ["", "42", "@a", "-1@a", "4.2@a", "42@", "99999999999999999@a"]) expect(() => LamportClock.parse(bad)).toThrow(InvalidArgumentError);
    // The counter cannot pass the largest safe integer (only a corrupt stamp gets it there).
    const full = new LamportClock("a");
    full.observe({ counter: Number.MAX_SAFE_INTEGER - 1, node: "b" });
    expect(() => full.tick()).toThrow(InvalidArgumentError);
    expect(full.current).toBe(Number.MAX_SAFE_INTEGER);
  });
});

/** A step of a simulated system of PROCESSES processes. */
type Step = { kind: "local"; p: number } | { kind: "send"; p: number; to: number } | { kind: "receive"; p: number; pick: number };

const PROCESSES = 4;
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant("local" as const), p: fc.nat(PROCESSES - 1) }),
  fc.record({ kind: fc.constant("send" as const), p: fc.nat(PROCESSES - 1), to: fc.nat(PROCESSES - 1) }),
  fc.record({ kind: fc.constant("receive" as const), p: fc.nat(PROCESSES - 1), pick: fc.nat() }),
);

/** How a process's clock handles a receive. */
type OnReceive = (clock: LamportClock, carried: LamportTimestamp) => LamportTimestamp;
const observing: OnReceive = (clock, carried) => clock.observe(carried);
/** NEGATIVE CONTROL: a receive that only ticks, forgetting the stamp the message carried. */
const forgetful: OnReceive = (clock) => clock.tick();

/**
 * Runs `steps` and returns the pairs of events (a, b) where a happened before b but
 * compare(a, b) >= 0. Ground truth is a vector clock per event: a happened before b iff
 * a's vector is below b's in every entry and differs somewhere (receives take messages
 * from their inbox in any order, as a network may).
 */
function causalityViolations(steps: readonly Step[], onReceive: OnReceive): [LamportTimestamp, LamportTimestamp][] {
  const clocks = Array.from({ length: PROCESSES }, (_, p) => new LamportClock(`p${p}`));
  const vectors = Array.from({ length: PROCESSES }, () => new Array<number>(PROCESSES).fill(0));
  const inboxes: { ts: LamportTimestamp; vector: number[] }[][] = Array.from({ length: PROCESSES }, () => []);
  const events: { ts: LamportTimestamp; vector: number[] }[] = [];
  for (const s of steps) {
    const vector = vectors[s.p]!;
    let ts: LamportTimestamp;
    if (s.kind === "receive") {
      const inbox = inboxes[s.p]!;
      if (inbox.length === 0) continue;
      const [message] = inbox.splice(s.pick % inbox.length, 1);
      message!.vector.forEach((v, i) => (vector[i] = Math.max(vector[i]!, v)));
      ts = onReceive(clocks[s.p]!, message!.ts);
    } else {
      ts = clocks[s.p]!.tick();
    }
    vector[s.p]!++;
    events.push({ ts, vector: [...vector] });
    if (s.kind === "send") inboxes[s.to]!.push({ ts, vector: [...vector] });
  }
  const before = (a: number[], b: number[]) => a.every((v, i) => v <= b[i]!) && a.some((v, i) => v < b[i]!);
  return events.flatMap((a) => events.filter((b) => before(a.vector, b.vector) && compare(a.ts, b.ts) >= 0).map((b): [LamportTimestamp, LamportTimestamp] => [a.ts, b.ts]));
}

describe("causality", () => {
  it("if a happened before b (program order and send/receive chains), compare(a, b) < 0", () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
        expect(causalityViolations(steps, observing)).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it("negative control: a clock that forgets to observe on receive fails the property", () => {
    const result = fc.check(
      fc.property(fc.array(step, { maxLength: 60 }), (steps) => causalityViolations(steps, forgetful).length === 0),
      { numRuns: 300 },
    );
    expect(result.failed).toBe(true);
    // And a minimal case by hand: p0 ticks twice, then sends to p1, which has seen nothing.
    const steps: Step[] = [{ kind: "local", p: 0 }, { kind: "local", p: 0 }, { kind: "send", p: 0, to: 1 }, { kind: "receive", p: 1, pick: 0 }];
    expect(causalityViolations(steps, forgetful)).toContainEqual([
      { counter: 3, node: "p0" },
      { counter: 1, node: "p1" },
    ]);
    expect(causalityViolations(steps, observing)).toEqual([]);
  });
});

describe("Lamport stamps on broadcast messages (local cloud)", () => {
  const broadcast = (options: { clock?: LamportClock; dynamodb?: ReturnType<typeof dynamoDbClient>; sqs?: ReturnType<typeof sqsClient> } = {}) =>
    new Broadcast({ tableName: logTable(), dynamodb: options.dynamodb ?? dynamoDbClient(), queueUrl: broadcastQueueUrl(), sqs: options.sqs ?? sqsClient(), clock: options.clock });

  /** Delivers the whole stream to a fresh group and returns what the handler saw. */
  async function deliver(stream: string, onDelivery: (m: Delivery<string>) => void = () => {}): Promise<Delivery<string>[]> {
    const seen: Delivery<string>[] = [];
    const consumer = new ConsumerGroup<string>({ tableName: logTable(), dynamodb: dynamoDbClient(), stream, group: uniqueName("g"), handler: (m) => void (seen.push(m), onDelivery(m)) });
    await consumer.catchUp();
    return seen;
  }

  it("a published stamp comes back on delivery, and a consumer's clock observing it moves past it", async () => {
    const stream = uniqueName("stream");
    const producer = new LamportClock("producer", 40);
    const stamp = producer.tick();
    await broadcast().publish(stream, "hello", { lamport: stamp });
    const consumerClock = new LamportClock("consumer");
    const observed: LamportTimestamp[] = [];
    const seen = await deliver(stream, (m) => void observed.push(consumerClock.observe(m.lamport)));
    expect(seen.map((m) => [m.seq, m.payload, m.lamport])).toEqual([[1, "hello", { counter: 41, node: "producer" }]]);
    expect(observed).toEqual([{ counter: 42, node: "consumer" }]);
    expect(compare(stamp, observed[0]!)).toBeLessThan(0);
    // The producer hearing back from the consumer moves past both.
    expect(compare(observed[0]!, producer.observe(consumerClock.peek()))).toBeLessThan(0);
  });

  it("a message published without a stamp is delivered without one", async () => {
    const stream = uniqueName("stream");
    await broadcast().publish(stream, "plain");
    const [delivery] = await deliver(stream);
    expect(delivery).toEqual({ stream, seq: 1, payload: "plain" });
    expect("lamport" in delivery!).toBe(false);
  });

  it("a client clock stamps each message without its own stamp, one tick each, in batch order", async () => {
    const stream = uniqueName("stream");
    const clock = new LamportClock("producer");
    const b = broadcast({ clock });
    await b.publishBatch(stream, [{ payload: "x" }, { payload: "y", lamport: { counter: 100, node: "elsewhere" } }, { payload: "z" }]);
    await b.publish(stream, "w");
    const seen = await deliver(stream);
    expect(seen.map((m) => [m.payload, m.lamport])).toEqual([
      ["x", { counter: 1, node: "producer" }],
      ["y", { counter: 100, node: "elsewhere" }],
      ["z", { counter: 2, node: "producer" }],
      ["w", { counter: 3, node: "producer" }],
    ]);
    expect(clock.current).toBe(3);
  });

  it("a duplicate publish (same dedupId) keeps the stamp of the publish that placed the message", async () => {
    const stream = uniqueName("stream");
    const b = broadcast();
    const first = await b.publish(stream, "once", { dedupId: "d", lamport: { counter: 5, node: "a" } });
    const again = await b.publish(stream, "once", { dedupId: "d", lamport: { counter: 9, node: "b" } });
    expect(again).toMatchObject({ seq: first.seq, duplicate: true });
    expect((await deliver(stream)).map((m) => m.lamport)).toEqual([{ counter: 5, node: "a" }]);
  });

  it("refuses a malformed stamp before writing anything, and a refused batch does not move the clock", async () => {
    const stream = uniqueName("stream");
    const clock = new LamportClock("producer");
    const b = broadcast({ clock });
    await expect(b.publish(stream, "x", { lamport: { counter: -1, node: "a" } })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(b.publishBatch(stream, [{ payload: "ok" }, { payload: "bad", lamport: { counter: 1, node: "" } }])).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(await b.log.head(stream)).toBe(0);
    expect(clock.current).toBe(0);
  });

  it("costs no extra request: a stamped publish sends what an unstamped one does", async () => {
    const dynamodb = dynamoDbClient();
    const sqs = sqsClient();
    const requests = new RequestCounter();
    requests.attach(dynamodb);
    requests.attach(sqs);
    const count = async (publish: (b: Broadcast, stream: string) => Promise<unknown>, clock?: LamportClock) => {
      requests.reset();
      await publish(broadcast({ dynamodb, sqs, clock }), uniqueName("stream"));
      return Object.fromEntries(requests.byCommand);
    };
    const plain = await count((b, s) => b.publish(s, "m"));
    expect(plain).toEqual({ UpdateItemCommand: 1, TransactWriteItemsCommand: 1, SendMessageBatchCommand: 1 });
    expect(await count((b, s) => b.publish(s, "m", { lamport: { counter: 1, node: "a" } }))).toEqual(plain);
    expect(await count((b, s) => b.publish(s, "m"), new LamportClock("c"))).toEqual(plain);
    const batch = (b: Broadcast, s: string) => b.publishBatch(s, Array.from({ length: 30 }, (_, i) => ({ payload: i })));
    expect(await count(batch, new LamportClock("c"))).toEqual(await count(batch));
  });
});
