/**
 * Claims are incarnations: a release ends only the claim it names, whenever it arrives,
 * and reports success once the item proves that claim over; a claim whose answer was
 * lost is recognised as itself. Against DynamoDB Local, with faults injected into the
 * claimant's SDK requests.
 */
import { GetItemCommand, type DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { describe, expect, it } from "vitest";
import { injectFaults } from "../../lib/check/middleware.js";
import { ClaimHeldByOtherIncarnationError, Claims, ClaimTakenError } from "../../lib/locks/index.js";
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
    const late = ghost(dynamodb, (command) => command === "DeleteItemCommand");
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
        if (context.commandName !== "DeleteItemCommand" || theirs) return next(args);
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
    injectFaults(dynamodb, (r) => (lose && r.commandName === "DeleteItemCommand" ? { kind: "lose-response" } : undefined));
    await claims.release(claim);
    lose = false;
    await claims.release(claim);
    expect(await claims.current("ns", value)).toBeUndefined();
  });
});
