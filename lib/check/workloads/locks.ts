/**
 * The lock workload: workers contend for a few lock names and, while holding one, write
 * to a fenced store under the lock's token, the way DDIA's storage service is guarded.
 * Some holders are paused (stop-the-world) for longer than the lease right before a
 * write, then write with the token they had: the new holder must have been granted, and
 * the paused holder's write must be rejected.
 *
 * Queues are long and hold dead waiters: half the operations go to one hot lock, and some
 * waiters crash while queued (their client is cut off from DynamoDB mid-wait and
 * abandoned, leaving its place behind, and sometimes an orphaned grant that only its lease
 * ends). The live waiters must still be granted within their wait.
 *
 * History (one fenced-mutex object per lock name, see models.ts): `acquire`, `write`,
 * `read`, `release`, and `leaseEnd`, the instant the holder stopped believing it held
 * the lock: the last moment its Lock said `held`, extended by `remainingMs()` converted
 * to real time with the worker's clock rate, or its release, whichever came first.
 *
 * Negative controls, which the checks must catch:
 * - `fencing: "off"`: writes go to a store that ignores tokens.
 * - `grant: "unconditional"`: a lock that reads the item and then writes it without a
 *   condition (the classic check-then-act race).
 */
import { DynamoDBClient, GetItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb";
import { injectFaults } from "../middleware.js";
import { fencedMutex } from "../models.js";
import { lockAnomalies } from "../invariants.js";
import { FencedStore } from "../../locks/fencing.js";
import { LockClient } from "../../locks/client.js";
import { LockTimeoutError, StaleTokenError } from "../../errors.js";
import type { MonotonicClock } from "../../locks/clock.js";
import { countOk, pauseFor, startWorkload, type Worker, type WorkloadEnvironment, type WorkloadResult } from "./workers.js";

export interface LockWorkloadOptions {
  workers?: number;
  locks?: number;
  leaseMs?: number;
  /** Chance that a holder is paused for 1.2–2 leases before one of its writes. Default 0.08. */
  pauseChance?: number;
  /** Chance that an operation is a waiter that crashes while queued. Default 0.05. */
  deadWaiterChance?: number;
  /** "off": the negative control with an unfenced store. */
  fencing?: "on" | "off";
  /** "unconditional": the negative control with a check-then-act lock. */
  grant?: "conditional" | "unconditional";
}

/** What the workload needs of a held lock. */
interface HeldLock {
  readonly fencingToken: number;
  readonly held: boolean;
  remainingMs(): number;
  release(): Promise<boolean>;
}

interface Store {
  put(key: string, value: string, token: number): Promise<void>;
  get(key: string): Promise<{ value: string; fencingToken: number } | undefined>;
}

export async function runLockWorkload(env: WorkloadEnvironment, options: LockWorkloadOptions = {}): Promise<WorkloadResult> {
  const control = options.fencing === "off" || options.grant === "unconditional";
  const name = options.fencing === "off" ? "locks, fencing off" : options.grant === "unconditional" ? "locks, unconditional grant" : "locks";
  const leaseMs = options.leaseMs ?? 1000;
  const pauseChance = options.pauseChance ?? 0.08;
  const run = startWorkload(env, name, options.workers ?? 8);
  const lockNames = Array.from({ length: options.locks ?? 4 }, (_, i) => `verify-${env.runId}-${control ? "control" : "lock"}-${i}`);
  const deadWaiterChance = options.grant === "unconditional" ? 0 : (options.deadWaiterChance ?? 0.05);
  // A dead place costs the next waiter one waiter lease (plus 1 s skew allowance): well within the wait.
  const waiterLeaseMs = leaseMs;
  let deadWaiters = 0;

  const acquirerFor = (w: Worker): ((lock: string) => Promise<HeldLock>) => {
    if (options.grant === "unconditional") return (lock) => unconditionalAcquire(w.dynamodb, env.tableName, lock, w.id, leaseMs, w.clock);
    const client = new LockClient({ tableName: env.tableName, dynamodb: w.dynamodb, ownerId: `${env.runId}-${w.id}`, leaseMs, waitMs: 4 * leaseMs, waiterLeaseMs, clock: w.clock });
    return (lock) => client.acquire(lock);
  };
  const storeFor = (w: Worker): Store =>
    options.fencing === "off"
      ? new UnfencedStore(w.dynamodb, env.tableName)
      : new FencedStore<string>({ tableName: env.tableName, dynamodb: w.dynamodb, keyPrefix: "fenced#" });

  const clients = new Map(run.workers.map((w) => [w.id, { acquire: acquirerFor(w), store: storeFor(w) }]));
  let writes = 0;

  await run.loop(async (w) => {
    const { acquire, store } = clients.get(w.id)!;
    const { recorder, pauses } = run;
    // Half the operations queue on one hot lock.
    const lockName = w.random.chance(0.5) ? lockNames[0]! : w.random.pick(lockNames);
    const spec = (f: string, input: object) => ({ process: w.id, key: lockName, f, input });
    if (w.random.chance(deadWaiterChance)) {
      // A waiter that crashes: a client of its own, cut off from DynamoDB after a while and
      // abandoned, leaving whatever it achieved (a place, perhaps a grant) behind.
      const dynamodb = new DynamoDBClient(env.dynamodb);
      let cut = false;
      injectFaults(dynamodb, () => (cut ? { kind: "lose-request" } : undefined));
      const ghost = new LockClient({ tableName: env.tableName, dynamodb, ownerId: `${env.runId}-${w.id}-dead${deadWaiters++}`, leaseMs, waitMs: 4 * leaseMs, waiterLeaseMs, clock: w.clock });
      const stop = new AbortController();
      const crashAfter = pauseFor(w.random.int(1, leaseMs)).then(() => {
        cut = true;
        stop.abort();
      });
      // Not recorded: a crashed process reports nothing, and it neither wrote nor read the
      // store. If it was granted, its token is a gap the model allows, and its lease ran out
      // unused; recording it as an unknown acquire would only widen the checker's search.
      await ghost.acquire(lockName, { signal: stop.signal }).catch(() => undefined);
      await crashAfter;
      dynamodb.destroy();
      return;
    }
    let lock: HeldLock | undefined;
    const grant = await recorder.record(
      spec("acquire", {}),
      async () => {
        lock = await acquire(lockName);
        return { token: lock.fencingToken };
      },
      (err) => (err instanceof LockTimeoutError ? { outcome: "fail" } : { outcome: "info" }),
    );
    if (!lock || grant.outcome !== "ok") return;
    const held = lock;
    const token = held.fencingToken;
    let beliefEnd = recorder.now();
    /** Is the lock still held? Extends the recorded belief if so. */
    const believe = () => {
      if (!held.held) return false;
      beliefEnd = Math.max(beliefEnd, recorder.now() + w.clock.toReal(held.remainingMs()));
      return true;
    };
    believe();
    const count = w.random.int(1, 3);
    for (let i = 0; i < count && believe(); i++) {
      if (w.random.chance(pauseChance)) {
        const from = recorder.now();
        await w.gate.pause(w.random.int(Math.round(leaseMs * 1.2), leaseMs * 2));
        pauses.push({ process: w.id, key: lockName, from, to: recorder.now() });
        // Woken from the pause, the worker goes on with its stale belief, as a GC-paused process would.
      }
      const value = `${w.id}:${token}:${writes++}`;
      await recorder.record(
        spec("write", { token, value }),
        async () => {
          await store.put(lockName, value, token);
          return "ok";
        },
        (err) => (err instanceof StaleTokenError ? { outcome: "ok", output: "stale" } : { outcome: "info" }),
      );
      if (w.random.chance(0.3)) {
        await recorder.record(
          spec("read", {}),
          async () => {
            const found = await store.get(lockName);
            return found ? { token: found.fencingToken, value: found.value } : null;
          },
          () => ({ outcome: "fail" }), // a read that fails changed nothing
        );
      }
      await pauseFor(w.random.int(0, 20));
    }
    believe();
    recorder.point(spec("leaseEnd", { token }), null, Math.min(beliefEnd, recorder.now()));
    await recorder.record(spec("release", { token }), async () => ({ released: await held.release() }));
  });

  return run.finish({
    control,
    model: fencedMutex,
    invariants: lockAnomalies,
    stats: (history) => ({
      grants: countOk(history, "acquire"),
      "writes accepted": countOk(history, "write", (o) => o === "ok"),
      "stale writes rejected": countOk(history, "write", (o) => o === "stale"),
      "dead waiters": deadWaiters,
    }),
  });
}

/** Negative control: a store that ignores fencing tokens. */
class UnfencedStore implements Store {
  constructor(
    private readonly dynamodb: DynamoDBClient,
    private readonly tableName: string,
  ) {}

  async put(key: string, value: string, token: number): Promise<void> {
    await this.dynamodb.send(
      new PutItemCommand({ TableName: this.tableName, Item: { pk: { S: `unfenced#${key}` }, value: { S: value }, fencingToken: { N: String(token) } } }),
    );
  }

  async get(key: string): Promise<{ value: string; fencingToken: number } | undefined> {
    const { Item } = await this.dynamodb.send(new GetItemCommand({ TableName: this.tableName, Key: { pk: { S: `unfenced#${key}` } }, ConsistentRead: true }));
    return Item?.["value"]?.S ? { value: Item["value"].S, fencingToken: Number(Item["fencingToken"]?.N) } : undefined;
  }
}

/** Negative control: read the lock item, and if it looks free, write it without a condition. */
async function unconditionalAcquire(dynamodb: DynamoDBClient, tableName: string, name: string, owner: string, leaseMs: number, clock: MonotonicClock): Promise<HeldLock> {
  const key = { pk: { S: `broken#${name}` } };
  const deadline = clock.now() + 4 * leaseMs;
  for (;;) {
    const { Item } = await dynamodb.send(new GetItemCommand({ TableName: tableName, Key: key, ConsistentRead: true }));
    const token = Number(Item?.["token"]?.N ?? 0);
    if (!Item?.["holder"]?.S || Number(Item["expires"]?.N) < Date.now()) {
      const sentAt = clock.now();
      await dynamodb.send(
        new PutItemCommand({ TableName: tableName, Item: { ...key, holder: { S: owner }, token: { N: String(token + 1) }, expires: { N: String(Date.now() + leaseMs) } } }),
      );
      let released = false;
      const until = sentAt + leaseMs * 0.9;
      return {
        fencingToken: token + 1,
        get held() {
          return !released && clock.now() < until;
        },
        remainingMs: () => Math.max(0, until - clock.now()),
        async release() {
          released = true;
          await dynamodb.send(new PutItemCommand({ TableName: tableName, Item: { ...key, token: { N: String(token + 1) } } }));
          return true;
        },
      };
    }
    if (clock.now() > deadline) throw new LockTimeoutError(name, 4 * leaseMs, Item["holder"].S);
    await pauseFor(5);
  }
}
