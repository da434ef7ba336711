/**
 * A bank coordinator in a process of its own, so that verification can kill it with
 * SIGKILL at any moment, not only at the coordinator's named crash seams.
 *
 * argv[2] is its configuration (BankProcessConfig, JSON). It answers `{ ready: true }`,
 * then reads transfers from stdin, one JSON line each, runs each through two-phase commit
 * (one at a time) and writes `{ txId, result }` or `{ txId, error }` per line to stdout.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { GetQueueAttributesCommand, SQSClient } from "@aws-sdk/client-sqs";
import { createInterface } from "node:readline";
import { Coordinator } from "../../txn/coordinator.js";
import { bankBranches, bankParticipants, type BankProcessConfig, type Transfer } from "./bank.js";

const config = JSON.parse(process.argv[2] ?? "{}") as BankProcessConfig;
const db = new DynamoDBClient(config.dynamodb);
const sqs = new SQSClient(config.sqs);
const participants = bankParticipants(db, sqs, config);
const coordinator = new Coordinator(
  {
    tableName: config.txnTable,
    dynamodb: db,
    sqs,
    participants: [participants.ledger, participants.outbox, participants.accounts],
    timeoutMs: config.timeoutMs,
    phaseTwoTimeoutMs: 2000,
  },
  { unsafeCommitBeforeDecision: config.unsafeCommitBeforeDecision },
);
const say = (message: object) => process.stdout.write(`${JSON.stringify(message)}\n`);

// Warm up (connections, code paths) so that kills land in transactions, not in a cold start.
await coordinator.status("warm-up").catch(() => undefined);
await sqs.send(new GetQueueAttributesCommand({ QueueUrl: config.queueUrl, AttributeNames: ["QueueArn"] })).catch(() => undefined);
say({ ready: true });
for await (const line of createInterface({ input: process.stdin })) {
  const t = JSON.parse(line) as Transfer;
  try {
    say({ txId: t.txId, result: await coordinator.run(t.txId, bankBranches(t, participants, config.prefix)) });
  } catch (err) {
    say({ txId: t.txId, error: { name: (err as Error).name, message: (err as Error).message } });
  }
}
db.destroy();
sqs.destroy();
