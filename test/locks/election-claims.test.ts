/** Leader election and uniqueness claims on the lock table. */
import { PutItemCommand, TransactionCanceledException, GetItemCommand } from "@aws-sdk/client-dynamodb";
import { describe, expect, it } from "vitest";
import { ClaimHeldByOtherIncarnationError, Claims, ClaimTakenError, Election, type Leader } from "../../lib/index.js";
import { dynamoDbClient, lockTable } from "../support/cloud.js";
import { newLockClient, uniqueName, wait } from "../support/locks.js";

describe("leader election", () => {
  it("elects one leader at a time, terms increase, followers observe each change", async () => {
    const a = newLockClient({ ownerId: "cand-a", leaseMs: 2000 }).client;
    const b = newLockClient({ ownerId: "cand-b", leaseMs: 2000 }).client;
    const name = uniqueName("election");
    const stop = new AbortController();
    const seen: Array<Leader | undefined> = [];
    const watching = (async () => {
      for await (const leader of new Election(a, name).observe({ signal: stop.signal, pollMs: 20 })) seen.push(leader);
    })();

    const first = await new Election(a, name).campaign({ value: "10.0.0.1:80" });
    expect(await new Election(b, name).leader()).toEqual({ holder: "cand-a", term: first.term, value: "10.0.0.1:80" });
    const campaign = new Election(b, name).campaign({ value: "10.0.0.2:80" });
    await wait(100);
    expect(first.isLeader).toBe(true);
    await first.resign();
    const second = await campaign;
    expect(second.term).toBeGreaterThan(first.term);
    expect(first.signal.aborted).toBe(true);
    await wait(100);
    await second.resign();
    await wait(100);
    stop.abort();
    await watching;
    const terms = seen.filter((l): l is Leader => l !== undefined).map((l) => [l.holder, l.term]);
    expect(terms).toEqual([
      ["cand-a", first.term],
      ["cand-b", second.term],
    ]);
  });
});

describe("uniqueness claims", () => {
  const db = dynamoDbClient();
  const claims = new Claims({ tableName: lockTable(), dynamodb: db });

  it("gives a value to one claim; idempotent for that claim; release ends only the claim it names", async () => {
    const email = `${uniqueName("user")}@example.com`;
    const mine = await claims.claim("email", email, "user-1");
    expect(await claims.claim("email", email, "user-1", { incarnation: mine.incarnation })).toEqual(mine);
    const taken = await claims.claim("email", email, "user-2").catch((e: unknown) => e);
    expect(taken).toBeInstanceOf(ClaimTakenError);
    expect((taken as ClaimTakenError).owner).toBe("user-1");
    // The same owner, another claim call: not this claim, so not handed out as if it were.
    const again = await claims.claim("email", email, "user-1").catch((e: unknown) => e);
    expect(again).toBeInstanceOf(ClaimHeldByOtherIncarnationError);
    expect((again as ClaimHeldByOtherIncarnationError).incarnation).toBe(mine.incarnation);
    // A handle that names another incarnation ends nothing.
    await claims.release({ ...mine, incarnation: "not-this-claim" });
    expect(await claims.current("email", email)).toEqual(mine);
    await claims.release(mine);
    const theirs = await claims.claim("email", email, "user-2");
    expect(await claims.owner("email", email)).toBe("user-2");
    expect(await claims.current("email", email)).toEqual(theirs);
  });

  it("only one of many concurrent claimants wins", async () => {
    const value = uniqueName("handle");
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => claims.claim("handle", value, `owner-${i}`)));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
  });

  it("writes the claim and the user's own item together, or neither", async () => {
    const email = `${uniqueName("tx")}@example.com`;
    const userPut = (id: string) => ({
      Put: { TableName: lockTable(), Item: { pk: { S: `user#${id}` }, email: { S: email } }, ConditionExpression: "attribute_not_exists(pk)" },
    });
    const u1 = uniqueName("u");
    const claim = await claims.claimWith("email", email, u1, [userPut(u1)]);
    expect(await claims.current("email", email)).toEqual(claim);

    // Taken value: the user's row is not written.
    const u2 = uniqueName("u");
    await expect(claims.claimWith("email", email, u2, [userPut(u2)])).rejects.toBeInstanceOf(ClaimTakenError);
    expect((await db.send(new GetItemCommand({ TableName: lockTable(), Key: { pk: { S: `user#${u2}` } } }))).Item).toBeUndefined();

    // The user's own condition fails: the claim is not written either.
    const other = `${uniqueName("tx")}@example.com`;
    const u3 = uniqueName("u");
    await db.send(new PutItemCommand({ TableName: lockTable(), Item: { pk: { S: `user#${u3}` } } }));
    await expect(claims.claimWith("email", other, u3, [userPut(u3)])).rejects.toBeInstanceOf(TransactionCanceledException);
    expect(await claims.owner("email", other)).toBeUndefined();
  });
});
