/**
 * `npm run docs:screenshots`: starts the embedded local cloud, puts representative state
 * in it (held, contended, expired and free locks; two streams with groups behind, a hole;
 * an in-doubt, a committed and an operator-aborted transaction; sessions in groups), and
 * writes the console's pages to docs/console/*.png (1200x800) for the README.
 */
import { mkdirSync } from "node:fs";
import { synthesizeTemplate } from "../../infra/synth.js";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { Broadcast, Coordination, Coordinator, ConsumerGroup, DynamoDbParticipant, LockClient, branch } from "../../lib/index.js";
import { StreamLog } from "../../lib/advanced.js";
import { localSources, startConsole } from "../../lib/console/index.js";
import { startLocalCloud } from "../../lib/local/index.js";
import { launchChromium } from "./browser.js";

process.env["AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"] ??= "true";
const OUT = "docs/console";

const cloud = await startLocalCloud({ template: synthesizeTemplate(), functionLog: () => undefined });
const db = new DynamoDBClient(cloud.clientConfig("dynamodb"));
const table = (role: string) => cloud.tables[role]!;
const sessions: { close(): Promise<unknown> }[] = [];
try {
  // Locks: tokens that have moved on, a holder with a waiter, an expired lease, a free lock.
  const locks = (owner: string) => new LockClient({ tableName: table("locks"), dynamodb: db, ownerId: owner });
  for (let i = 0; i < 3; i++) await (await locks("api-1").acquire("orders/checkout")).release();
  await locks("api-1").acquire("orders/checkout", { leaseMs: 60_000 }).then((l) => l.detach());
  await locks("reports-2").acquire("reports/daily", { leaseMs: 300_000, data: "10.0.3.7:9000" }).then((l) => l.detach());
  const waiter = locks("api-2").acquire("orders/checkout", { waitMs: 120_000 }).catch(() => undefined);
  await locks("cron-1").acquire("billing/nightly-run", { leaseMs: 1000 }).then((l) => l.detach());
  await (await locks("sync-3").acquire("inventory/sync")).release();

  // Streams: "orders" with a group behind; "payments" with a hole left by a producer that died.
  const broadcast = new Broadcast({ tableName: table("log"), dynamodb: db });
  for (let n = 1; n <= 12; n++) await broadcast.publish("orders", { order: 1000 + n, total: 20 + n }, { dedupId: `order-${1000 + n}` });
  await new ConsumerGroup({ tableName: table("log"), dynamodb: db, stream: "orders", group: "audit", handler: () => undefined }).catchUp();
  await new ConsumerGroup({ tableName: table("log"), dynamodb: db, stream: "orders", group: "billing", handler: () => undefined }).catchUp({ until: 9 });
  for (let n = 1; n <= 3; n++) await broadcast.publish("payments", { payment: n });
  await new StreamLog(db, table("log")).allocate("payments", 1);
  await broadcast.publish("payments", { payment: 4 });
  await new ConsumerGroup({ tableName: table("log"), dynamodb: db, stream: "payments", group: "ledger", handler: () => undefined }).catchUp({ until: 2 });

  // Transactions: one stuck between prepare and decide, one committed, one aborted by an operator.
  const accounts = new DynamoDbParticipant({ tableName: table("locks"), dynamodb: db });
  const credit = (account: string, amount: number) => branch(accounts, [{ type: "update", key: { pk: account }, add: { balance: amount } }]);
  const crashing = new Coordinator({ tableName: table("txn"), dynamodb: db, fastPath: false, timeoutMs: 1000 }, { crashAt: (point) => point === "decide" });
  await crashing.run("transfer-7f3a", [credit("acct-alice", -25)]).catch(() => undefined);
  await crashing.run("transfer-7f3b", [credit("acct-bob", 25)]).catch(() => undefined);
  const coordinator = new Coordinator({ tableName: table("txn"), dynamodb: db, fastPath: false });
  await coordinator.run("transfer-7f39", [credit("acct-carol", 10)]);
  const console_ = await startConsole({ sources: localSources({ ...cloud, credentials: cloud.clientConfig("dynamodb").credentials }), allowActions: true, operator: "ops@example", pollMs: 500, where: "local stack, us-east-1" });
  // An operator's abort, through the console's own endpoint (the coordinator function, audited).
  await new Promise((r) => setTimeout(r, 1200)); // past the 1 s deadline of the stuck ones
  await fetch(`${console_.url}api/actions/abort`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-fencepost-console": "1" },
    body: JSON.stringify({ txId: "transfer-7f3b", reason: "coordinator host terminated; ticket OPS-1432" }),
  });

  // Membership: two workers and a scheduler, a configuration key.
  const coord = (owner: string) => new Coordination({ tableName: table("coordination"), dynamodb: db, ownerId: owner });
  for (const [owner, group, address] of [["worker-a", "workers", "10.0.1.11:7000"], ["worker-b", "workers", "10.0.1.12:7000"], ["scheduler-1", "schedulers", "10.0.2.5:7100"]] as const) {
    const session = await coord(owner).openSession({ ttlMs: 15_000 });
    sessions.push(session);
    await coord(owner).group(group).join(session, { meta: { address } });
  }
  await coord("ops").put("config/feature-flags", { newCheckout: true, batchSize: 25 });
  await coord("ops").put("config/region", "eu-west-1");

  const browser = await launchChromium();
  mkdirSync(OUT, { recursive: true });
  const shoot = async (path: string, ready: string, file: string) => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    await page.goto(`${console_.url}#${path}`);
    await page.locator(ready).first().waitFor({ timeout: 30_000 });
    await page.screenshot({ path: `${OUT}/${file}` });
    await page.close();
    process.stdout.write(`wrote ${OUT}/${file}\n`);
  };
  await shoot("/locks", 'tr[data-lock="billing/nightly-run"] .badge.expired', "locks.png");
  await shoot("/locks/orders%2Fcheckout", "#queue li", "lock.png");
  await shoot("/streams", 'tr[data-stream="payments"]', "streams.png");
  await shoot("/streams/payments", 'tr[data-group="ledger"]', "stream.png");
  await shoot("/transactions", '#finished tr[data-tx="transfer-7f3b"]', "transactions.png");
  await shoot("/transactions/transfer-7f3b", "#audit", "transaction.png");
  await shoot("/membership", '[data-group="workers"]', "membership.png");
  await browser.close();
  await console_.close();
  void waiter;
} finally {
  for (const s of sessions) await s.close().catch(() => undefined);
  db.destroy();
  await cloud.stop();
}
process.exit(0);
