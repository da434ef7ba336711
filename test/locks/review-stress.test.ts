/**
 * Review (adversarial): a Jepsen-style run of the handover protocol against DynamoDB Local.
 * Several clients (lazy waiters, waiters with data that accept, waiters that give up,
 * holders that crash by going silent) on one lock, every request subject to lost
 * responses, lost requests, late delivery (ghost writes seconds later), throttling and
 * delays. All clients share this process's monotonic clock, so the checker can compare
 * beliefs directly: at no instant may two Locks report `held`, and every grant's token is
 * fresh and greater than every token granted before it was believed.
 */
import { expect, it } from "vitest";
import { injectFaults, type FaultKind } from "../../lib/check/middleware.js";
import type { Lock } from "../../lib/index.js";
import { newLockClient, uniqueName, wait } from "../support/locks.js";
import { dynamoDbClient, lockTable } from "../support/cloud.js";

const OLD = process.env["REVIEW_OLD"] === "1";
// The previous version of the client (main's lib/locks, in the main worktree next to this
// one), for mixed runs: REVIEW_OLD=1. Imported by a computed path so the type check and
// ordinary runs do not need it.
const OLD_LIB: string = process.env["REVIEW_OLD_LIB"] ?? new URL("../../../main/lib/index.ts", import.meta.url).href;
const OldLockClient = OLD ? ((await import(OLD_LIB)) as { LockClient: new (options: object) => unknown }).LockClient : undefined;
/** Clock drift of each client, as a fraction (REVIEW_DRIFT=0.01: rates from 0.99 to 1.01). */
const DRIFT = Number(process.env["REVIEW_DRIFT"] ?? 0);

/** Run length: short by default (npm test); REVIEW_RUN_MS=45000 for the reviewer's full run. */
const RUN_MS = Number(process.env["REVIEW_RUN_MS"] ?? 15_000);

it("never lets two clients believe they hold the lock at once, under lost answers, late delivery and giving up", async () => {
  const name = uniqueName("stress");
  const violations: string[] = [];
  const active = new Set<{ lock: Lock; who: string }>();
  const tokens = new Set<number>();
  let maxToken = 0;
  let grants = 0;
  const byKind = new Map<string, number>();
  const end = Date.now() + RUN_MS;
  const pending: Promise<unknown>[] = [];

  const check = setInterval(() => {
    const holding = [...active].filter((a) => a.lock.held);
    if (holding.length > 1) violations.push(`at ${Date.now()}: ${holding.map((h) => `${h.who}@${h.lock.fencingToken}(${h.lock.remainingMs()}ms left)`).join(", ")}`);
  }, 2);

  async function worker(i: number) {
    const ownerId = i % 3 === 0 ? "shared-owner" : `w${i}`; // some share one owner id
    const old = OLD && i >= 3;
    const rate = 1 + DRIFT * (i % 2 === 0 ? 1 : -1) * (0.5 + Math.random() / 2);
    const origin = performance.now();
    const clock = { now: () => origin + (performance.now() - origin) * rate };
    const options = { ownerId, leaseMs: 1500, waiterLeaseMs: 1000, maxPollMs: 250, clock };
    const dynamodb = dynamoDbClient();
    const client = old ? (new OldLockClient!({ tableName: lockTable(), dynamodb, ...options }) as unknown as ReturnType<typeof newLockClient>["client"]) : newLockClient({ ...options, dynamodb }).client;
    let silent = false;
    injectFaults(
      dynamodb,
      () => {
        if (silent) return { kind: "lose-request" as FaultKind };
        const r = Math.random();
        if (r < 0.06) return { kind: "lose-response" as FaultKind };
        if (r < 0.1) return { kind: "lose-request" as FaultKind };
        if (r < 0.14) return { kind: "late-delivery" as FaultKind, delayMs: 200 + Math.random() * 2500 };
        if (r < 0.17) return { kind: "throttle" as FaultKind };
        if (r < 0.22) return { kind: "delay" as FaultKind, delayMs: Math.random() * 300 };
        return undefined;
      },
      undefined,
      (late) => pending.push(late),
    );
    while (Date.now() < end) {
      const giveUp = new AbortController();
      if (Math.random() < 0.2) setTimeout(() => giveUp.abort(), Math.random() * 1500);
      const data = i % 2 === 0 ? undefined : `d${i}`;
      let lock: Lock;
      try {
        lock = await client.acquire(name, { waitMs: 4000, signal: giveUp.signal, ...(data ? { data } : {}) });
      } catch {
        continue;
      }
      const who = `${old ? "old" : "new"}w${i}`;
      if (lock.held) {
        for (const other of active) if (other.lock.held) violations.push(`${who} granted ${lock.fencingToken} while ${other.who} holds ${other.lock.fencingToken}`);
        if (tokens.has(lock.fencingToken)) violations.push(`token ${lock.fencingToken} issued twice (${who})`);
        if (lock.fencingToken <= maxToken) violations.push(`token ${lock.fencingToken} (${who}) not above ${maxToken}`);
      }
      tokens.add(lock.fencingToken);
      maxToken = Math.max(maxToken, lock.fencingToken);
      grants++;
      byKind.set(who.slice(0, 3), (byKind.get(who.slice(0, 3)) ?? 0) + 1);
      if (lock.held && lock.remainingMs() < 1000) byKind.set("handedLazily", (byKind.get("handedLazily") ?? 0) + 1); // firstLeaseMs = 1 s
      const entry = { lock, who };
      active.add(entry);
      const crash = Math.random() < Number(process.env["REVIEW_CRASH"] ?? 0.1);
      await wait(Math.random() * 200);
      if (crash) {
        // Crash: the process goes silent (its requests lost); its Lock must stop believing by itself.
        silent = true;
        await wait(2500);
        silent = false;
        active.delete(entry);
        try { await lock.release(); } catch { /* */ }
        continue;
      }
      try {
        await lock.release();
      } catch {
        /* unreachable: the lock is not believed held any more */
      }
      active.delete(entry);
    }
  }

  await Promise.all(Array.from({ length: 6 }, (_, i) => worker(i)));
  clearInterval(check);
  await Promise.all(pending);
  console.log(`grants: ${grants} (${JSON.stringify(Object.fromEntries(byKind))}), max token ${maxToken}, violations ${violations.length}`);
  expect(violations.slice(0, 10)).toEqual([]);
  expect(grants).toBeGreaterThan(10);
}, 180_000);
