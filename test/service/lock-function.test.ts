/**
 * The lock Lambda through the local Invoke API with the real @aws-sdk/client-lambda:
 * the actions work, and bad input of every kind (missing, mistyped, oversized, unknown
 * fields) on every action is answered with a typed error naming the field and changes
 * nothing in the table.
 */
import { InvokeCommand } from "@aws-sdk/client-lambda";
import { ScanCommand } from "@aws-sdk/client-dynamodb";
import { describe, expect, it } from "vitest";
import { LOCK_ACTIONS, lockRequestSchema } from "../../lib/locks/protocol.js";
import { dynamoDbClient, lambdaClient, lockFunction, lockTable } from "../support/cloud.js";
import { uniqueName } from "../support/locks.js";

const lambda = lambdaClient();

async function invoke(payload: unknown): Promise<{ result?: unknown; error?: { errorType: string; errorMessage: string } }> {
  const out = await lambda.send(new InvokeCommand({ FunctionName: lockFunction(), Payload: new TextEncoder().encode(JSON.stringify(payload)) }));
  const body = JSON.parse(new TextDecoder().decode(out.Payload)) as unknown;
  return out.FunctionError ? { error: body as { errorType: string; errorMessage: string } } : { result: body };
}

async function tableSnapshot(): Promise<string> {
  const { Items } = await dynamoDbClient().send(new ScanCommand({ TableName: lockTable(), ConsistentRead: true }));
  return JSON.stringify((Items ?? []).map((i) => JSON.stringify(i)).sort());
}

/** A valid request of each action. */
function validRequest(action: string): Record<string, unknown> {
  const name = uniqueName("fn");
  const base: Record<string, Record<string, unknown>> = {
    acquire: { name, owner: "o", waitMs: 100, leaseMs: 1000 },
    tryAcquire: { name, owner: "o", leaseMs: 1000 },
    heartbeat: { name, owner: "o", version: "v1", nextVersion: "v2", leaseMs: 1000 },
    release: { name, owner: "o", fencingToken: 1 },
    abandon: { name, owner: "o", requestId: "AbCdEfGhIjKlMnOpQrStUv" },
    inspect: { name },
    list: { limit: 10 },
    elect: { name, owner: "o", waitMs: 100 },
    leader: { name },
    claim: { namespace: "ns", value: name, owner: "o" },
    releaseClaim: { namespace: "ns", value: name, owner: "o", incarnation: "i" },
    claimOwner: { namespace: "ns", value: name },
  };
  return { action, ...base[action] };
}

describe("lock function over the local Lambda Invoke API", () => {
  it("grants, heartbeats, inspects and releases a lock; a second owner is refused", async () => {
    const name = uniqueName("fn");
    const grant = (await invoke({ action: "acquire", name, owner: "alice", leaseMs: 5000 })).result as { fencingToken: number; version: string };
    expect(grant.fencingToken).toBeGreaterThan(0);
    expect((await invoke({ action: "tryAcquire", name, owner: "bob" })).result).toEqual({ granted: false });
    const beat = (await invoke({ action: "heartbeat", name, owner: "alice", version: grant.version, nextVersion: "n1", leaseMs: 5000 })).result;
    expect(beat).toEqual({ ok: true, version: "n1" });
    expect((await invoke({ action: "inspect", name })).result).toMatchObject({ holder: "alice", fencingToken: grant.fencingToken, released: false });
    expect((await invoke({ action: "release", name, owner: "bob", fencingToken: grant.fencingToken })).result).toEqual({ released: false });
    expect((await invoke({ action: "release", name, owner: "alice", fencingToken: grant.fencingToken })).result).toEqual({ released: true });
    const next = (await invoke({ action: "acquire", name, owner: "bob" })).result as { fencingToken: number };
    expect(next.fencingToken).toBe(grant.fencingToken + 1);
  });

  it("claims a value, answering with the incarnation that releaseClaim names", async () => {
    const value = uniqueName("fn");
    const { incarnation } = (await invoke({ action: "claim", namespace: "ns", value, owner: "alice" })).result as { incarnation: string };
    expect((await invoke({ action: "claim", namespace: "ns", value, owner: "alice", incarnation })).result).toEqual({ claimed: true, incarnation });
    expect((await invoke({ action: "claim", namespace: "ns", value, owner: "bob" })).error?.errorType).toBe("ClaimTakenError");
    expect((await invoke({ action: "releaseClaim", namespace: "ns", value, owner: "alice", incarnation: "another" })).result).toEqual({ released: true });
    expect((await invoke({ action: "claimOwner", namespace: "ns", value })).result).toEqual({ owner: "alice" });
    expect((await invoke({ action: "releaseClaim", namespace: "ns", value, owner: "alice", incarnation })).result).toEqual({ released: true });
    expect((await invoke({ action: "claimOwner", namespace: "ns", value })).result).toEqual({ owner: null });
  });

  it("answers a timed-out acquire with LockTimeoutError", async () => {
    const name = uniqueName("fn");
    await invoke({ action: "acquire", name, owner: "alice", leaseMs: 10_000 });
    const { error } = await invoke({ action: "acquire", name, owner: "bob", waitMs: 200 });
    expect(error?.errorType).toBe("LockTimeoutError");
  });

  it("covers every action of the schema in the bad-input cases below", () => {
    expect([...LOCK_ACTIONS].sort()).toEqual(lockRequestSchema.oneOf.map((b) => b.properties.action.const).sort());
  });

  const cases: [string, (req: Record<string, unknown>, required: string[]) => [Record<string, unknown>, string] | undefined][] = [
    ["missing", (req, required) => (required[0] ? [Object.fromEntries(Object.entries(req).filter(([k]) => k !== required[0])), required[0]] : undefined)],
    ["mistyped", (req, required) => {
      const field = required[0] ?? "limit";
      return [{ ...req, [field]: typeof req[field] === "string" ? 42 : "forty-two" }, field];
    }],
    ["oversized", (req, required) => {
      const field = required.find((f) => typeof req[f] === "string") ?? "startAfter";
      return [{ ...req, [field]: "x".repeat(5000) }, field];
    }],
    ["unknown field", (req) => [{ ...req, lease: 1000 }, "lease"]],
  ];

  for (const action of LOCK_ACTIONS) {
    it(`rejects bad ${action} requests, naming the field, and writes nothing`, async () => {
      const branch = lockRequestSchema.oneOf.find((b) => b.properties.action.const === action)!;
      const required = (branch.required as readonly string[]).filter((f) => f !== "action");
      const before = await tableSnapshot();
      for (const [label, make] of cases) {
        const bad = make(validRequest(action), required);
        if (!bad) continue;
        const [request, field] = bad;
        const { error } = await invoke(request);
        expect(error?.errorType, `${action} ${label}`).toBe("InvalidArgumentError");
        expect(error?.errorMessage, `${action} ${label}`).toContain(`Invalid ${field}:`);
      }
      expect(await tableSnapshot()).toBe(before);
    });
  }

  it("refuses numbers that overflow and values outside an enum, saying which values are allowed", async () => {
    const huge = await invoke({ action: "release", name: "n", owner: "o", fencingToken: 1e308 });
    expect(huge.error?.errorType).toBe("InvalidArgumentError");
    expect(huge.error?.errorMessage).toContain("Invalid fencingToken:");
    const kind = await invoke({ action: "release", kind: "mutex", name: "n", owner: "o", fencingToken: 1 });
    expect(kind.error?.errorType).toBe("InvalidArgumentError");
    expect(kind.error?.errorMessage).toContain('must be one of "lock", "election"');
  });

  it("rejects payloads that are not a request at all", async () => {
    for (const payload of [null, [], "acquire", 42, {}, { action: "explode" }]) {
      const { error } = await invoke(payload);
      expect(error?.errorType).toBe("InvalidArgumentError");
    }
  });
});
