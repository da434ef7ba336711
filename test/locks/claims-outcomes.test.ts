/**
 * Claims are incarnations: a release ends only the claim it names, whenever it arrives,
 * and reports success once the item proves that claim over; a claim whose answer was
 * lost is recognised as itself. Against DynamoDB Local, with faults injected into the
 * claimant's SDK requests.
 */
import { GetItemCommand, PutItemCommand, type DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { describe, expect, it } from "vitest";
import { injectFaults } from "../../lib/check/middleware.js";
import { ClaimAlreadyReleasedError, ClaimHeldByOtherIncarnationError, ClaimOutcomeUnknownError, Claims, ClaimTakenError } from "../../lib/index.js";
import { fromWire, toWire } from "../../lib/advanced.js";
import { dynamoDbClient, lockTable } from "../support/cloud.js";
import { ghost } from "../support/intercept.js";
import { uniqueName } from "../support/locks.js";

function newClaims(dynamodb: DynamoDBClient = dynamoDbClient()) {
  return { claims: new Claims({ tableName: lockTable(), dynamodb }), dynamodb };
}

describe("Claims outcomes", () => {
  // Issue 13 #8: a late release from the first incarnation deleted the owner's re-claim,
  // and another owner could then claim the value while the first still believed it held it.
  it("a release delivered late, after the same owner claimed again, leaves the new claim alone", async () => {
    const { claims, dynamodb } = newClaims();
    const other = newClaims().claims;
    const value = uniqueName("v");
    const first = await claims.claim("ns", value, "user-1");
    const late = ghost(dynamodb, (command) => command === "UpdateItemCommand");
    await claims.release(first); // the SDK's retry applies; the first attempt is held in the network
    await late.lost;
    const second = await claims.claim("ns", value, "user-1");
    expect(second.incarnation).not.toBe(first.incarnation);
    await late.deliver().catch(() => undefined);
    expect(await claims.current("ns", value)).toEqual(second);
    const taken = await other.claim("ns", value, "user-2").catch((e: unknown) => e);
    expect(taken).toBeInstanceOf(ClaimTakenError);
    expect((taken as ClaimTakenError).owner).toBe("user-1");
  });

  // A release retried after a lost response used to report NotLockOwnerError when the value
  // had been claimed again in between, although the release had applied.
  it("a release whose response was lost reports success when another claim replaced it before the retry", async () => {
    const { claims, dynamodb } = newClaims();
    const other = newClaims().claims;
    const value = uniqueName("v");
    const mine = await claims.claim("ns", value, "user-1");
    let theirs: Awaited<ReturnType<Claims["claim"]>> | undefined;
    (dynamodb.middlewareStack as unknown as { add(m: unknown, o: object): void }).add(
      (next: (args: unknown) => Promise<unknown>, context: { commandName?: string }) => async (args: unknown) => {
        if (context.commandName !== "UpdateItemCommand" || theirs) return next(args);
        await next(args);
        theirs = await other.claim("ns", value, "user-2");
        throw Object.assign(new Error("injected: response lost after the delete applied"), { name: "TimeoutError", $metadata: {} });
      },
      { step: "finalizeRequest", priority: "low", name: "replaceBeforeRetry" },
    );
    await claims.release(mine);
    expect(theirs).toBeDefined();
    expect(await claims.current("ns", value)).toEqual(theirs);
  });

  it("recognises a claim whose answers were all lost as the same claim, and a retry with its incarnation too", async () => {
    const { claims, dynamodb } = newClaims();
    const value = uniqueName("v");
    let lose = true;
    injectFaults(dynamodb, (r) => (lose && r.commandName === "PutItemCommand" ? { kind: "lose-response" } : undefined));
    const claim = await claims.claim("ns", value, "user-1", { incarnation: "order-42" });
    lose = false;
    expect(claim).toEqual({ namespace: "ns", value, owner: "user-1", incarnation: "order-42" });
    expect(await claims.claim("ns", value, "user-1", { incarnation: "order-42" })).toEqual(claim);
    // Another call of the same owner is another claim: refused, naming the incarnation that holds.
    await expect(claims.claim("ns", value, "user-1")).rejects.toBeInstanceOf(ClaimHeldByOtherIncarnationError);
    // An incarnation id is not a key to another owner's claim.
    await expect(claims.claim("ns", value, "user-2", { incarnation: "order-42" })).rejects.toBeInstanceOf(ClaimTakenError);
    await claims.release(claim);
    expect(await claims.current("ns", value)).toBeUndefined();
  });

  it("settles claimWith by the claim item after lost answers: the user's item was written with it", async () => {
    const { claims, dynamodb } = newClaims();
    const value = uniqueName("v");
    const user = uniqueName("user");
    let lose = true;
    injectFaults(dynamodb, (r) => (lose && r.commandName === "TransactWriteItemsCommand" ? { kind: "lose-response" } : undefined));
    const claim = await claims.claimWith("email", value, user, [{ Put: { TableName: lockTable(), Item: { pk: { S: `user#${user}` } }, ConditionExpression: "attribute_not_exists(pk)" } }]);
    lose = false;
    expect(await claims.current("email", value)).toEqual(claim);
    expect((await dynamodb.send(new GetItemCommand({ TableName: lockTable(), Key: { pk: { S: `user#${user}` } }, ConsistentRead: true }))).Item).toBeDefined();
  });

  it("a release whose every answer was lost is settled by the item and can be called again", async () => {
    const { claims, dynamodb } = newClaims();
    const value = uniqueName("v");
    const claim = await claims.claim("ns", value, "user-1");
    let lose = true;
    injectFaults(dynamodb, (r) => (lose && r.commandName === "UpdateItemCommand" ? { kind: "lose-response" } : undefined));
    await claims.release(claim);
    lose = false;
    await claims.release(claim);
    expect(await claims.current("ns", value)).toBeUndefined();
  });

  // Review finding 2: A's first attempt was held in the network, its SDK retry refused
  // (ClaimTakenError); once B released, the held attempt landed: A held the value under an
  // incarnation it never saw, and nobody would ever release it.
  it("a claim refused with ClaimTakenError never lands later, even once the value is free", async () => {
    const { claims: a, dynamodb } = newClaims();
    const b = newClaims().claims;
    const value = uniqueName("v");
    const bClaim = await b.claim("ns", value, "user-b");
    const late = ghost(dynamodb, (command) => command === "PutItemCommand");
    await expect(a.claim("ns", value, "user-a")).rejects.toBeInstanceOf(ClaimTakenError);
    await b.release(bClaim);
    await late.deliver().catch(() => undefined);
    expect(await a.current("ns", value)).toBeUndefined();
    // The value is free: anyone claims it over B's tombstone.
    const next = await b.claim("ns", value, "user-c");
    expect(await a.current("ns", value)).toEqual(next);
  });

  // The case the old header listed as not covered: a claim attempt delivered after its claim
  // was confirmed (by the SDK's retry) and released re-created the claim.
  it("a claim attempt delivered after its claim was confirmed and released does not re-create it", async () => {
    const { claims, dynamodb } = newClaims();
    const value = uniqueName("v");
    // A tombstone first, so the late attempt is one that expects it (not an absent item).
    await claims.release(await claims.claim("ns", value, "user-0"));
    const late = ghost(dynamodb, (command, input) => command === "PutItemCommand" && JSON.stringify(input).includes("epoch = :seen"));
    const claim = await claims.claim("ns", value, "user-1");
    await late.lost;
    await claims.release(claim);
    await late.deliver().catch(() => undefined);
    expect(await claims.current("ns", value)).toBeUndefined();
    // A call retried with its incarnation after the release does not claim again either.
    await expect(claims.claim("ns", value, "user-1", { incarnation: claim.incarnation })).rejects.toBeInstanceOf(ClaimAlreadyReleasedError);
  });

  // Review finding 4: an unknown outcome rethrew the SDK's error, losing the incarnation.
  it("reports a claim it could not confirm with the claim, and a retry with its incarnation completes it", async () => {
    const { claims, dynamodb } = newClaims();
    const value = uniqueName("v");
    let down = true;
    injectFaults(dynamodb, (r) => (down && r.commandName === "PutItemCommand" ? { kind: "lose-request" } : undefined));
    const err = await claims.claim("ns", value, "user-1").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClaimOutcomeUnknownError);
    const { claim } = err as ClaimOutcomeUnknownError;
    expect(claim).toMatchObject({ namespace: "ns", value, owner: "user-1" });
    down = false;
    expect(await claims.claim("ns", value, "user-1", { incarnation: claim.incarnation })).toEqual(claim);
    // Across the Lambda boundary the error is rebuilt as the same class, message and claim included.
    const remote = fromWire(toWire(err as Error));
    expect(remote).toBeInstanceOf(ClaimOutcomeUnknownError);
    expect((remote as ClaimOutcomeUnknownError).claim).toEqual(claim);
    expect((remote as ClaimOutcomeUnknownError).message).toBe((err as Error).message);
  });

  it("claimWith retried with its incarnation returns the claim without writing the user's items again", async () => {
    const { claims } = newClaims();
    const value = uniqueName("v");
    const user = uniqueName("user");
    const items = [{ Put: { TableName: lockTable(), Item: { pk: { S: `user#${user}` } }, ConditionExpression: "attribute_not_exists(pk)" } }];
    const claim = await claims.claimWith("email", value, user, items);
    expect(await claims.claimWith("email", value, user, items, { incarnation: claim.incarnation })).toEqual(claim);
    expect(await claims.current("email", value)).toEqual(claim);
  });

  // Review finding 6: current() names a claim written before incarnations with the empty
  // incarnation, which release() refused as an invalid argument.
  it("releases a claim written before incarnations, by the handle current() returns", async () => {
    const { claims, dynamodb } = newClaims();
    const value = uniqueName("v");
    await dynamodb.send(new PutItemCommand({ TableName: lockTable(), Item: { pk: { S: `claim#2:ns#${value}` }, owner: { S: "legacy" }, claimedAt: { N: "1" } } }));
    const legacy = await claims.current("ns", value);
    expect(legacy).toEqual({ namespace: "ns", value, owner: "legacy", incarnation: "" });
    await claims.release(legacy!);
    expect(await claims.current("ns", value)).toBeUndefined();
    expect(await claims.claim("ns", value, "user-1")).toMatchObject({ owner: "user-1" });
  });
});
