/**
 * Participants that can never be reached are refused or settled at once, not retried for a
 * phase's whole timeout and left in doubt: bad outbox input is refused before anything is
 * written, a missing queue or function votes no and its abort counts as done, and recovery
 * keeps to a budget.
 */
import { SQSClient } from "@aws-sdk/client-sqs";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { describe, expect, it } from "vitest";
import { InvalidArgumentError, LambdaParticipant, branch, outboxParticipant } from "../../lib/index.js";
import { lambdaClient, sharedCloud, sqsClient, txnTable } from "../support/cloud.js";
import { txnScene } from "../support/txn.js";

const scene = txnScene("unr");

const until = async (check: () => Promise<boolean>) => {
  for (const deadline = Date.now() + 20_000; !(await check()); ) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 25));
  }
};

describe("unreachable participants", () => {
  it("refuses an outbox branch whose input is not a message, before anything is written", async () => {
    const coordinator = scene.protocol(scene.db);
    const outbox = outboxParticipant({ queueUrl: "http://127.0.0.1:1/000000000000/nowhere", sqs: sqsClient(), tableName: txnTable(), dynamodb: scene.db });
    const txId = scene.fresh("bad-input");
    const err = await coordinator.run(txId, [branch(outbox, 7 as never)]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).field).toBe("branches[0].input");
    expect(await coordinator.status(txId)).toBeUndefined();
  });

  it("aborts at once, and finishes, when the outbox queue or the participant function does not exist", async () => {
    const coordinator = scene.protocol(scene.db, { phaseTwoTimeoutMs: 30_000 });
    const missingQueue = `${sharedCloud().endpoints.sqs.replace(/\/$/, "")}/000000000000/no-such-queue-${scene.fresh("q")}`;
    const outbox = outboxParticipant({ queueUrl: missingQueue, sqs: sqsClient() as SQSClient, tableName: txnTable(), dynamodb: scene.db });
    const missingFunction = new LambdaParticipant(`no-such-function-${Date.now()}`, { lambda: lambdaClient() as LambdaClient });
    for (const [what, participant, input] of [["queue", outbox, { body: { hello: 1 } }], ["function", missingFunction, { any: 1 }]] as const) {
      const started = performance.now();
      const result = await coordinator.run(scene.fresh(what), [branch(scene.accountsOn(scene.db), [scene.credit(scene.fresh("acct"), 1)]), branch(participant as never, input)]);
      expect(result.outcome, what).toBe("aborted");
      expect(result.reason, what).toMatch(/does not exist|not found|failed to prepare/i);
      expect(result.acknowledged, what).toBe(true); // nothing left for recovery
      expect(performance.now() - started, what).toBeLessThan(10_000); // not the 30 s phase-two timeout
    }
  });

  it("stops a recovery run at its budget and says so; the next run goes on", async () => {
    // A transaction left in doubt: its coordinator "dies" after the decision, before phase two.
    const txId = scene.fresh("in-doubt");
    const crashing = scene.protocol(scene.db, { timeoutMs: 50 }, { crashAt: (point, id) => id === txId && point === "phase2:0" });
    await crashing.run(txId, [branch(scene.accountsOn(scene.db), [scene.credit(scene.fresh("acct"), 1)])]).catch(() => undefined);
    const coordinator = scene.protocol(scene.db);
    const mine = { prefix: txId };
    await until(async () => (await coordinator.listInDoubt({ ...mine })).length === 1);
    const stopped = await coordinator.recover({ ...mine, budgetMs: 1e-9 });
    expect(stopped).toMatchObject({ examined: 0, truncated: true });
    const finished = await coordinator.recover(mine);
    expect(finished).toMatchObject({ examined: 1, completed: 1, truncated: false });
    await expect(coordinator.recover({ budgetMs: -1 })).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});
