/**
 * The coordination Lambda and the session reaper on the local cloud, called with
 * @aws-sdk/client-lambda as on AWS: every action works with the library's semantics;
 * bad input of every kind on every action is answered with an InvalidArgumentError
 * naming the field, and writes nothing; typed errors cross as their classes; a session
 * whose owner stops its keepalives is expired by the reaper function, its ephemeral key
 * deleted as a recorded change.
 */
import { DeleteItemCommand } from "@aws-sdk/client-dynamodb";
import type { LambdaClient } from "@aws-sdk/client-lambda";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { injectFaults } from "../../lib/check/middleware.js";
import { Coordination } from "../../lib/coordination/coordination.js";
import { COORDINATION_ACTIONS, coordinationRequestSchema, type CoordinationRequest, type CoordinationResponses } from "../../lib/coordination/protocol.js";
import { itemKeys } from "../../lib/coordination/store.js";
import { CompactedError, InvalidArgumentError, RevisionMismatchError, SessionExpiredError } from "../../lib/errors.js";
import { invokeJson } from "../../lib/internal/lambda.js";
import type { ReaperReport } from "../../lib/service/coordination-reaper.js";
import { coordinationFunction, coordinationReaperFunction, coordinationTable, dynamoDbClient, lambdaClient } from "../support/cloud.js";

let lambda: LambdaClient;
beforeAll(() => {
  lambda = lambdaClient();
});
afterAll(() => lambda.destroy());

const call = async <R extends CoordinationRequest>(request: R) => (await invokeJson(lambda, coordinationFunction(), request)) as CoordinationResponses[R["action"]];
const newNamespace = () => `fn-${randomUUID().slice(0, 8)}`;
const client = (namespace: string, dynamodb = dynamoDbClient()) => new Coordination({ tableName: coordinationTable(), dynamodb, namespace });

/** The rejection of `request`, as the caller sees it. */
async function failure(request: unknown): Promise<Error> {
  try {
    await invokeJson(lambda, coordinationFunction(), request);
  } catch (err) {
    return err as Error;
  }
  return expect.unreachable(`accepted: ${JSON.stringify(request).slice(0, 200)}`);
}

const until = async (check: () => Promise<boolean>, timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
};

describe("coordination function", () => {
  it("puts, gets, compares-and-sets, lists and deletes keys, one revision per change", async () => {
    const namespace = newNamespace();
    expect(await call({ action: "revision", namespace })).toEqual({ revision: 0 });
    expect(await call({ action: "put", namespace, key: "config/a", value: { x: 1 } })).toEqual({ revision: 1 });
    expect(await call({ action: "put", namespace, key: "config/b", value: "two", ifRevision: 0 })).toEqual({ revision: 2 });
    expect(await call({ action: "get", namespace, key: "config/a" })).toMatchObject({ key: "config/a", value: { x: 1 }, revision: 1, createRevision: 1, version: 1 });
    expect(await call({ action: "get", namespace, key: "config/none" })).toBeNull();
    expect(await call({ action: "compareAndSet", namespace, key: "config/a", expectedRevision: 7, value: 0 })).toMatchObject({ ok: false, current: { revision: 1 } });
    expect(await call({ action: "compareAndSet", namespace, key: "config/new", expectedRevision: 3, value: 0 })).toEqual({ ok: false, current: null });
    expect(await call({ action: "compareAndSet", namespace, key: "config/a", expectedRevision: 1, value: { x: 3 } })).toEqual({ ok: true, revision: 3 });
    await call({ action: "put", namespace, key: "other", value: null });
    expect(await call({ action: "list", namespace, prefix: "config/" })).toMatchObject({ revision: 4, truncated: false, entries: [{ key: "config/a", value: { x: 3 }, version: 2 }, { key: "config/b", value: "two" }] });
    expect(await call({ action: "list", namespace, limit: 2 })).toMatchObject({ revision: 4, truncated: true, entries: [{ key: "config/a" }, { key: "config/b" }] });
    expect(await call({ action: "delete", namespace, key: "config/b", ifRevision: 1 })).toEqual({ deleted: false });
    expect(await call({ action: "delete", namespace, key: "config/b", ifRevision: 2 })).toEqual({ deleted: true, revision: 5 });
    expect(await call({ action: "delete", namespace, key: "config/b" })).toEqual({ deleted: false });
    expect(await call({ action: "revision", namespace })).toEqual({ revision: 5 });
  });

  it("pages the change log: in order, from any revision, to the head, by prefix and limit", async () => {
    const namespace = newNamespace();
    for (let i = 1; i <= 5; i++) await call({ action: "put", namespace, key: `w/${i}`, value: i });
    await call({ action: "put", namespace, key: "x", value: 0 });
    await call({ action: "delete", namespace, key: "w/1" });
    const all = await call({ action: "changes", namespace, fromRevision: 0 });
    expect(all.events.map((e) => [e.type, e.key, e.revision])).toEqual([...[1, 2, 3, 4, 5].map((i) => ["put", `w/${i}`, i]), ["put", "x", 6], ["delete", "w/1", 7]]);
    expect(all).toMatchObject({ next: 8, revision: 7 });
    const first = await call({ action: "changes", namespace, fromRevision: 2, prefix: "w/", limit: 2 });
    expect(first.events.map((e) => e.revision)).toEqual([2, 3]);
    const second = await call({ action: "changes", namespace, fromRevision: first.next, prefix: "w/", limit: 2 });
    expect(second.events.map((e) => e.revision)).toEqual([4, 5]);
    const third = await call({ action: "changes", namespace, fromRevision: second.next, prefix: "w/" });
    expect(third.events.map((e) => [e.type, e.revision, e.cause])).toEqual([["delete", 7, "request"]]);
    expect(third.next).toBeGreaterThan(third.revision); // caught up
    expect(await call({ action: "changes", namespace, fromRevision: 99 })).toEqual({ events: [], next: 99, revision: 7 });
  });

  it("shows group views and sessions, which clients own; membership keys only under the groups prefix", async () => {
    const namespace = newNamespace();
    const coord = client(namespace);
    const session = await coord.openSession({ ttlMs: 5000 });
    await coord.group("workers").join(session, { meta: { address: "10.0.0.1:80" } });
    await coord.put("svc/a", "10.0.0.1", { session });
    const view = await call({ action: "view", namespace, group: "workers" });
    expect(view).toMatchObject({ epoch: 1, members: [{ id: session.id, meta: { address: "10.0.0.1:80" } }] });
    expect(await call({ action: "view", namespace, group: "nobody" })).toMatchObject({ epoch: 0, members: [] });
    const live = await call({ action: "sessions", namespace });
    expect(live.sessions).toEqual([expect.objectContaining({ id: session.id, state: "live", ttlMs: 5000, owner: coord.ownerId })]);
    expect(live.sessions[0]!.keys).toEqual(expect.arrayContaining(["svc/a"]));
    expect(live.sessions[0]).not.toHaveProperty("version"); // only its owner needs it
    expect((await call({ action: "list", namespace })).entries.map((e) => e.key)).toEqual(["svc/a"]);
    expect((await call({ action: "changes", namespace, fromRevision: 1 })).events.map((e) => e.key)).toEqual(["svc/a"]);
    const members = await call({ action: "changes", namespace, fromRevision: 1, prefix: "_fencepost/groups/workers/" });
    expect(members.events).toMatchObject([{ type: "put", epoch: 1, value: { meta: { address: "10.0.0.1:80" } } }]);

    await session.close();
    expect((await call({ action: "sessions", namespace })).sessions).toEqual([]);
    expect((await call({ action: "sessions", namespace, all: true })).sessions).toMatchObject([{ id: session.id, state: "closed" }]);
    expect(await call({ action: "view", namespace, group: "workers" })).toMatchObject({ epoch: 2, members: [] });
    expect(await call({ action: "get", namespace, key: "svc/a" })).toBeNull();
  });

  it("answers with typed errors that cross as their classes, with their fields", async () => {
    const namespace = newNamespace();
    await call({ action: "put", namespace, key: "k", value: 1 });
    const mismatch = await failure({ action: "put", namespace, key: "k", value: 2, ifRevision: 5 });
    expect(mismatch).toBeInstanceOf(RevisionMismatchError);
    expect(mismatch).toMatchObject({ key: "k", expectedRevision: 5, currentRevision: 1 });

    await call({ action: "put", namespace, key: "k", value: 3 });
    await call({ action: "put", namespace, key: "k", value: 4 });
    await dynamoDbClient().send(new DeleteItemCommand({ TableName: coordinationTable(), Key: itemKeys.change(namespace, 1) })); // as after retention
    const compacted = await failure({ action: "changes", namespace, fromRevision: 1 });
    expect(compacted).toBeInstanceOf(CompactedError);
    expect(compacted).toMatchObject({ namespace, fromRevision: 0, oldestRetained: 2 });
    expect((await call({ action: "changes", namespace, fromRevision: 2 })).events.map((e) => e.revision)).toEqual([2, 3]);

    const reserved = await failure({ action: "put", namespace, key: "_fencepost/groups/x/members/y", value: 1 });
    expect(reserved).toBeInstanceOf(InvalidArgumentError);
    expect(reserved).toMatchObject({ field: "key" });
    const large = await failure({ action: "put", namespace, key: "big", value: "x".repeat(70 * 1024) });
    expect(large).toBeInstanceOf(InvalidArgumentError);
    expect(large).toMatchObject({ field: "value" });
    expect(await call({ action: "revision", namespace })).toEqual({ revision: 3 });
  });

  /** A valid request of each action, in `namespace`. */
  function validRequest(action: string, namespace: string): Record<string, unknown> {
    const base: Record<string, Record<string, unknown>> = {
      put: { key: "k", value: { a: 1 } },
      get: { key: "k" },
      delete: { key: "k" },
      list: { prefix: "k" },
      compareAndSet: { key: "k", expectedRevision: 0, value: 1 },
      revision: {},
      changes: { fromRevision: 1 },
      view: { group: "g" },
      sessions: { limit: 5 },
    };
    return { action, namespace, ...base[action] };
  }

  it("covers every action of the schema in the bad-input cases below", () => {
    expect([...COORDINATION_ACTIONS].sort()).toEqual(coordinationRequestSchema.oneOf.map((b) => b.properties.action.const).sort());
  });

  const cases: [string, (req: Record<string, unknown>, required: string[]) => [Record<string, unknown>, string] | undefined][] = [
    ["missing", (req, required) => {
      const field = required.at(-1)!;
      return [Object.fromEntries(Object.entries(req).filter(([k]) => k !== field)), field];
    }],
    ["mistyped", (req, required) => {
      const field = [...required].reverse().find((f) => f !== "value")!;
      return [{ ...req, [field]: typeof req[field] === "string" ? 42 : "forty-two" }, field];
    }],
    ["oversized", (req) => [{ ...req, namespace: "n".repeat(600) }, "namespace"]],
    ["out of bounds", (req) => {
      const bounded: [string, number][] = [["limit", 5000], ["expectedRevision", -1], ["fromRevision", -1]];
      const found = bounded.find(([field]) => field in req);
      return found ? [{ ...req, [found[0]]: found[1] }, found[0]] : undefined;
    }],
    ["unknown field", (req) => [{ ...req, session: "s-1" }, "session"]],
  ];

  for (const action of COORDINATION_ACTIONS) {
    it(`rejects bad ${action} requests, naming the field, and writes nothing`, async () => {
      const namespace = newNamespace();
      const branch = coordinationRequestSchema.oneOf.find((b) => b.properties.action.const === action)!;
      const required = (branch.required as readonly string[]).filter((f) => f !== "action");
      for (const [label, make] of cases) {
        const bad = make(validRequest(action, namespace), required);
        if (!bad) continue;
        const [request, field] = bad;
        const err = await failure(request);
        expect(err, `${action} ${label}`).toBeInstanceOf(InvalidArgumentError);
        expect(err, `${action} ${label}`).toMatchObject({ field });
      }
      expect(await call({ action: "revision", namespace })).toEqual({ revision: 0 });
      expect(await call({ action: "sessions", namespace, all: true })).toEqual({ sessions: [], truncated: false });
    });
  }

  it("rejects payloads that are not a request at all", async () => {
    for (const payload of [null, [], "put", 42, {}, { action: "watch", namespace: "n" }]) expect(await failure(payload)).toBeInstanceOf(InvalidArgumentError);
  });
});

describe("coordination reaper function", () => {
  it("expires a session whose owner stopped its keepalives; its ephemeral key is deleted as a recorded change", async () => {
    const namespace = newNamespace();
    const dynamodb = dynamoDbClient({ maxAttempts: 1 });
    let cut = false;
    injectFaults(dynamodb, () => (cut ? { kind: "lose-request" } : undefined));
    const owner = client(namespace, dynamodb);
    const session = await owner.openSession({ ttlMs: 1000 });
    const { revision } = await owner.put("svc/worker-1", "10.0.0.9", { session });
    cut = true; // the owner is partitioned away: no keepalive arrives from now on

    const report = (await invokeJson(lambda, coordinationReaperFunction(), { source: "test" })) as ReaperReport;
    expect(report).toMatchObject({ watched: expect.any(Number), expired: expect.any(Array), failed: [], ms: expect.any(Number) });
    const observer = client(namespace);
    if (report.expired.includes(session.id)) {
      expect(report.namespaces).toContainEqual({ namespace, watched: 1, expired: [session.id] });
    } else {
      // The stack's scheduled reaper (every minute) may have expired it first; then it must be so.
      await until(async () => (await observer.store.getSession(namespace, session.id))?.state === "expired");
    }
    expect((await observer.store.getSession(namespace, session.id))?.state).toBe("expired");
    expect(session.signal.aborted).toBe(true); // the owner stopped believing before the reaper could expire it
    expect(await call({ action: "get", namespace, key: "svc/worker-1" })).toBeNull();
    const { events } = await call({ action: "changes", namespace, fromRevision: revision + 1 });
    expect(events).toMatchObject([{ type: "delete", key: "svc/worker-1", cause: "session-expired", session: session.id }]);

    cut = false;
    await expect(owner.put("svc/worker-1", "again", { session })).rejects.toBeInstanceOf(SessionExpiredError);
    dynamodb.destroy();
  });

  it("reports nothing to do when no session has stopped", async () => {
    const namespace = newNamespace();
    const coord = client(namespace);
    const session = await coord.openSession({ ttlMs: 2000 });
    await coord.put("svc/alive", "10.0.0.8", { session });
    const report = (await invokeJson(lambda, coordinationReaperFunction(), {})) as ReaperReport;
    expect(report.expired).not.toContain(session.id);
    expect(report.namespaces.find((n) => n.namespace === namespace)).toEqual({ namespace, watched: 1, expired: [] });
    expect(session.live).toBe(true);
    expect(await call({ action: "get", namespace, key: "svc/alive" })).toMatchObject({ value: "10.0.0.8", session: session.id });
    await session.close();
  });
});
