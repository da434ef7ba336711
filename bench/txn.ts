/**
 * Two-phase commit benchmark on the embedded local cloud: the protocol against the fast
 * path (one TransactWriteItems), for transactions over 2, 4 and 8 DynamoDB participants,
 * measured side by side in one run.
 *
 *   npm run bench:txn -- [--transactions 200] [--write]
 *
 * Figures: DynamoDB requests per transaction by command (deterministic), latency per
 * transaction p50/p99 and transactions/s, one client running them one after another.
 * --write replaces the Two-phase commit section of BENCHMARKS.md.
 */
import { PutItemCommand } from "@aws-sdk/client-dynamodb";
import { parseArgs } from "node:util";
import { RequestCounter } from "../lib/check/middleware.js";
import { countedDynamoDb, withLocalCloud } from "./cloud.js";
import { Coordinator, DynamoDbParticipant, branch, type DynamoWrite } from "../lib/index.js";
import { byCommand, percentile, publishSection } from "./report.js";

const { values: args } = parseArgs({ options: { transactions: { type: "string", default: "200" }, write: { type: "boolean", default: false } } });
const TRANSACTIONS = Number(args.transactions);
const SIZES = [2, 4, 8];

interface Measured {
  requests: number;
  byCommand: string;
  p50: number;
  p99: number;
  perSecond: number;
}

async function measure(coordinator: Coordinator, requests: RequestCounter, participants: DynamoDbParticipant[], keys: string[], label: string): Promise<Measured> {
  const writes = (i: number): DynamoWrite[][] => keys.map((key, p) => [{ type: "update", key: { pk: key }, add: { balance: p % 2 === 0 ? -1 : 1 }, set: { last: `${label}-${i}` } }]);
  const runOne = (i: number) => coordinator.run(`bench-${label}-${Date.now().toString(36)}-${i}`, participants.map((p, j) => branch(p, writes(i)[j]!)));
  for (let i = 0; i < 10; i++) await runOne(-i - 1); // warm-up
  requests.reset();
  const counted = 20;
  for (let i = 0; i < counted; i++) {
    const r = await runOne(i);
    if (r.outcome !== "committed") throw new Error(`benchmark transaction aborted: ${r.reason}`);
  }
  const perTx = requests.total / counted;
  const commands = byCommand(requests, counted);
  const latencies: number[] = [];
  const started = performance.now();
  for (let i = 0; i < TRANSACTIONS; i++) {
    const t = performance.now();
    await runOne(counted + i);
    latencies.push(performance.now() - t);
  }
  const seconds = (performance.now() - started) / 1000;
  return { requests: perTx, byCommand: commands, p50: percentile(latencies, 50), p99: percentile(latencies, 99), perSecond: TRANSACTIONS / seconds };
}

const fmt = (n: number, digits = 2) => n.toFixed(digits);

await withLocalCloud(async (cloud) => {
  const requests = new RequestCounter();
  const dynamodb = countedDynamoDb(cloud, requests);
  const table = cloud.tables["locks"]!;
  const fast = new Coordinator({ tableName: cloud.tables["txn"]!, dynamodb });
  const protocol = new Coordinator({ tableName: cloud.tables["txn"]!, dynamodb, fastPath: false });
  const rows: string[] = [];
  // Warm the JIT and DynamoDB Local up once, so the first size measured is not penalised.
  const warm = [0, 1].map((i) => new DynamoDbParticipant({ tableName: table, dynamodb, label: `warm${i}` }));
  const warmKeys = warm.map((_, i) => `bench-warm-${i}`);
  for (const key of warmKeys) await dynamodb.send(new PutItemCommand({ TableName: table, Item: { pk: { S: key }, balance: { N: "1000000" } } }));
  await measure(fast, requests, warm, warmKeys, "warm-fast");
  await measure(protocol, requests, warm, warmKeys, "warm-protocol");
  for (const n of SIZES) {
    const participants = Array.from({ length: n }, (_, i) => new DynamoDbParticipant({ tableName: table, dynamodb, label: `p${i}` }));
    const keys = participants.map((_, i) => `bench-account-${n}-${i}`);
    for (const key of keys) await dynamodb.send(new PutItemCommand({ TableName: table, Item: { pk: { S: key }, balance: { N: "1000000" } } }));
    process.stderr.write(`${n} participants: fast path...\n`);
    const f = await measure(fast, requests, participants, keys, `fast${n}`);
    process.stderr.write(`${n} participants: protocol...\n`);
    const p = await measure(protocol, requests, participants, keys, `protocol${n}`);
    rows.push(
      `| ${n} | requests per transaction | ${fmt(p.requests)} (${p.byCommand}) | ${fmt(f.requests)} (${f.byCommand}) | ${fmt(p.requests / f.requests)}x |`,
      `| ${n} | latency p50 (ms) | ${fmt(p.p50, 1)} | ${fmt(f.p50, 1)} | ${fmt(p.p50 / f.p50)}x |`,
      `| ${n} | latency p99 (ms) | ${fmt(p.p99, 1)} | ${fmt(f.p99, 1)} | ${fmt(p.p99 / f.p99)}x |`,
      `| ${n} | transactions/s, one client | ${fmt(p.perSecond, 0)} | ${fmt(f.perSecond, 0)} | ${fmt(p.perSecond / f.perSecond)}x |`,
    );
  }
  const section = [
    "## Two-phase commit",
    "",
    `\`npm run bench:txn -- --transactions ${TRANSACTIONS}\` on the embedded local cloud (DynamoDB Local), ${new Date().toISOString().slice(0, 10)}.`,
    "Each transaction updates one item at each of n DynamoDB participants; one client runs them one after another. The same transactions go through the protocol (`fastPath: false`) and through the fast path (chosen automatically when every participant is a DynamoDB participant in the coordinator's database).",
    "",
    "| participants | measure | protocol | fast path | protocol / fast path |",
    "| --- | --- | --- | --- | --- |",
    ...rows,
    "",
    "The protocol costs 2n + 3 requests: begin (PutItem), per participant a prepare (one TransactWriteItems creating the participant's ledger item and placing the lock), the decision (UpdateItem), per participant a commit (one TransactWriteItems moving the ledger to committed and applying the write under the lock), and completion (UpdateItem). The ledger is what makes a late or duplicate prepare harmless without a confirming read; each prepare and commit writes it too, so each costs one more write unit than the items themselves. Prepares and commits run in parallel, so latency grows with the slowest participant, not with n: five sequential round trips (begin, prepare, decide, commit, complete) against one. The fast path is one TransactWriteItems (up to 99 writes) including the decision record, which keeps `run` idempotent by id.",
    "",
  ].join("\n");
  publishSection("Two-phase commit", section, { write: args.write });
  dynamodb.destroy();
});
