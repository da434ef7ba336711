/** The coordination service on the local cloud: keys and revisions, sessions and ephemeral keys, watches, groups, assignments. */
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Coordination } from "../../lib/coordination/coordination.js";
import { CompactedError, RevisionMismatchError, SessionExpiredError } from "../../lib/errors.js";
import { injectFaults, type RequestInfo } from "../../lib/check/middleware.js";
import { shareOf } from "../../lib/coordination/assignment.js";
import type { Session } from "../../lib/coordination/session.js";
import { itemKeys } from "../../lib/coordination/store.js";
import { coordinationTable, dynamoDbClient } from "../support/cloud.js";

const until = async (check: () => Promise<boolean> | boolean, timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
};

const client = (options: { namespace?: string; dynamodb?: ReturnType<typeof dynamoDbClient> } = {}) =>
  new Coordination({ tableName: coordinationTable(), dynamodb: options.dynamodb ?? dynamoDbClient(), namespace: options.namespace ?? `ns-${randomUUID().slice(0, 8)}` });

describe("keys and revisions", () => {
  it("puts, gets, compares-and-sets and deletes, one revision per change", async () => {
    const coord = client();
    const a = await coord.put("config/a", { x: 1 });
    expect(a.revision).toBe(1);
    expect(await coord.get("config/a")).toMatchObject({ value: { x: 1 }, revision: 1, createRevision: 1, version: 1 });
    const b = await coord.put("config/a", { x: 2 });
    expect(b.revision).toBe(2);
    expect(await coord.compareAndSet("config/a", 1, { x: 3 })).toMatchObject({ ok: false, current: { revision: 2 } });
    expect(await coord.compareAndSet("config/a", 2, { x: 3 })).toEqual({ ok: true, revision: 3 });
    await expect(coord.put("config/b", 1, { ifRevision: 7 })).rejects.toBeInstanceOf(RevisionMismatchError);
    expect(await coord.put("config/b", 1, { ifRevision: 0 })).toEqual({ revision: 4 });
    expect(await coord.list("config/")).toMatchObject({ revision: 4, entries: [{ key: "config/a", value: { x: 3 }, version: 3 }, { key: "config/b" }] });
    expect(await coord.delete("config/a")).toEqual({ deleted: true, revision: 5 });
    expect(await coord.delete("config/a")).toEqual({ deleted: false });
    expect(await coord.revision()).toBe(5);
  });

  it("applies a put whose response was lost exactly once", async () => {
    const dynamodb = dynamoDbClient({ maxAttempts: 1 });
    let lose = true;
    injectFaults(dynamodb, (r) => (lose && r.commandName === "TransactWriteItemsCommand" ? ((lose = false), { kind: "lose-response" }) : undefined));
    const coord = client({ dynamodb });
    expect(await coord.put("k", "v")).toEqual({ revision: 1 });
    expect(await coord.revision()).toBe(1);
    expect((await coord.get("k"))?.version).toBe(1);
  });

  it("gives concurrent writers consecutive revisions, none lost", async () => {
    const ns = `ns-${randomUUID().slice(0, 8)}`;
    const writers = Array.from({ length: 4 }, () => client({ namespace: ns }));
    const revisions = (await Promise.all(writers.flatMap((w, i) => Array.from({ length: 5 }, (_, j) => w.put(`k${i}-${j}`, j))))).map((r) => r.revision);
    expect(revisions.sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });
});

describe("sessions", () => {
  it("ephemeral keys vanish, as recorded changes, when their session closes", async () => {
    const coord = client();
    const session = await coord.openSession({ ttlMs: 3000 });
    await coord.put("svc/a", "10.0.0.1", { session });
    await coord.put("svc/b", "10.0.0.2");
    expect(await session.close()).toBe(true);
    expect((await coord.list("svc/")).entries.map((e) => e.key)).toEqual(["svc/b"]);
    const events = [];
    for await (const event of coord.watch("svc/", { fromRevision: 1 })) {
      events.push(event);
      if (events.length === 3) break;
    }
    expect(events.map((e) => [e.type, e.key, e.cause])).toEqual([
      ["put", "svc/a", "request"],
      ["put", "svc/b", "request"],
      ["delete", "svc/a", "session-closed"],
    ]);
    await expect(coord.put("svc/c", 1, { session })).rejects.toBeInstanceOf(SessionExpiredError);
  });

  it("opens a session whose first answer was lost (regression: the SDK's retry met its own item and failed)", async () => {
    const dynamodb = dynamoDbClient(); // the SDK retries the lost attempt itself
    let lose = true;
    injectFaults(dynamodb, (r) => (lose && r.commandName === "PutItemCommand" ? ((lose = false), { kind: "lose-response" }) : undefined));
    const coord = client({ dynamodb });
    const session = await coord.openSession({ ttlMs: 3000 });
    expect(lose).toBe(false);
    expect((await coord.store.listSessions(coord.namespace)).map((s) => [s.id, s.state])).toEqual([[session.id, "live"]]);
    expect(await session.close()).toBe(true);
  });

  it("closes and expires sessions that hold no keys (regression: their end was an invalid request)", async () => {
    const ns = `ns-${randomUUID().slice(0, 8)}`;
    const coord = client({ namespace: ns });
    const closing = await coord.openSession({ ttlMs: 3000 });
    expect(await closing.close()).toBe(true);
    expect((await coord.store.getSession(ns, closing.id))?.state).toBe("closed");
    const dynamodb = dynamoDbClient({ maxAttempts: 1 });
    let cut = false;
    injectFaults(dynamodb, () => (cut ? { kind: "lose-request" } : undefined));
    const silent = await client({ namespace: ns, dynamodb }).openSession({ ttlMs: 1000 });
    cut = true;
    const { SessionReaper } = await import("../../lib/coordination/reaper.js");
    const { systemClock } = await import("../../lib/locks/clock.js");
    const reaper = new SessionReaper(coord.store, ns, systemClock);
    await until(async () => (await reaper.pass()).includes(silent.id));
    expect((await coord.store.getSession(ns, silent.id))?.state).toBe("expired");
  });

  it("an observer expires a session that stopped its keepalives, and the owner's signal aborted first", async () => {
    const ns = `ns-${randomUUID().slice(0, 8)}`;
    const dynamodb = dynamoDbClient({ maxAttempts: 1 });
    let cut = false;
    injectFaults(dynamodb, () => (cut ? { kind: "lose-request" } : undefined));
    const owner = client({ namespace: ns, dynamodb });
    const observer = client({ namespace: ns });
    const session = await owner.openSession({ ttlMs: 1500 });
    await owner.put("eph", 1, { session });
    let abortedAt: number | undefined;
    session.signal.addEventListener("abort", () => (abortedAt = Date.now()));
    cut = true; // the owner is partitioned away
    const { SessionReaper } = await import("../../lib/coordination/reaper.js");
    const { systemClock } = await import("../../lib/locks/clock.js");
    const reaper = new SessionReaper(observer.store, ns, systemClock);
    let expiredAt: number | undefined;
    await until(async () => {
      if ((await reaper.pass()).includes(session.id)) expiredAt = Date.now();
      // The stack's scheduled reaper (functions/coordination-reaper.ts, every minute) may have expired it first.
      else if ((await observer.store.getSession(ns, session.id))?.state === "expired") expiredAt = Date.now();
      return expiredAt !== undefined;
    });
    expect(abortedAt).toBeDefined();
    expect(abortedAt!).toBeLessThanOrEqual(expiredAt!);
    expect(session.signal.reason).toBeInstanceOf(SessionExpiredError);
    expect(await observer.get("eph")).toBeUndefined();
    cut = false;
    await expect(owner.put("eph", 2, { session })).rejects.toBeInstanceOf(SessionExpiredError);
  });
});

describe("watches", () => {
  it("resumes from any revision, in order, and says when changes are gone", async () => {
    const coord = client();
    for (let i = 1; i <= 5; i++) await coord.put(`w/${i}`, i);
    await coord.put("other", 0);
    const seen: number[] = [];
    const stop = new AbortController();
    for await (const event of coord.watch("w/", { fromRevision: 3, signal: stop.signal })) {
      seen.push(event.revision);
      if (seen.length === 3) stop.abort();
    }
    expect(seen).toEqual([3, 4, 5]);
    // Negative control: a log with a revision missing (as after retention) is refused, not skipped.
    const { itemKeys } = await import("../../lib/coordination/store.js");
    const { DeleteItemCommand } = await import("@aws-sdk/client-dynamodb");
    await dynamoDbClient().send(new DeleteItemCommand({ TableName: coordinationTable(), Key: itemKeys.change(coord.namespace, 2) }));
    const watch = coord.watch("w/", { fromRevision: 1 });
    await expect((async () => { for await (const _ of watch) void _; })()).rejects.toBeInstanceOf(CompactedError);
  });
});

describe("groups", () => {
  it("every observer sees the same views; a closed member leaves", async () => {
    const ns = `ns-${randomUUID().slice(0, 8)}`;
    const a = client({ namespace: ns });
    const b = client({ namespace: ns });
    const stop = new AbortController();
    const seen: number[][] = [[], []];
    const observers = [a, b].map(async (c, i) => {
      for await (const view of c.group("workers").views({ signal: stop.signal, pollMs: 20 })) seen[i]!.push(view.epoch * 10 + view.members.length);
    });
    const s1 = await a.openSession({ ttlMs: 3000 });
    const s2 = await b.openSession({ ttlMs: 3000 });
    await a.group("workers").join(s1, { meta: { address: "10.0.0.1" } });
    await b.group("workers").join(s2, { meta: { address: "10.0.0.2" } });
    expect((await a.group("workers").view()).members.map((m) => m.meta)).toEqual(expect.arrayContaining([{ address: "10.0.0.1" }, { address: "10.0.0.2" }]));
    await s1.close();
    await until(() => seen.every((s) => s.at(-1) === 31));
    stop.abort();
    await Promise.all(observers);
    // Each observer's views are a contiguous part of one sequence (they may start at different views).
    const [longer, shorter] = seen[0]!.length >= seen[1]!.length ? [seen[0]!, seen[1]!] : [seen[1]!, seen[0]!];
    expect(longer.slice(longer.length - shorter.length)).toEqual(shorter);
    expect(longer.map((v) => Math.floor(v / 10))).toEqual(longer.map((_, i) => Math.floor(longer[0]! / 10) + i));
    await s2.close();
  });

  it("keeps assigning through a spell of throttling (regression: the first error the SDK's retries did not absorb ended the assignments)", async () => {
    const ns = `ns-${randomUUID().slice(0, 8)}`;
    const dynamodb = dynamoDbClient({ maxAttempts: 1 }); // every throttle reaches the caller
    let throttled = 0;
    let throttling = false;
    injectFaults(dynamodb, (r) => (throttling && r.commandName !== "UpdateItemCommand" ? (throttled++, { kind: "throttle" }) : undefined)); // keepalives still go through
    const a = client({ namespace: ns, dynamodb });
    const b = client({ namespace: ns });
    const session = await a.openSession({ ttlMs: 5000 });
    const stop = new AbortController();
    const epochs: number[] = [];
    let owned = 0;
    const run = (async () => {
      for await (const assignment of a.group("jobs").assignments(session, { partitions: 4, signal: stop.signal, pollMs: 20 })) {
        epochs.push(assignment.epoch);
        owned = assignment.partitions.length;
      }
    })();
    await until(() => owned === 4);
    throttling = true;
    await until(() => throttled > 20); // several looks failed past the SDK's retries
    throttling = false;
    const other = await b.openSession({ ttlMs: 5000 });
    await b.group("jobs").join(other);
    await until(() => epochs.at(-1) === 2); // still running: it saw the join
    stop.abort();
    await run;
    await other.close();
    await session.close();
  });

  it("joins through a spell of 5xx before assigning (regression: a join that could not be confirmed ended the assignments)", async () => {
    const dynamodb = dynamoDbClient({ maxAttempts: 1 });
    let failures = 4; // a commit gives up (OutcomeUnknownError) after four unanswered attempts
    injectFaults(dynamodb, (r) => (failures > 0 && r.commandName === "TransactWriteItemsCommand" ? (failures--, { kind: "server-error" }) : undefined));
    const coord = client({ dynamodb });
    const session = await coord.openSession({ ttlMs: 5000 });
    const stop = new AbortController();
    for await (const assignment of coord.group("jobs").assignments(session, { partitions: 2, signal: stop.signal, pollMs: 20 })) {
      if (assignment.partitions.length === 2) stop.abort();
    }
    expect(failures).toBe(0);
    await session.close();
  });

  /** Two sessions of one namespace, the second with a non-empty share of `partitions` beside the first. */
  const pair = async (partitions: number, dynamodb: ReturnType<typeof dynamoDbClient>) => {
    const ns = `ns-${randomUUID().slice(0, 8)}`;
    const [a, b] = [client({ namespace: ns, dynamodb }), client({ namespace: ns })];
    const sa = await a.openSession({ ttlMs: 5000 });
    let sb = await b.openSession({ ttlMs: 5000 });
    while (shareOf(sb.id, [sa.id, sb.id], partitions).length === 0) sb = await b.openSession({ ttlMs: 5000 });
    return { ns, a, b, sa, sb, shareB: shareOf(sb.id, [sa.id, sb.id], partitions) };
  };
  /** Runs a member's assignments in the background; `owned()` is its latest share. */
  const member = (c: Coordination, s: Session, partitions: number, stop: AbortSignal) => {
    let grants: readonly { id: number; fencingToken: number }[] = [];
    const done = (async () => {
      for await (const a of c.group("jobs").assignments(s, { partitions, signal: stop, pollMs: 20 })) grants = a.partitions;
    })();
    return { owned: () => grants.map((g) => g.id), token: (p: number) => grants.find((g) => g.id === p)?.fencingToken, done };
  };
  const isPartitionWrite = (r: RequestInfo, command: string) => r.commandName === command && JSON.stringify(r.input).includes('"partitions#');

  it("releases a partition whose release failed once it no longer wants it (regression: it stayed with a live member that had forgotten it)", async () => {
    const dynamodb = dynamoDbClient({ maxAttempts: 1 });
    let failReleases = false;
    let failed = 0;
    injectFaults(dynamodb, (r) => (failReleases && isPartitionWrite(r, "UpdateItemCommand") ? (failed++, { kind: "throttle" }) : undefined));
    const { a, b, sa, sb, shareB } = await pair(8, dynamodb);
    const stop = new AbortController();
    const ma = member(a, sa, 8, stop.signal);
    await until(() => ma.owned().length === 8);
    failReleases = true;
    const mb = member(b, sb, 8, stop.signal);
    await until(() => failed > 0); // it gave up B's share, and its release failed
    failReleases = false;
    await until(() => mb.owned().length === shareB.length);
    stop.abort();
    await Promise.all([ma.done, mb.done]);
    await Promise.all([sa.close(), sb.close()]);
  });

  it("releases a grant that landed late, after its member stopped wanting the partition (regression: nobody could take it while that member lived)", async () => {
    const dynamodb = dynamoDbClient({ maxAttempts: 1 });
    const { ns, a, b, sa, sb, shareB } = await pair(8, dynamodb);
    const target = shareB[0]!;
    const grantsOfTarget = (r: RequestInfo) => r.commandName === "TransactWriteItemsCommand" && JSON.stringify(r.input).includes(`"${itemKeys.partition(ns, "jobs", target).sk.S}"`) && JSON.stringify(r.input).includes('"partitions#');
    let late: Promise<void> | undefined;
    let sent = 0;
    let joined = false;
    // A's first grant of `target` reaches DynamoDB a second late (A heard a timeout); its later ones are throttled until B has joined.
    injectFaults(
      dynamodb,
      (r) => (grantsOfTarget(r) && !joined ? (sent++ === 0 ? { kind: "late-delivery", delayMs: 1000 } : { kind: "throttle" }) : undefined),
      undefined,
      (delivery) => (late = delivery),
    );
    const stop = new AbortController();
    const ma = member(a, sa, 8, stop.signal);
    await until(() => late !== undefined);
    await b.group("jobs").join(sb); // now A no longer wants `target`
    joined = true;
    await late; // and only now does A's grant land: token 1, for a member that does not know it owns it
    const mb = member(b, sb, 8, stop.signal);
    await until(() => mb.owned().includes(target));
    expect(mb.token(target)).toBe(2); // B's grant came after A's late one (and A's release of it)
    expect(ma.owned()).not.toContain(target);
    stop.abort();
    await Promise.all([ma.done, mb.done]);
    await Promise.all([sa.close(), sb.close()]);
  });

  it("assigns partitions to live members with increasing fencing tokens, moving them when a member leaves", async () => {
    const ns = `ns-${randomUUID().slice(0, 8)}`;
    const [a, b] = [client({ namespace: ns }), client({ namespace: ns })];
    const [s1, s2] = [await a.openSession({ ttlMs: 3000 }), await b.openSession({ ttlMs: 3000 })];
    const latest = new Map<string, { partitions: readonly { id: number; fencingToken: number }[] }>();
    const stopA = new AbortController();
    const stopB = new AbortController();
    const run = async (c: Coordination, s: typeof s1, stop: AbortController) => {
      for await (const assignment of c.group("jobs").assignments(s, { partitions: 8, signal: stop.signal, pollMs: 50 })) latest.set(s.id, assignment);
    };
    const runs = [run(a, s1, stopA), run(b, s2, stopB)];
    await until(() => (latest.get(s1.id)?.partitions.length ?? 0) + (latest.get(s2.id)?.partitions.length ?? 0) === 8 && (latest.get(s1.id)?.partitions.length ?? 0) > 0 && (latest.get(s2.id)?.partitions.length ?? 0) > 0);
    const owners = new Map<number, string>();
    for (const [id, assignment] of latest) for (const p of assignment.partitions) {
      expect(owners.has(p.id)).toBe(false);
      owners.set(p.id, id);
    }
    const tokensBefore = new Map(latest.get(s1.id)!.partitions.map((p) => [p.id, p.fencingToken]));
    stopA.abort();
    await runs[0];
    await s1.close();
    await until(() => latest.get(s2.id)?.partitions.length === 8);
    for (const p of latest.get(s2.id)!.partitions) if (tokensBefore.has(p.id)) expect(p.fencingToken).toBeGreaterThan(tokensBefore.get(p.id)!);
    stopB.abort();
    await runs[1];
    await s2.close();
  });
});

describe("review regressions", () => {
  it("closes and expires sessions that never had an ephemeral key", async () => {
    const ns = `ns-${randomUUID().slice(0, 8)}`;
    const coord = client({ namespace: ns });
    const closing = await coord.openSession({ ttlMs: 2000 });
    expect(await closing.close()).toBe(true);
    const { SessionReaper } = await import("../../lib/coordination/reaper.js");
    const { systemClock } = await import("../../lib/locks/clock.js");
    // A keyless session whose owner is gone (only its item), as an interrupted openSession leaves.
    await coord.store.openSession(ns, "orphan", 1000, "v1", "nobody");
    const reaper = new SessionReaper(coord.store, ns, systemClock);
    await until(async () => (await reaper.pass()).includes("orphan"));
    expect((await coord.store.getSession(ns, "orphan"))?.state).toBe("expired");
  });

  it("finishes deleting the keys of a session whose ender stopped after ending it", async () => {
    const ns = `ns-${randomUUID().slice(0, 8)}`;
    const coord = client({ namespace: ns });
    const session = await coord.openSession({ ttlMs: 5000 });
    await coord.put("eph/1", 1, { session });
    // The ender read no keys (a put raced it, or it crashed after the end): the session ends, its key stays.
    await coord.store.commit(ns, [], { end: { session: session.id, state: "closed" } });
    expect(await coord.get("eph/1")).toBeDefined();
    const { SessionReaper } = await import("../../lib/coordination/reaper.js");
    const { systemClock } = await import("../../lib/locks/clock.js");
    await new SessionReaper(coord.store, ns, systemClock).pass();
    expect(await coord.get("eph/1")).toBeUndefined();
    expect((await coord.store.getSession(ns, session.id))?.keys).toEqual([]);
  });

  it("opens a session whose put answer was lost", async () => {
    const dynamodb = dynamoDbClient();
    let lose = true;
    injectFaults(dynamodb, (r) => (lose && r.commandName === "PutItemCommand" ? ((lose = false), { kind: "lose-response" }) : undefined));
    const coord = client({ dynamodb });
    const session = await coord.openSession({ ttlMs: 3000 });
    expect(session.live).toBe(true);
    await session.close();
  });

  it("gives a member that joins later its share: the old owner releases with the token it holds", async () => {
    const ns = `ns-${randomUUID().slice(0, 8)}`;
    const [a, b] = [client({ namespace: ns }), client({ namespace: ns })];
    const s1 = await a.openSession({ ttlMs: 3000 });
    const latest = new Map<string, number>();
    const stop = new AbortController();
    const run = async (c: Coordination, s: typeof s1) => {
      for await (const assignment of c.group("late").assignments(s, { partitions: 8, signal: stop.signal, pollMs: 50 })) latest.set(s.id, assignment.partitions.length);
    };
    const first = run(a, s1);
    await until(() => latest.get(s1.id) === 8);
    const s2 = await b.openSession({ ttlMs: 3000 });
    const second = run(b, s2);
    await until(() => (latest.get(s2.id) ?? 0) > 0 && latest.get(s1.id)! + latest.get(s2.id)! === 8);
    stop.abort();
    await Promise.all([first, second]);
    await Promise.all([s1.close(), s2.close()]);
  });
});
