/**
 * The coordination workload's checks on hand-made observations: each passes a correct
 * run and names the broken one (the checks' own negative controls, without a cloud).
 */
import { describe, expect, it } from "vitest";
import { ephemeralAnomalies, viewAnomalies, watchAnomalies, type LoggedChange, type SeenView, type WatchedEvent, type WatcherRecord } from "../../lib/check/coordination-invariants.js";
import { checkLinearizability } from "../../lib/check/linearizability.js";
import { kvRegister } from "../../lib/check/models.js";
import type { Operation } from "../../lib/check/history.js";

const M = "_fencepost/groups/g/members/";
const change = (revision: number, type: "put" | "delete", key: string, extra: Partial<LoggedChange> = {}): LoggedChange => ({
  revision,
  type,
  key,
  value: type === "put" ? JSON.stringify(`v${revision}`) : undefined,
  session: undefined,
  cause: "request",
  epoch: undefined,
  ...extra,
});
const kinds = (anomalies: readonly { kind: string }[]) => [...new Set(anomalies.map((a) => a.kind))].sort();

describe("view agreement", () => {
  const log = [change(1, "put", `${M}a`, { epoch: 1 }), change(2, "put", `${M}b`, { epoch: 2 }), change(3, "delete", `${M}a`, { epoch: 3, cause: "session-expired" })];
  const view = (observer: string, epoch: number, members: string[]): SeenView => ({ observer, epoch, members, at: epoch });

  it("passes observers that see contiguous parts of the log's one sequence", () => {
    const runs = [
      { observer: "o1", views: [view("o1", 0, []), view("o1", 1, ["a"]), view("o1", 2, ["a", "b"])] },
      { observer: "o2", views: [view("o2", 2, ["b", "a"]), view("o2", 3, ["b"])] },
    ];
    expect(viewAnomalies("g", M, log, runs, [view("member", 3, ["b"])])).toEqual([]);
  });

  it("names two membership changes that took one epoch, a view unlike the log's, and a skipped epoch", () => {
    const forked = [change(1, "put", `${M}a`, { epoch: 1 }), change(2, "put", `${M}b`, { epoch: 1 })];
    expect(kinds(viewAnomalies("g", M, forked, [], []))).toEqual(["epoch-repeated"]);
    const runs = [{ observer: "o1", views: [view("o1", 1, ["a"]), view("o1", 3, ["b"])] }];
    expect(kinds(viewAnomalies("g", M, log, runs, [view("o2", 2, ["b"])]))).toEqual(["view-disagreement", "view-sequence-gap"]);
  });
});

describe("watch completeness", () => {
  const log = [change(1, "put", "kv/a"), change(2, "put", "x"), change(3, "put", "kv/b"), change(4, "delete", "kv/a")];
  const final = new Map([["x", JSON.stringify("v2")], ["kv/b", JSON.stringify("v3")]]);
  const event = (c: LoggedChange): WatchedEvent => ({ revision: c.revision, type: c.type, key: c.key, value: c.value, session: c.session, cause: c.cause, at: c.revision });
  const watcher = (events: WatchedEvent[], extra: Partial<WatcherRecord> = {}): WatcherRecord => ({ watcher: "w", prefix: "kv/", from: 1, snapshot: new Map(), events, caughtUp: true, ...extra });

  it("passes a watcher that saw every change under its prefix once, in order", () => {
    expect(watchAnomalies(log, final, [watcher([log[0]!, log[2]!, log[3]!].map(event))])).toEqual([]);
    // From a snapshot at revision 2: the rest replays to the final state.
    expect(watchAnomalies(log, final, [watcher([log[2]!, log[3]!].map(event), { from: 3, snapshot: new Map([["kv/a", JSON.stringify("v1")]]) })])).toEqual([]);
  });

  it("names a skipped change, a repeated one, an altered one and a watcher that never caught up", () => {
    expect(kinds(watchAnomalies(log, final, [watcher([log[0]!, log[3]!].map(event))]))).toEqual(["watch-gap", "watch-replay"]);
    expect(kinds(watchAnomalies(log, final, [watcher([log[0]!, log[2]!, log[2]!, log[3]!].map(event))]))).toEqual(["watch-duplicate"]);
    expect(kinds(watchAnomalies(log, final, [watcher([log[2]!, log[0]!, log[3]!].map(event))]))).toEqual(["watch-order"]);
    expect(kinds(watchAnomalies(log, final, [watcher([event(log[0]!), { ...event(log[2]!), value: "\"other\"" }, event(log[3]!)])]))).toEqual(["watch-mismatch", "watch-replay"]);
    expect(kinds(watchAnomalies(log, final, [watcher([event(log[0]!)], { caughtUp: false })]))).toEqual(["watch-stalled"]);
    expect(kinds(watchAnomalies([log[0]!, log[2]!], final, []))).toEqual(["log-gap"]);
  });
});

describe("ephemeral keys", () => {
  const sessions = [{ id: "s1", process: "w0", start: 0, end: 100 }];
  const removal: WatchedEvent = { revision: 9, type: "delete", key: "eph/s1/0", value: undefined, session: "s1", cause: "session-expired", at: 150 };

  it("passes keys removed after their owner stopped believing, and nothing left behind", () => {
    expect(ephemeralAnomalies([{ key: "kv/a", session: undefined }], [], sessions, [removal], [{ process: "w0", session: "s1", key: "eph/s1/0", present: true, liveThroughout: true }])).toEqual([]);
  });

  it("names a key removed while its session was believed live, a key left behind, a live session, and an owner's missing key", () => {
    const anomalies = ephemeralAnomalies([{ key: "eph/s2/0", session: "s2" }], ["s3"], sessions, [{ ...removal, at: 50 }], [{ process: "w0", session: "s1", key: "eph/s1/0", present: false, liveThroughout: true }]);
    expect(kinds(anomalies)).toEqual(["ephemeral-left", "live-session-key-removed", "own-key-missing", "session-not-ended"]);
  });
});

describe("the key-value register model", () => {
  let id = 0;
  const op = (f: string, input: object, output: unknown, invokedAt: number, completedAt: number, outcome: Operation["outcome"] = "ok"): Operation => ({ id: id++, process: "p", key: "kv/a", f, input, output, outcome, invokedAt, completedAt });

  it("accepts puts, reads, compare-and-sets from a read revision and deletes in order", () => {
    const history = [
      op("put", { value: "a" }, { revision: 3 }, 0, 1),
      op("read", {}, { value: "a", revision: 3 }, 2, 3),
      op("cas", { expected: "a", expectedRevision: 3, value: "b" }, { ok: true, revision: 7 }, 4, 5),
      op("cas", { expected: "a", expectedRevision: 3, value: "c" }, { ok: false, value: "b" }, 6, 7),
      op("delete", {}, { deleted: true, revision: 9 }, 8, 9),
      op("read", {}, { value: null, revision: 0 }, 10, 11),
      op("put", { value: "d" }, undefined, 12, Infinity, "info"),
      op("read", {}, { value: "d", revision: 12 }, 13, 14),
    ];
    expect(checkLinearizability(kvRegister, history).verdict).toBe("linearizable");
  });

  it("rejects a lost update, a stale read and a revision that went back", () => {
    const lost = [op("put", { value: "a" }, { revision: 1 }, 0, 1), op("cas", { expected: "a", expectedRevision: 1, value: "b" }, { ok: true, revision: 2 }, 2, 3), op("cas", { expected: "a", expectedRevision: 1, value: "c" }, { ok: true, revision: 4 }, 4, 5)];
    expect(checkLinearizability(kvRegister, lost).verdict).toBe("not-linearizable");
    const stale = [op("put", { value: "a" }, { revision: 1 }, 0, 1), op("put", { value: "b" }, { revision: 2 }, 2, 3), op("read", {}, { value: "a", revision: 1 }, 4, 5)];
    expect(checkLinearizability(kvRegister, stale).verdict).toBe("not-linearizable");
    const back = [op("put", { value: "a" }, { revision: 5 }, 0, 1), op("put", { value: "b" }, { revision: 4 }, 2, 3)];
    expect(checkLinearizability(kvRegister, back).verdict).toBe("not-linearizable");
  });
});
