/**
 * The operator console in a real browser (Debian's Chromium, driven by playwright-core)
 * against the shared local cloud: a lock acquired from the library appears with its
 * token; a lease left to run out shows as expired; a transaction whose coordinator was
 * SIGKILLed between prepare and decide is listed in doubt, aborted from the page with a
 * reason, and its audit entry shows; publishing moves a stream's head and a group's lag;
 * sessions and groups show on the membership page; a refused action shows the typed
 * error; a read-only console and cross-site POSTs are refused.
 *
 * Every wait is a Playwright locator waiting for a condition; the console polls every
 * 300 ms. One browser and one console serve the whole file.
 */
import { createInterface } from "node:readline";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Broadcast, ConsumerGroup, Coordination, Coordinator, DynamoDbParticipant, LockClient, branch } from "../../lib/index.js";
import { localSources, startConsole, type RunningConsole } from "../../lib/console/index.js";
import { coordinationTable, dynamoDbClient, lockTable, logTable, sharedCloud, spawnFixture, txnTable } from "../support/cloud.js";
import { uniqueName } from "../support/locks.js";
import { launchChromium } from "./browser.js";

let browser: Browser;
let live: RunningConsole;
let readOnly: RunningConsole;
const db = dynamoDbClient();

beforeAll(async () => {
  const sources = localSources(sharedCloud());
  browser = await launchChromium(); // first: missing, it fails the file with how to install it
  [live, readOnly] = await Promise.all([
    startConsole({ sources, allowActions: true, operator: "e2e@console-test", pollMs: 300, streamPollMs: 300 }),
    startConsole({ sources, operator: "e2e@console-test", pollMs: 300, streamPollMs: 300 }),
  ]);
});

afterAll(async () => {
  await Promise.all([browser?.close(), live?.close(), readOnly?.close()]);
  db.destroy();
});

/** Opens the console at `path`; with `fakeClock`, the page's timers run only when the test says so (`page.clock`). */
async function open(path: string, on = live, { fakeClock = false } = {}): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  // Generous: on a loaded machine the first request to a function of the local cloud can take many seconds.
  page.setDefaultTimeout(45_000);
  if (fakeClock) await page.clock.install();
  await page.goto(`${on.url}#${path}`);
  return page;
}

describe("operator console", { timeout: 120_000 }, () => {
  it("shows a lock acquired from the library with its token, then its lease expired", async () => {
    const locks = new LockClient({ tableName: lockTable(), dynamodb: db, ownerId: "worker-7" });
    const prefix = uniqueName("console-lock");
    const held = await locks.acquire(`${prefix}-held`, { leaseMs: 60_000 });
    const lapsing = await locks.acquire(`${prefix}-lapsing`, { leaseMs: 1000 });
    lapsing.detach(); // no heartbeats: the lease runs out after 1 s
    const page = await open("/locks");
    await page.getByLabel("Filter by name prefix").fill(prefix);
    const row = page.locator(`tr[data-lock="${prefix}-held"]`);
    await row.locator("td", { hasText: new RegExp(`^${held.fencingToken}$`) }).waitFor();
    await row.locator(".badge.held").waitFor();
    await row.locator("td", { hasText: "worker-7" }).waitFor();
    // Only the filtered locks are listed.
    expect(await page.locator("tr[data-lock]").count()).toBe(2);
    await page.locator(`tr[data-lock="${prefix}-lapsing"] .badge.expired`).waitFor();
    // The detail: state, who waits, and the tokens the console saw.
    const waiting = new LockClient({ tableName: lockTable(), dynamodb: db, ownerId: "worker-8" }).acquire(`${prefix}-held`, { waitMs: 30_000, leaseMs: 60_000 });
    await row.locator("td", { hasText: /^1$/ }).last().waitFor(); // one waiting
    await row.getByRole("link").click();
    await page.locator("#lock-facts", { hasText: "worker-7" }).waitFor();
    await page.locator("#queue li", { hasText: "worker-8" }).waitFor();
    await page.locator("#token-history td", { hasText: new RegExp(`^${held.fencingToken}$`) }).waitFor();
    await held.release();
    const next = await waiting;
    await page.locator("#token-history tr", { hasText: "worker-8" }).locator("td", { hasText: new RegExp(`^${next.fencingToken}$`) }).waitFor();
    expect(next.fencingToken).toBeGreaterThan(held.fencingToken);
    await next.release();
    await page.locator("#lock-facts .badge.free").waitFor();
    await page.close();
  });

  it("lists a transaction whose coordinator was killed as in doubt, aborts it from the page and shows the audit entry", async () => {
    const txId = uniqueName("console-tx");
    const account = uniqueName("console-acct");
    const child = spawnFixture("stuck-coordinator", { FIXTURE_TXN_TABLE: txnTable(), FIXTURE_ACCOUNTS_TABLE: lockTable(), FIXTURE_TX_ID: txId, FIXTURE_ACCOUNT: account });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_code, signal) => resolve(signal)));
    for await (const line of createInterface({ input: child.stdout })) if (line === "prepared") break;
    child.kill("SIGKILL");
    expect(await exited).toBe("SIGKILL");

    const page = await open("/transactions");
    await page.locator(`#in-doubt tr[data-tx="${txId}"]`).waitFor(); // once its 1 s deadline has passed
    await page.locator(`#in-doubt tr[data-tx="${txId}"]`).getByRole("link").click();
    await page.locator("#tx-facts [data-status]", { hasText: "preparing" }).waitFor();
    await page.locator("#audit-empty").waitFor();
    await page.getByRole("button", { name: "Abort…" }).click();
    const confirm = page.getByRole("button", { name: "Confirm abort" });
    expect(await confirm.isDisabled()).toBe(true); // no reason, no abort
    await page.getByLabel("Reason").fill("coordinator host lost; customer asked to cancel");
    await confirm.click();
    await page.locator("#audit tr", { hasText: "coordinator host lost; customer asked to cancel" }).locator("td", { hasText: "e2e@console-test" }).waitFor();
    await page.locator("#tx-facts [data-status]", { hasText: "aborted" }).waitFor();
    // The function answered (phase two driven) once the page says so.
    await page.locator(".notice", { hasText: "Aborted" }).waitFor();
    // The same record the CLI reads: decided aborted, audited, and the reservation released.
    const record = await new Coordinator({ tableName: txnTable(), dynamodb: db }).status(txId);
    expect(record).toMatchObject({ status: "aborted", done: true, audit: [{ operator: "e2e@console-test", action: "abort", reason: "coordinator host lost; customer asked to cancel" }] });
    await page.goto(`${live.url}#/transactions`);
    await page.locator(`#finished tr[data-tx="${txId}"] .badge.aborted`).waitFor();
    await page.close();
  });

  it("refuses an abort of a committed transaction with the coordinator's typed error", async () => {
    const txId = uniqueName("console-committed");
    const accounts = new DynamoDbParticipant({ tableName: lockTable(), dynamodb: db });
    const result = await new Coordinator({ tableName: txnTable(), dynamodb: db, fastPath: false }).run(txId, [branch(accounts, [{ type: "update", key: { pk: uniqueName("console-acct") }, add: { balance: 1 } }])]);
    expect(result.outcome).toBe("committed");
    const page = await open(`/transactions/${encodeURIComponent(txId)}`);
    await page.locator("#tx-facts [data-status]", { hasText: "committed" }).waitFor();
    await page.getByRole("button", { name: "Abort…" }).click();
    await page.getByLabel("Reason").fill("testing the refusal");
    await page.getByRole("button", { name: "Confirm abort" }).click();
    await page.getByRole("alert").filter({ hasText: "DecisionConflictError" }).waitFor();
    await page.close();
  });

  it("moves a stream's head and a group's lag as messages are published and consumed", async () => {
    const stream = uniqueName("console-stream");
    const broadcast = new Broadcast({ tableName: logTable(), dynamodb: db });
    const group = new ConsumerGroup({ tableName: logTable(), dynamodb: db, stream, group: "billing", handler: () => undefined });
    await broadcast.publish(stream, { order: 1 });
    await broadcast.publish(stream, { order: 2 });
    await group.catchUp({ until: 1 });
    const page = await open("/streams");
    await page.locator(`tr[data-stream="${stream}"]`, { hasText: "billing: 1 / 1" }).getByRole("link").click();
    const cell = (column: number, value: number) => page.locator(`tr[data-group="billing"] td`).nth(column).filter({ hasText: new RegExp(`^${value}$`) });
    await page.locator("[data-head]", { hasText: /^2$/ }).waitFor();
    await cell(2, 1).waitFor();
    await page.locator("#tail td", { hasText: '{"order":2}' }).waitFor();
    await broadcast.publish(stream, { order: 3 });
    await page.locator("[data-head]", { hasText: /^3$/ }).waitFor();
    await cell(2, 2).waitFor();
    await group.catchUp();
    await cell(1, 3).waitFor();
    await cell(2, 0).waitFor();
    await page.close();
  });

  it("shows sessions and groups with their epoch and members", async () => {
    const namespace = uniqueName("console-ns");
    const coord = new Coordination({ tableName: coordinationTable(), dynamodb: db, namespace, ownerId: "web-1" });
    const session = await coord.openSession({ ttlMs: 60_000 }); // live throughout, however slow the page is to show it
    try {
      await coord.group("workers").join(session, { meta: { address: "10.0.0.7:8080" } });
      await coord.put("config/mode", "active");
      const page = await open("/membership", live, { fakeClock: true });
      await page.getByLabel("Namespace").fill(namespace);
      // The page re-renders every second (relative times); what was typed must stay typed
      // until Enter, however slowly an operator types. It used to be reset to "default".
      await page.clock.runFor(2500);
      expect(await page.getByLabel("Namespace").inputValue()).toBe(namespace);
      await page.getByLabel("Namespace").press("Enter");
      await page.locator(`tr[data-session="${session.id}"]`, { hasText: "web-1" }).locator(".badge.live").waitFor();
      await page.locator('[data-group="workers"]', { hasText: "epoch 1" }).locator("td", { hasText: "10.0.0.7:8080" }).waitFor();
      await page.locator("#keys td", { hasText: "config/mode" }).waitFor();
      await page.close();
    } finally {
      await session.close();
    }
  });

  it("refuses actions when read-only, and POSTs without the console's header or from another origin", async () => {
    const post = (on: RunningConsole, headers: Record<string, string>) =>
      fetch(`${on.url}api/actions/abort`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ txId: "x", reason: "r" }) });
    const refused = await post(readOnly, { "x-fencepost-console": "1" });
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ error: { type: "ReadOnlyConsole" } });
    expect((await post(live, {})).status).toBe(403);
    expect((await post(live, { "x-fencepost-console": "1", origin: "http://evil.example" })).status).toBe(403);
    const invalid = await fetch(`${live.url}api/actions/abort`, { method: "POST", headers: { "content-type": "application/json", "x-fencepost-console": "1" }, body: JSON.stringify({ txId: "x", reason: " " }) });
    expect(invalid.status).toBe(400);
    expect(await invalid.json()).toMatchObject({ error: { type: "InvalidArgumentError" } });
    // The read-only page says so, and offers no action.
    const page = await open("/transactions/anything", readOnly);
    await page.locator(".badge.ro").waitFor();
    await page.locator(".empty", { hasText: "No record of this transaction" }).waitFor();
    expect(await page.getByRole("button", { name: "Abort…" }).count()).toBe(0);
    await page.close();
  });
});
