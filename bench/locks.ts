/**
 * Side-by-side lock benchmark: Fencepost against dynamodb-lock-client (FailOpen) on the
 * same DynamoDB Local, in one run. Requests are counted by SDK middleware (deterministic);
 * rates and waits are measured, and reported as ratios.
 *
 *   npm run bench:locks [-- --seconds 5 --workers 4 --hold-ms 5 --lease-ms 1000 --write]
 *
 * --write replaces the locks section of BENCHMARKS.md with this run's results.
 */
process.env["AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"] ??= "true";

import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { injectFaults, RequestCounter } from "../lib/check/middleware.js";
import type { LocalCloud } from "../lib/local/index.js";
import { countedDynamoDb, withLocalCloud } from "./cloud.js";
import { LockClient } from "../lib/index.js";
import { peerClient, releasePeer, type PeerLock } from "./peer.js";
import { byCommand, publishSection } from "./report.js";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    workers: { type: "string", default: "4" },
    "hold-ms": { type: "string", default: "5" },
    "lease-ms": { type: "string", default: "1000" },
    write: { type: "boolean", default: false },
  },
});
const SECONDS = Number(args.seconds);
const WORKERS = Number(args.workers);
const HOLD_MS = Number(args["hold-ms"]);
const LEASE_MS = Number(args["lease-ms"]);

/** One implementation under test: acquire returns a release function. */
interface Contender {
  readonly label: string;
  acquire(name: string): Promise<() => Promise<void>>;
  /**
   * A client of its own (its own owner id and state, as another process would have; it
   * shares only the counted SDK client): each contending worker gets one.
   */
  worker(): (name: string) => Promise<() => Promise<void>>;
  /** Acquires, then stops heartbeating without releasing (a crash). */
  crashHolding(name: string): Promise<void>;
}

interface Instrumented {
  contender: Contender;
  requests: RequestCounter;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let nameCounter = 0;
const freshName = (label: string) => `bench-${label}-${Date.now()}-${nameCounter++}`;

function makeFencepost(cloud: LocalCloud): Instrumented {
  const requests = new RequestCounter();
  const dynamodb = countedDynamoDb(cloud, requests);
  const client = new LockClient({ tableName: cloud.tables["locks"]!, dynamodb, leaseMs: LEASE_MS });
  const acquireWith = (locks: LockClient) => async (name: string) => {
    const lock = await locks.acquire(name, { waitMs: 60_000 });
    return async () => void (await lock.release());
  };
  return {
    requests,
    contender: {
      label: "fencepost",
      acquire: acquireWith(client),
      worker: () => acquireWith(new LockClient({ tableName: cloud.tables["locks"]!, dynamodb, leaseMs: LEASE_MS })),
      crashHolding: async (name) => {
        const crashedDb = new DynamoDBClient(cloud.clientConfig("dynamodb"));
        let crashed = false;
        injectFaults(crashedDb, () => (crashed ? { kind: "lose-request" } : undefined));
        const crashedClient = new LockClient({ tableName: cloud.tables["locks"]!, dynamodb: crashedDb, leaseMs: LEASE_MS });
        await crashedClient.acquire(name);
        crashed = true;
      },
    },
  };
}

function makePeer(cloud: LocalCloud): Instrumented {
  const requests = new RequestCounter();
  const dynamodb = countedDynamoDb(cloud, requests);
  // The peer gives up after one retry ("FailedToAcquireLock"); a waiting worker asks again.
  const acquireWith = (client: ReturnType<typeof peerClient>) => async (name: string) => {
    let lock: PeerLock;
    for (;;) {
      try {
        lock = await client.acquire(name);
        break;
      } catch (err) {
        if ((err as { code?: string }).code !== "FailedToAcquireLock") throw err;
      }
    }
    return async () => {
      clearTimeout(lock.heartbeatTimeout);
      await releasePeer(lock);
    };
  };
  return {
    requests,
    contender: {
      label: "dynamodb-lock-client",
      acquire: acquireWith(peerClient(dynamodb, cloud.tables["locks"]!, LEASE_MS)),
      worker: () => acquireWith(peerClient(dynamodb, cloud.tables["locks"]!, LEASE_MS)),
      crashHolding: async (name) => {
        const crashedDb = new DynamoDBClient(cloud.clientConfig("dynamodb"));
        const lock = await peerClient(crashedDb, cloud.tables["locks"]!, LEASE_MS).acquire(name);
        clearTimeout(lock.heartbeatTimeout); // stops heartbeating, never releases
      },
    },
  };
}

interface Results {
  requestsPerCycle: number;
  requestsByCommand: string;
  firstUse: { requestsPerCycle: number; byCommand: string };
  cyclesPerSecond: number;
  contended: { grants: number; perWorker: number[]; maxWaitMs: number; p99WaitMs: number; requestsPerGrant: number; byCommand: string };
  takeover: { ms: number; requests: number };
}

async function requestsPerCycle({ contender, requests }: Instrumented): Promise<Pick<Results, "requestsPerCycle" | "requestsByCommand">> {
  // On a lock that exists (steady state): the first grant of a brand-new name is not counted.
  const name = freshName(contender.label);
  await (await contender.acquire(name))();
  requests.reset();
  const CYCLES = 50;
  for (let i = 0; i < CYCLES; i++) await (await contender.acquire(name))();
  return {
    requestsPerCycle: requests.total / CYCLES,
    requestsByCommand: byCommand(requests, CYCLES),
  };
}

/** Acquire+release of a name nobody used before (no item yet), each name once. */
async function firstUse({ contender, requests }: Instrumented): Promise<Results["firstUse"]> {
  requests.reset();
  const CYCLES = 20;
  for (let i = 0; i < CYCLES; i++) await (await contender.acquire(freshName(`${contender.label}-new`)))();
  return { requestsPerCycle: requests.total / CYCLES, byCommand: byCommand(requests, CYCLES) };
}

async function cyclesPerSecond({ contender }: Instrumented, seconds: number): Promise<number> {
  const name = freshName(contender.label);
  let cycles = 0;
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    await (await contender.acquire(name))();
    cycles++;
  }
  return cycles / seconds;
}

async function contention({ contender, requests }: Instrumented): Promise<Results["contended"]> {
  const name = freshName(`${contender.label}-contended`);
  await (await contender.acquire(name))();
  requests.reset();
  const perWorker = new Array<number>(WORKERS).fill(0);
  const waits: number[] = [];
  const workers = perWorker.map(() => contender.worker());
  const stopAt = performance.now() + SECONDS * 1000;
  await Promise.all(
    perWorker.map(async (_, w) => {
      while (performance.now() < stopAt) {
        const asked = performance.now();
        const release = await workers[w]!(name);
        waits.push(performance.now() - asked);
        perWorker[w]!++;
        await sleep(HOLD_MS);
        await release();
      }
    }),
  );
  const grants = perWorker.reduce((a, b) => a + b, 0);
  waits.sort((a, b) => a - b);
  return {
    grants,
    perWorker,
    maxWaitMs: waits[waits.length - 1] ?? 0,
    p99WaitMs: waits[Math.floor(waits.length * 0.99)] ?? 0,
    requestsPerGrant: requests.total / Math.max(1, grants),
    byCommand: byCommand(requests, Math.max(1, grants)),
  };
}

async function takeover({ contender, requests }: Instrumented): Promise<Results["takeover"]> {
  const name = freshName(`${contender.label}-crash`);
  await contender.crashHolding(name);
  requests.reset();
  const crashedAt = performance.now();
  await (await contender.acquire(name))();
  return { ms: performance.now() - crashedAt, requests: requests.total - 1 /* the release */ };
}

/** Runs every phase for both, alternating, after warming DynamoDB Local's JIT with both. */
async function measureBoth(ours: Instrumented, peer: Instrumented): Promise<[Results, Results]> {
  const both = [ours, peer] as const;
  for (let round = 0; round < 3; round++) for (const c of both) await cyclesPerSecond(c, 2); // warm-up of the JVM JIT, discarded
  const results = both.map(() => ({}) as Results);
  for (const [i, c] of both.entries()) Object.assign(results[i]!, await requestsPerCycle(c));
  for (const [i, c] of both.entries()) results[i]!.firstUse = await firstUse(c);
  // Throughput: two alternating rounds each, averaged, so neither side gets the quieter moment.
  for (const [i, c] of both.entries()) results[i]!.cyclesPerSecond = (await cyclesPerSecond(c, SECONDS / 2)) / 2;
  for (const [i, c] of [...both.entries()].reverse()) results[i]!.cyclesPerSecond += (await cyclesPerSecond(c, SECONDS / 2)) / 2;
  for (const [i, c] of both.entries()) results[i]!.contended = await contention(c);
  for (const [i, c] of both.entries()) results[i]!.takeover = await takeover(c);
  return [results[0]!, results[1]!];
}

const fmt = (n: number, digits = 1) => n.toFixed(digits);

function report(ours: Results, peer: Results): string {
  const fair = (r: Results) => r.contended.grants / WORKERS;
  const minShare = (r: Results) => Math.min(...r.contended.perWorker) / fair(r);
  const rows: Array<[string, string, string, string]> = [
    ["DynamoDB requests per uncontended acquire+release", fmt(ours.requestsPerCycle, 2), fmt(peer.requestsPerCycle, 2), `${fmt(peer.requestsPerCycle / ours.requestsPerCycle, 2)}x fewer`],
    ["  by command", ours.requestsByCommand, peer.requestsByCommand, ""],
    ["DynamoDB requests per acquire+release of a new name (first use)", fmt(ours.firstUse.requestsPerCycle, 2), fmt(peer.firstUse.requestsPerCycle, 2), ""],
    ["  by command", ours.firstUse.byCommand, peer.firstUse.byCommand, ""],
    ["single-client cycles/s", fmt(ours.cyclesPerSecond), fmt(peer.cyclesPerSecond), `${fmt(ours.cyclesPerSecond / peer.cyclesPerSecond, 2)}x`],
    [`contended grants/s (${WORKERS} workers, hold ${HOLD_MS} ms)`, fmt(ours.contended.grants / SECONDS), fmt(peer.contended.grants / SECONDS), `${fmt(ours.contended.grants / Math.max(1, peer.contended.grants), 2)}x`],
    ["  grants per worker", ours.contended.perWorker.join(" / "), peer.contended.perWorker.join(" / "), ""],
    ["  smallest worker share / fair share", fmt(minShare(ours), 2), fmt(minShare(peer), 2), ""],
    ["  max wait (ms)", fmt(ours.contended.maxWaitMs, 0), fmt(peer.contended.maxWaitMs, 0), ""],
    ["  p99 wait (ms)", fmt(ours.contended.p99WaitMs, 0), fmt(peer.contended.p99WaitMs, 0), ""],
    ["  DynamoDB requests per contended grant", fmt(ours.contended.requestsPerGrant, 2), fmt(peer.contended.requestsPerGrant, 2), ""],
    ["    by command", ours.contended.byCommand, peer.contended.byCommand, ""],
    [`takeover of a crashed holder's lock (ms, lease ${LEASE_MS} ms)`, fmt(ours.takeover.ms, 0), fmt(peer.takeover.ms, 0), ""],
    ["  requests to take over", String(ours.takeover.requests), String(peer.takeover.requests), ""],
  ];
  const table = [
    "| measure | fencepost | dynamodb-lock-client (FailOpen) | ratio |",
    "| --- | --- | --- | --- |",
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
  return [
    "## Locks",
    "",
    `Command: \`npm run bench:locks -- --seconds ${SECONDS} --workers ${WORKERS} --hold-ms ${HOLD_MS} --lease-ms ${LEASE_MS}\``,
    `Run: ${new Date().toISOString().slice(0, 16)}Z on ${cpus().length} cores (${cpus()[0]?.model ?? "unknown CPU"}), Node ${process.version}, both clients against the same DynamoDB Local 3.x (in-memory), lease ${LEASE_MS} ms for both.`,
    "",
    table,
    "",
    "Reading it: requests are counted by SDK middleware inside the retry loop, so they are exact. Each contending worker",
    "has a client of its own (its own owner id and memory, as a separate process would), sharing only the counted SDK client.",
    "The peer reads before every write and waits a full lease whenever it finds the lock held, so under contention the worker",
    "that just released usually wins again and the others starve; its contended grants/s is that unfairness (hold + three",
    "round trips per grant, all by one worker). Fencepost's release hands the lock to the head waiter in the same write; a",
    "contended grant costs the waiter's place, the release, and the waiter's looks (reads) until one finds the lock handed",
    "to it. Per grant that is hold + one round trip + the gap between the release landing and the next waiter's look: looks",
    "are aimed from when the current grant began (the item's acquiredAt) at a hold and two round trips per grant ahead, and",
    "each look that comes early costs a read. A crashed holder costs its successor a",
    "refused grant, its place, one look (the holder missed its heartbeat) and the takeover at the end of the lease on the",
    "successor's own clock. A new name is created in the first request (a transaction checking the token floor). Rates on",
    "DynamoDB Local are not AWS rates; the ratios and request counts are what carry over.",
    "",
  ].join("\n");
}

await withLocalCloud(async (cloud) => {
  process.stderr.write(`measuring fencepost and dynamodb-lock-client, alternating (${SECONDS} s phases)...\n`);
  const [ours, peer] = await measureBoth(makeFencepost(cloud), makePeer(cloud));
  const section = report(ours, peer);
  publishSection("Locks", section, { write: args.write });
}, { functions: true });
