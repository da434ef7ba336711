/**
 * Lamport timestamps (DDIA ch. 9, "Lamport timestamps"): a timestamp is a pair
 * `(counter, nodeId)`; every node and client keeps the largest counter it has seen and
 * carries it on every request and message.
 *
 * Guarantees: if event a happened before event b (same process, or linked by a chain of
 * sends and receives that each stamped and observed), then `compare(a, b) < 0`; `compare`
 * is a total order on all timestamps, and the `format` strings sort the same way.
 * Assumes: each clock has a node id no other live clock uses (two clocks sharing one may
 * mint equal timestamps), and every receive is passed to `observe`.
 *
 * When to use it: to order events across nodes causally without any coordination (no
 * request, no shared item: a counter in memory), to stamp broadcast messages so that a
 * consumer's own later writes are ordered after what it consumed, to merge logs of several
 * nodes in an order that respects cause and effect, or as a last-writer-wins version.
 *
 * When only total order will do: a decision that must be right *now*, such as a uniqueness
 * constraint ("the first to claim a username gets it"). Lamport order is only known after
 * the fact: a node holding the timestamp `3@a` cannot tell whether some other node already
 * made `2@b` for the same username and simply has not told anyone yet. Deciding needs a
 * linearizable write that every contender goes through, which is what `Claims` (a
 * conditional write on one item) and `Broadcast` (total order broadcast: everyone delivers
 * the same sequence, so "first in the stream" is a decision) give. Nor does the order say
 * which of two concurrent events came first in real time, or whether two events are
 * concurrent at all (that takes vector clocks).
 */
import { InvalidArgumentError } from "../errors.js";
import { validateName } from "../internal/validation.js";

/**
 * A Lamport timestamp: `counter` first, then the node that made it (the tie-breaker that
 * makes the order total). As JSON it is itself: `{ "counter": 42, "node": "node-a" }`.
 */
export interface LamportTimestamp {
  /** A non-negative safe integer: the largest counter the node had seen, plus one. */
  readonly counter: number;
  /** The id of the clock that made it. */
  readonly node: string;
}

/** Digits of the largest safe integer (Number.MAX_SAFE_INTEGER): the width `format` pads counters to. */
const COUNTER_DIGITS = String(Number.MAX_SAFE_INTEGER).length;

/**
 * LamportClock: one node's (or one client's) Lamport clock, a counter in memory.
 *
 * - `tick()` before a local event or a send: the counter goes up by one, and the event
 *   (or the message) carries the timestamp it returns.
 * - `observe(ts)` on every receive, with the timestamp the message or response carried:
 *   the counter becomes `max(counter, ts.counter) + 1`, so whatever this node does next is
 *   ordered after what it received.
 * - `peek()` (or `current`) reads without moving the clock.
 *
 * Costs no request and needs no coordination: that is its point, and its limit (see the
 * module's header: Lamport order is learned after the fact; a uniqueness decision needs
 * `Claims` or `Broadcast`). A clock that restarts from a lower counter can mint a stamp it
 * already made and order its new events before its old ones: where that matters, persist
 * `current` and pass it back as `initial`.
 *
 * With `Broadcast`, pass the stamp per message (`publish(stream, payload, { lamport:
 * clock.tick() })`) or give the client the clock (`new Broadcast({ ..., clock })`) to stamp
 * every message; consumers call `clock.observe(delivery.lamport)`.
 */
export class LamportClock {
  /** This clock's node id: the second half of every timestamp it makes. */
  readonly nodeId: string;
  #counter: number;

  /**
   * @param nodeId unique among the clocks whose timestamps are compared (a host and
   *   process id, a Lambda's log stream, a random UUID per process); a Fencepost name (see
   *   InvalidArgumentError).
   * @param initial the counter to start from, for instance the `current` a previous run
   *   of this node persisted. @default 0
   */
  constructor(nodeId: string, initial = 0) {
    validateName("nodeId", nodeId);
    validateCounter("initial", initial);
    this.nodeId = nodeId;
    this.#counter = initial;
  }

  /** The largest counter this clock has made or seen. */
  get current(): number {
    return this.#counter;
  }

  /** The clock's timestamp now, without moving it (a local event needs `tick`). */
  peek(): LamportTimestamp {
    return { counter: this.#counter, node: this.nodeId };
  }

  /** Moves the clock on by one and returns the new timestamp: for a local event, or to stamp a message to send. */
  tick(): LamportTimestamp {
    return this.#advanceTo(this.#counter);
  }

  /**
   * A receive: the clock moves past both itself and `ts` (`max(current, ts.counter) + 1`)
   * and the receive event's timestamp is returned, greater than `ts` and than every earlier
   * timestamp of this clock. `undefined` (a message that carried no stamp) is a receive
   * that brings no news: the same as `tick()`. Throws InvalidArgumentError on a malformed
   * timestamp, before the clock moves.
   */
  observe(ts: LamportTimestamp | undefined): LamportTimestamp {
    if (ts === undefined) return this.tick();
    validateTimestamp("ts", ts);
    return this.#advanceTo(Math.max(this.#counter, ts.counter));
  }

  #advanceTo(seen: number): LamportTimestamp {
    const next = seen + 1;
    if (!Number.isSafeInteger(next)) throw new InvalidArgumentError("counter", `of clock '${this.nodeId}' would pass Number.MAX_SAFE_INTEGER: a timestamp it observed was corrupt`);
    this.#counter = next;
    return { counter: next, node: this.nodeId };
  }

  /**
   * The total order of Lamport timestamps: by counter, then by node id (in Unicode code
   * point order, which is also UTF-8 byte order). Negative if `a` comes first, positive if
   * `b` does, 0 only for equal timestamps. Consistent with causality: if a happened before
   * b, `compare(a, b) < 0` (the converse does not hold). Usable as an `Array.sort` comparator.
   */
  static compare(this: void, a: LamportTimestamp, b: LamportTimestamp): number {
    if (a.counter !== b.counter) return a.counter < b.counter ? -1 : 1;
    return compareCodePoints(a.node, b.node);
  }

  /**
   * The timestamp as a string: `<counter>@<node>`, the counter zero-padded to 16 digits
   * (`"0000000000000042@node-a"`), so that these strings sort like `compare` when compared
   * by UTF-8 bytes or code points (DynamoDB sort keys, `Buffer.compare`, most languages'
   * string order). JavaScript's `<` and default `sort` agree too unless node ids mix
   * characters above U+FFFF with characters from U+E000 to U+FFFF.
   */
  static format(ts: LamportTimestamp): string {
    validateTimestamp("ts", ts);
    return `${String(ts.counter).padStart(COUNTER_DIGITS, "0")}@${ts.node}`;
  }

  /**
   * Reads `format`'s string (or the unpadded `"42@node-a"`): the counter is the digits
   * before the first `@`, the node everything after it. InvalidArgumentError otherwise.
   */
  static parse(text: string): LamportTimestamp {
    const match = typeof text === "string" ? /^(\d+)@(.*)$/su.exec(text) : null;
    if (!match) throw new InvalidArgumentError("text", `must be a Lamport timestamp such as "42@node-a", got ${JSON.stringify(text)}`);
    const ts = { counter: Number(match[1]), node: match[2]! };
    validateTimestamp("text", ts);
    return ts;
  }
}

/** Checks a timestamp from outside (an option, a message): a safe non-negative integer counter and a valid node name. */
export function validateTimestamp(field: string, ts: unknown): asserts ts is LamportTimestamp {
  if (typeof ts !== "object" || ts === null) throw new InvalidArgumentError(field, "must be a Lamport timestamp { counter, node }");
  const { counter, node } = ts as Record<string, unknown>;
  validateCounter(`${field}.counter`, counter);
  validateName(`${field}.node`, node);
}

function validateCounter(field: string, counter: unknown): asserts counter is number {
  if (typeof counter !== "number" || !Number.isSafeInteger(counter) || counter < 0) {
    throw new InvalidArgumentError(field, `must be a non-negative safe integer, got ${String(counter)}`);
  }
}

/**
 * Compares two well-formed strings by Unicode code point (the order of their UTF-8
 * bytes), not by UTF-16 code unit as `<` does: at the first differing code unit, a
 * surrogate (part of a code point above U+FFFF) ranks above every BMP character.
 */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return rank(x) - rank(y);
  }
  return Math.sign(a.length - b.length);
}

/** A code unit's place in code point order: surrogates (0xD800–0xDFFF) move above 0xFFFF's neighbours. */
function rank(unit: number): number {
  if (unit < 0xd800) return unit;
  return unit >= 0xe000 ? unit - 0x800 : unit + 0x2000;
}
