/**
 * A lock holder of the lock workload in a process of its own, so that verification can
 * kill it with SIGKILL at any moment: queued, holding, between a write and the release,
 * with a request on the wire.
 *
 * argv[2] is its configuration (LockProcessConfig, JSON). It holds at most one lock at a
 * time and does what stdin asks, one JSON line each (LockProcessCommand): acquire a lock,
 * write to the fenced store under the held lock's token (only while it believes it holds
 * the lock; otherwise it answers `not-held` and writes nothing), release. Every line it
 * writes (LockProcessMessage) carries `at`, a time on the clock every process of the
 * machine shares (performance.timeOrigin + performance.now()), and its fault counts. While
 * it holds a lock it says `{ belief }` whenever the end of its belief moves (a heartbeat
 * extended the lease): the parent records the end of its grant from what the child last
 * said (never later), and keeps it after a kill (nobody can tell a dead holder from a
 * slow one). `clockRate` fixes its clock's rate (a negative control's broken clock).
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { createInterface } from "node:readline";
import { LockTimeoutError, StaleTokenError } from "../../errors.js";
import { LockClient } from "../../locks/client.js";
import { FencedStore } from "../../locks/fencing.js";
import type { MonotonicClock } from "../../locks/clock.js";
import type { Lock } from "../../locks/lock.js";
import { emptyFaultCounts, FaultSchedule, SkewedClock } from "../faults.js";
import { Random } from "../random.js";
import { acquireFreeOnly } from "./broken-locks.js";
import type { LockProcessCommand, LockProcessConfig, LockProcessMessage } from "./locks.js";

const config = JSON.parse(process.argv[2] ?? "{}") as LockProcessConfig;
const random = new Random(config.seed);
const db = new DynamoDBClient(config.dynamodb);
const counts = emptyFaultCounts();
new FaultSchedule(random.fork("faults"), counts, config.faults).attach(db);
const rate = config.clockRate;
const clock: MonotonicClock & { toReal(ms: number): number } = rate === undefined ? new SkewedClock(random.fork("clock"), config.maxDrift) : { now: () => rate * performance.now(), toReal: (ms) => ms / rate };
const at = () => performance.timeOrigin + performance.now();
const say = (message: LockProcessMessage) => process.stdout.write(`${JSON.stringify({ ...message, at: at(), faults: counts })}\n`);

const client = new LockClient({ tableName: config.tableName, dynamodb: db, ownerId: config.ownerId, leaseMs: config.leaseMs, waitMs: config.waitMs, waiterLeaseMs: config.waiterLeaseMs, clock });
const store = new FencedStore<string>({ tableName: config.tableName, dynamodb: db, keyPrefix: config.keyPrefix });
let held: Lock | undefined;
let believedUntil = 0;

/** The end of the current belief on the shared clock; said again whenever it moves. */
const watchBelief = setInterval(() => {
  if (!held?.held) return;
  const until = at() + clock.toReal(held.remainingMs());
  if (until > believedUntil + 1) say({ belief: { token: held.fencingToken, until: (believedUntil = until) } });
}, 5);

// Warm up (connections, code paths) so that kills land in the holder's life, not in a cold start.
await client.inspect(`${config.keyPrefix}warm-up`).catch(() => undefined);
say({ ready: true });
for await (const line of createInterface({ input: process.stdin })) {
  const c = JSON.parse(line) as LockProcessCommand;
  if ("acquire" in c) {
    try {
      held = config.mode === "free-only" ? await acquireFreeOnly(client, c.acquire, config.waitMs, clock) : await client.acquire(c.acquire);
      believedUntil = at() + clock.toReal(held.remainingMs());
      say({ n: c.n, granted: { token: held.fencingToken, until: believedUntil } });
    } catch (err) {
      say({ n: c.n, failed: err instanceof LockTimeoutError ? "timeout" : "unknown", error: (err as Error).name });
    }
  } else if ("write" in c) {
    if (!held?.held || held.fencingToken !== c.write.token) {
      say({ n: c.n, written: "not-held" });
      continue;
    }
    try {
      await store.put(c.write.key, c.write.value, c.write.token);
      say({ n: c.n, written: "ok" });
    } catch (err) {
      say({ n: c.n, written: err instanceof StaleTokenError ? "stale" : "unknown", error: (err as Error).name });
    }
  } else {
    const lock = held;
    held = undefined;
    try {
      say({ n: c.n, released: lock ? await lock.release() : false });
    } catch (err) {
      say({ n: c.n, released: "unknown", error: (err as Error).name });
    }
  }
}
clearInterval(watchBelief);
db.destroy();
