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
 * ends). The live waiters must still be granted within their wait, and after the run
 * (faults off, every process gone) a fresh waiter must be granted every lock within the
 * protocol's bounds: whatever dead holders and waiters left behind must not block it.
 *
 * Real crashes: some workers run their holders in child processes (locks-process.ts) and
 * kill each with SIGKILL at a moment chosen in turn from its life: queued, holding,
 * with a fenced write on the wire, between a write and the release, with the release on
 * the wire. Nothing of a killed holder is released: the others must wait out its lease,
 * and its in-flight write must be fenced off if it lands after a newer holder's. What the
 * checker may assume of a kill: the operation in flight may have happened or not; and
 * since nobody can tell a dead holder from a slow one, a killed holder's grant ends only
 * when its lease ends, as it last reported it (its `leaseEnd`), not at its death, so a
 * takeover before then is an overlap. A late write of the dead token must be rejected
 * once a newer token wrote, and the lock must not stay blocked beyond the protocol's
 * bounds (`lock-stuck`).
 *
 * Duplicates, as production makes them: the lock API has no operation id (an acquire is
 * known by the attempt id of each of its writes), so both forms are run. A holder's whole
 * cycle (acquire, writes, release) is now and then run twice at once by two clients of
 * the same owner, as a retried Lambda invocation would; and a write to a lock item is now
 * and then sent twice at once (duplicateRequests), the caller hearing either answer.
 *
 * History (one fenced-mutex object per lock name, see models.ts): `acquire`, `write`,
 * `read`, `release`, and `leaseEnd`, the instant the holder stopped believing it held
 * the lock: the last moment its Lock said `held`, extended by `remainingMs()` converted
 * to real time with the worker's clock rate, or its release, whichever came first. For a
 * holder in a child process: the end of the lease it last reported (even if it died). A
 * killed process's operation in flight is `info` (its outcome unknown: a grant it never
 * reported may have happened, a write may land later).
 * Checked: the fenced-mutex model and lockAnomalies (no overlapping beliefs, tokens
 * unique and increasing, no stale write accepted), `lock-stuck` (the final waiter was
 * not granted a lock in time), and `duplicate-grant` (a grant request delivered twice
 * that applied twice: two tokens for one attempt id). A waiter that times out during the
 * run is only counted: under the injected faults a lock can legitimately go 7 s without a
 * grant (a throttling burst stalls a waiter's client for 3–4 s of SDK backoff, on top of a
 * dead holder's lease and a dead place), so no wait short enough to matter tells
 * starvation from bad luck; the final probe, without faults, does.
 *
 * Negative controls, which the checks must catch (each with its exposing fault alone):
 * - `fencing: "off"`: writes go to a store that ignores tokens (paused holders).
 * - `grant: "unconditional"`: a lock that reads the item and then writes it without a
 *   condition (the classic check-then-act race).
 * - `grant: "reentrant"`: a grant whose condition lets the current holder's owner have
 *   the lock again (duplicate runs).
 * - `takeover: "free-only"`: waiters that never take over an expired lease (SIGKILL).
 * - `holderClock: "slow"`: holder processes whose clocks run at half speed, so a holder
 *   believes in its lease for twice as long as the others wait (SIGKILL: a live holder
 *   heartbeats in time and is never taken over; only a dead one's lease, which the
 *   history keeps until its reported end, shows the overlap).
 */
import { DynamoDBClient, type DynamoDBClientConfig } from "@aws-sdk/client-dynamodb";
import { duplicateRequests, injectedFailure, injectFaults, type Delivery, type RequestInfo } from "../middleware.js";
import { fencedMutex } from "../models.js";
import { lockAnomalies, stuckLocks, type Anomaly } from "../invariants.js";
import { FencedStore } from "../../locks/fencing.js";
import { LockClient } from "../../locks/client.js";
import { systemClock, type MonotonicClock } from "../../locks/clock.js";
import { PLACE_MARGIN_MS } from "../../locks/queue.js";
import { LockTimeoutError, OutcomeUnknownError, StaleTokenError } from "../../errors.js";
import { FAULT_KINDS, PauseGate, type FaultCounts, type FaultRates } from "../faults.js";
import type { Classification } from "../history.js";
import type { Random } from "../random.js";
import type { SkewedClock } from "../faults.js";
import { acquireFreeOnly, reentrantAcquire, unconditionalAcquire, UnfencedStore, type HeldLock, type Store } from "./broken-locks.js";
import { countOk, pauseFor, serializableFaults, startWorkerChild, startWorkload, type Worker, type WorkloadEnvironment, type WorkloadResult } from "./workers.js";

export interface LockWorkloadOptions {
  workers?: number;
  locks?: number;
  leaseMs?: number;
  /** Chance that a holder is paused for 1.2–2 leases before one of its writes. Default 0.08. */
  pauseChance?: number;
  /** Chance that an operation is a waiter that crashes while queued. Default 0.05. */
  deadWaiterChance?: number;
  /** Workers (beyond `workers`) whose holders run in child processes killed with SIGKILL. Default 1 (2 in the free-only control). */
  processes?: number;
  /** Chance that a holder's cycle is run twice at once by two clients of its owner. Default 0.08. */
  duplicateChance?: number;
  /** Chance that a write to a lock item is sent twice at once. Default 0.05. */
  duplicateRequestChance?: number;
  /** "off": the negative control with an unfenced store. */
  fencing?: "on" | "off";
  /** "unconditional" / "reentrant": the negative controls with a broken grant. */
  grant?: "conditional" | "unconditional" | "reentrant";
  /** "free-only": the negative control whose waiters never take over an expired lease. */
  takeover?: "expired" | "free-only";
  /** "slow": the negative control whose holder processes' clocks run at half speed (far beyond the lock's drift margin). */
  holderClock?: "true" | "slow";
}

/** The lock workload's negative controls, as verify.ts runs them. */
export const LOCK_CONTROLS: readonly LockWorkloadOptions[] = [{ fencing: "off", pauseChance: 0.3 }, { grant: "unconditional" }, { grant: "reentrant" }, { takeover: "free-only" }, { holderClock: "slow" }];

/** What a holder process needs (JSON, argv[2] of locks-process.ts). */
export interface LockProcessConfig {
  readonly dynamodb: DynamoDBClientConfig;
  readonly tableName: string;
  /** The fenced store's key prefix. */
  readonly keyPrefix: string;
  readonly ownerId: string;
  readonly leaseMs: number;
  readonly waitMs: number;
  readonly waiterLeaseMs: number;
  readonly seed: number;
  readonly maxDrift: number;
  readonly faults: Omit<FaultRates, "requests">;
  /** "free-only": acquire as the `takeover: "free-only"` control does. */
  readonly mode: "takeover" | "free-only";
  /** A fixed rate for the holder's clock instead of a random drift (the `holderClock: "slow"` control). */
  readonly clockRate?: number;
}

/** What a holder process is asked to do. */
export type LockProcessRequest = { acquire: string } | { write: { key: string; token: number; value: string } } | { release: true };
/** One line to a holder process: a request and its number, which the answer repeats. */
export type LockProcessCommand = { n: number } & LockProcessRequest;

/** One line from a holder process; `at` is on the shared clock (performance.timeOrigin + now). */
export type LockProcessMessage = { at?: number; faults?: FaultCounts } & (
  | { ready: true }
  | { belief: { token: number; until: number } }
  | { n: number; granted: { token: number; until: number } }
  | { n: number; failed: "timeout" | "unknown"; error?: string }
  | { n: number; written: "ok" | "stale" | "not-held" | "unknown"; error?: string }
  | { n: number; released: boolean | "unknown"; error?: string }
);

/** Where in a holder process's life its SIGKILL lands (the state it is in when it dies). */
const KILL_PHASES = ["queued", "holding", "writing", "written", "releasing"] as const;
type KillPhase = (typeof KILL_PHASES)[number];

/** How one holder reaches the lock and the store: the worker's own, or its duplicate's. */
interface Holder {
  readonly process: string;
  readonly acquire: (lock: string) => Promise<HeldLock>;
  readonly store: Store;
  readonly gate: PauseGate;
  readonly clock: SkewedClock;
}

/** The process name of the final waiter on each lock (see `lock-stuck`). */
const PROBE = "probe";

/** A real lock's item is `lock#<name>`; the broken locks' are theirs. */
const isLockItemWrite = (r: RequestInfo) => r.commandName === "UpdateItemCommand" && /^(lock|broken|reentrant)#verify-/.test(((r.input["Key"] as { pk?: { S?: string } } | undefined)?.pk?.S ?? ""));
const isGrant = (r: RequestInfo) => /holder = :me/.test(String(r.input["UpdateExpression"] ?? ""));
const grantedToken = (d: Delivery): number => Number((d.ok ? (d.output as { Attributes?: { token?: { N?: string } } } | undefined) : undefined)?.Attributes?.token?.N);

export async function runLockWorkload(env: WorkloadEnvironment, options: LockWorkloadOptions = {}): Promise<WorkloadResult> {
  const slowClock = options.holderClock === "slow";
  const control = options.fencing === "off" || options.grant === "unconditional" || options.grant === "reentrant" || options.takeover === "free-only" || slowClock;
  const name =
    options.fencing === "off"
      ? "locks, fencing off"
      : options.grant === "unconditional"
        ? "locks, unconditional grant"
        : options.grant === "reentrant"
          ? "locks, re-entrant grant (duplicate runs)"
          : options.takeover === "free-only"
            ? "locks, no takeover (SIGKILL)"
            : slowClock
              ? "locks, holder clock too slow (SIGKILL)"
              : "locks";
  // The duplicate and SIGKILL controls run with their own fault alone (the SDK's faults,
  // pauses and crashing waiters off), so that it is the one that exposes the bug.
  const alone = options.grant === "reentrant" || options.takeover === "free-only" || slowClock;
  const leaseMs = options.leaseMs ?? 1000;
  const pauseChance = alone ? 0 : (options.pauseChance ?? 0.08);
  // Each holder process costs a Node start (a second or two of CPU): few lanes, lives of a few cycles.
  const processes = options.processes ?? (options.takeover === "free-only" || slowClock ? 2 : control ? 0 : 1);
  const duplicateChance = options.duplicateChance ?? (options.grant === "reentrant" ? 0.3 : control ? 0 : 0.08);
  const duplicateRequestChance = options.duplicateRequestChance ?? (options.grant === "reentrant" ? 0.3 : control ? 0 : 0.05);
  const inProcess = options.workers ?? 8;
  const faultRates: FaultRates | undefined = alone ? { ...env.faults, rate: 0 } : env.faults;
  const run = startWorkload({ ...env, faults: faultRates }, name, inProcess + processes);
  const deadline = run.started + env.durationMs;
  const lockNames = Array.from({ length: options.locks ?? 4 }, (_, i) => `verify-${env.runId}-${control ? `control-${options.grant ?? options.takeover ?? (slowClock ? "slow-clock" : "fencing")}` : "lock"}-${i}`);
  const deadWaiterChance = options.grant === "unconditional" || alone ? 0 : (options.deadWaiterChance ?? 0.05);
  // A dead place costs the next waiter one waiter lease (plus 1 s skew allowance): well within the wait.
  const waiterLeaseMs = leaseMs;
  const waitMs = 4 * leaseMs;
  const { recorder, pauses } = run;
  let deadWaiters = 0;
  // Figures of the faults this run injects (a control without them shows none).
  const stats: Record<string, number> = {};
  if (duplicateChance > 0) stats["duplicate cycles"] = 0;
  if (processes > 0) {
    stats["holder processes"] = 0;
    for (const phase of KILL_PHASES) stats[`killed ${phase}`] = 0;
  }

  // --- duplicate grant requests -------------------------------------------------------
  const doubleGrants: Anomaly[] = [];
  const duplicatesInFlight = new Set<Promise<void>>();
  const duplicating = (db: DynamoDBClient, random: Random) =>
    duplicateRequests(
      db,
      (r) => (duplicateRequestChance > 0 && isLockItemWrite(r) && random.chance(duplicateRequestChance) ? { lagMs: random.int(0, 20), answer: random.chance(0.5) ? 1 : 0 } : undefined),
      (r, deliveries) => {
        if (!isGrant(r) || !deliveries[0].ok || !deliveries[1].ok) return;
        const attempt = (r.input["ExpressionAttributeValues"] as Record<string, { S?: string }>)[":attempt"]?.S ?? "?";
        const key = ((r.input["Key"] as { pk: { S: string } }).pk.S).replace(/^[a-z]+#/, "");
        doubleGrants.push({ kind: "duplicate-grant", key, detail: `grant attempt ${attempt} was delivered twice and applied twice: tokens ${grantedToken(deliveries[0])} and ${grantedToken(deliveries[1])}`, operations: [] });
      },
      (delivered) => {
        run.faults["duplicate-run"]++;
        duplicatesInFlight.add(delivered);
        void delivered.then(() => duplicatesInFlight.delete(delivered));
      },
    );
  for (const w of run.workers.slice(0, inProcess)) duplicating(w.dynamodb, w.random.fork("duplicate requests"));

  const acquirerFor = (db: DynamoDBClient, owner: string, clock: MonotonicClock, wait = waitMs): ((lock: string) => Promise<HeldLock>) => {
    if (options.grant === "unconditional") return (lock) => unconditionalAcquire(db, env.tableName, lock, owner, leaseMs, clock);
    if (options.grant === "reentrant") return (lock) => reentrantAcquire(db, env.tableName, lock, owner, leaseMs, clock);
    const client = new LockClient({ tableName: env.tableName, dynamodb: db, ownerId: owner, leaseMs, waitMs: wait, waiterLeaseMs, clock });
    return options.takeover === "free-only" ? (lock) => acquireFreeOnly(client, lock, wait, clock) : (lock) => client.acquire(lock);
  };
  const storeFor = (db: DynamoDBClient): Store =>
    options.fencing === "off" ? new UnfencedStore(db, env.tableName) : new FencedStore<string>({ tableName: env.tableName, dynamodb: db, keyPrefix: "fenced#" });

  const holders = new Map(run.workers.slice(0, inProcess).map((w) => [w.id, { process: w.id, acquire: acquirerFor(w.dynamodb, `${env.runId}-${w.id}`, w.clock), store: storeFor(w.dynamodb), gate: w.gate, clock: w.clock }]));
  /**
   * The worker's twin: another client of the same owner (its own DynamoDB client, faults
   * and pauses), as a second invocation of the same handler would be.
   */
  const twins = new Map<string, Holder>();
  const twinClients: DynamoDBClient[] = [];
  const twinOf = (w: Worker): Holder => {
    let twin = twins.get(w.id);
    if (!twin) {
      const db = new DynamoDBClient(env.dynamodb);
      w.schedule.attach(db);
      const gate = new PauseGate(run.faults);
      gate.attach(db);
      duplicating(db, w.random.fork("twin duplicate requests"));
      twin = { process: `${w.id}/dup`, acquire: acquirerFor(db, `${env.runId}-${w.id}`, w.clock), store: storeFor(db), gate, clock: w.clock };
      twins.set(w.id, twin);
      twinClients.push(db);
    }
    return twin;
  };
  let writes = 0;

  /** One holder's cycle on `lockName`: acquire, one to three fenced writes (maybe paused before one), release. */
  const cycle = async (h: Holder, random: Random, lockName: string) => {
    const spec = (f: string, input: object) => ({ process: h.process, key: lockName, f, input });
    let lock: HeldLock | undefined;
    const grant = await recorder.record(
      spec("acquire", {}),
      async () => {
        lock = await h.acquire(lockName);
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
      beliefEnd = Math.max(beliefEnd, recorder.now() + h.clock.toReal(held.remainingMs()));
      return true;
    };
    believe();
    const count = random.int(1, 3);
    for (let i = 0; i < count && believe(); i++) {
      if (random.chance(pauseChance)) {
        const from = recorder.now();
        await h.gate.pause(random.int(Math.round(leaseMs * 1.2), leaseMs * 2));
        pauses.push({ process: h.process, key: lockName, from, to: recorder.now() });
        // Woken from the pause, the worker goes on with its stale belief, as a GC-paused process would.
      }
      const value = `${h.process}:${token}:${writes++}`;
      await recorder.record(
        spec("write", { token, value }),
        async () => {
          await h.store.put(lockName, value, token);
          return "ok";
        },
        (err) => (err instanceof StaleTokenError ? { outcome: "ok", output: "stale" } : { outcome: "info" }),
      );
      if (random.chance(0.3)) {
        await recorder.record(
          spec("read", {}),
          async () => {
            const found = await h.store.get(lockName);
            return found ? { token: found.fencingToken, value: found.value } : null;
          },
          () => ({ outcome: "fail" }), // a read that fails changed nothing
        );
      }
      await pauseFor(random.int(0, 20));
    }
    believe();
    recorder.point(spec("leaseEnd", { token }), null, Math.min(beliefEnd, recorder.now()));
    await recorder.record(spec("release", { token }), async () => ({ released: await held.release() }));
  };

  /** Half the operations queue on one hot lock. */
  const pickLock = (random: Random) => (random.chance(0.5) ? lockNames[0]! : random.pick(lockNames));

  const inProcessWorker = async (w: Worker) => {
    const lockName = pickLock(w.random);
    if (w.random.chance(deadWaiterChance)) {
      // A waiter that crashes: a client of its own, cut off from DynamoDB after a while and
      // abandoned, leaving whatever it achieved (a place, perhaps a grant) behind.
      const dynamodb = new DynamoDBClient(env.dynamodb);
      let cut = false;
      injectFaults(dynamodb, () => (cut ? { kind: "lose-request" } : undefined));
      const ghost = new LockClient({ tableName: env.tableName, dynamodb, ownerId: `${env.runId}-${w.id}-dead${deadWaiters++}`, leaseMs, waitMs, waiterLeaseMs, clock: w.clock });
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
    if (w.random.chance(duplicateChance)) {
      // The same cycle run twice at once by two clients of one owner (a retried invocation).
      // Both may be granted, one after the other, never at once and never with one token.
      run.faults["duplicate-run"]++;
      stats["duplicate cycles"]!++;
      await Promise.all([cycle(holders.get(w.id)!, w.random.fork(`cycle-${writes}`), lockName), cycle(twinOf(w), w.random.fork(`twin-${writes}`), lockName)]);
      return;
    }
    await cycle(holders.get(w.id)!, w.random, lockName);
  };

  // --- holders in child processes, killed with SIGKILL --------------------------------
  const processWorker = async (w: Worker) => {
    const lane = `${w.id}/process`;
    const life = stats["holder processes"]!++;
    let faults: FaultCounts | undefined;
    /** The end of the current grant's belief as the child last said it (recorder clock). */
    let believed = { token: 0, until: 0 };
    const waiting = new Map<number, (m: LockProcessMessage) => void>();
    let asked = 0;
    const config: LockProcessConfig = {
      dynamodb: env.dynamodb,
      tableName: env.tableName,
      keyPrefix: "fenced#",
      ownerId: `${env.runId}-${lane}-${life}`,
      leaseMs,
      waitMs,
      waiterLeaseMs,
      seed: w.random.int(0, 2 ** 31 - 1),
      maxDrift: env.maxDrift ?? 0.01,
      faults: serializableFaults(faultRates),
      mode: options.takeover === "free-only" ? "free-only" : "takeover",
      ...(slowClock ? { clockRate: 0.5 } : {}),
    };
    const child = startWorkerChild<LockProcessMessage>(
      "locks-process",
      config,
      (m) => "ready" in m,
      (m) => {
        if (m.faults) faults = m.faults;
        if ("belief" in m && m.belief.token === believed.token) believed.until = Math.max(believed.until, m.belief.until - performance.timeOrigin);
        if ("n" in m) {
          waiting.get(m.n)?.(m);
          waiting.delete(m.n);
        }
      },
    );
    void child.closed.then(() => {
      for (const answer of waiting.values()) answer({ n: -1, failed: "unknown", error: "killed" });
      waiting.clear();
    });
    const ask = (command: LockProcessRequest) =>
      new Promise<LockProcessMessage>((resolve) => {
        const n = asked++;
        waiting.set(n, resolve);
        if (!child.send({ ...command, n })) {
          waiting.delete(n);
          resolve({ n, failed: "unknown", error: "gone" });
        }
      });
    const unknown = (m: LockProcessMessage) => new OutcomeUnknownError(`the holder process answered ${JSON.stringify(m)}${child.alive ? "" : " (it was killed)"}`);

    // The kill: in the child's first or second cycle, in the phase whose turn it is (in the
    // SIGKILL controls, in its first cycle while it holds the lock).
    const killHolding = options.takeover === "free-only" || slowClock;
    const victim = killHolding ? 0 : w.random.int(0, 1);
    const target = killHolding ? "holding" : KILL_PHASES[life % KILL_PHASES.length]!;
    let phase: KillPhase | "idle" = "idle";
    let killer: NodeJS.Timeout | undefined;
    const kill = () => {
      if (child.kill()) {
        run.faults.sigkill++;
        stats[`killed ${phase === "idle" ? "holding" : phase}`]!++;
      }
    };
    /** Enters `next`; if it is the target of the victim cycle, the kill comes within `withinMs`. */
    const enter = (next: KillPhase, k: number, withinMs: number) => {
      phase = next;
      if (k === victim && next === target && killer === undefined) killer = setTimeout(kill, w.random.int(0, Math.max(0, Math.round(withinMs))));
    };
    const took = { acquire: leaseMs / 4, write: 20, release: 20 };
    const timed = async <T>(what: keyof typeof took, body: () => Promise<T>): Promise<T> => {
      const from = performance.now();
      try {
        return await body();
      } finally {
        took[what] = (took[what] + (performance.now() - from)) / 2;
      }
    };

    if (await child.ready) {
      for (let k = 0; child.alive && performance.now() < deadline; k++) {
        // Any lock, uniformly: behind the hot lock's queue a child would spend its short life waiting.
        const lockName = w.random.pick(lockNames);
        const spec = (f: string, input: object) => ({ process: lane, key: lockName, f, input });
        enter("queued", k, took.acquire);
        const grant = await recorder.record(
          spec("acquire", {}),
          () =>
            timed("acquire", async () => {
              const m = await ask({ acquire: lockName });
              if ("granted" in m) {
                believed = { token: m.granted.token, until: m.granted.until - performance.timeOrigin };
                return { token: m.granted.token };
              }
              throw "failed" in m && m.failed === "timeout" ? new LockTimeoutError(lockName, waitMs, undefined) : unknown(m);
            }),
          (err): Classification<{ token: number }> => (err instanceof LockTimeoutError ? { outcome: "fail" } : { outcome: "info" }),
        );
        if (grant.outcome !== "ok") continue;
        const token = believed.token;
        // Holding, and after each write, the child idles 10-30 ms: a kill aimed there lands there.
        enter("holding", k, 5);
        await pauseFor(w.random.int(10, 30));
        const count = w.random.int(1, 3);
        for (let i = 0; i < count && child.alive && recorder.now() < believed.until; i++) {
          const value = `${lane}:${token}:${writes++}`;
          enter("writing", k, took.write);
          await recorder.record(
            spec("write", { token, value }),
            () =>
              timed("write", async () => {
                const m = await ask({ write: { key: lockName, token, value } });
                if ("written" in m && (m.written === "ok" || m.written === "stale")) return m.written;
                throw "written" in m && m.written === "not-held" ? injectedFailure("NotHeld", "the holder process no longer believed it held the lock with that token: it wrote nothing", 400) : unknown(m);
              }),
            (err): Classification<string> => ((err as Error).name === "NotHeld" ? { outcome: "fail" } : { outcome: "info" }),
          );
          enter("written", k, 5);
          await pauseFor(w.random.int(10, 30));
        }
        if (!child.alive) {
          // Killed while holding. Nobody can tell a dead holder from a slow one, so its grant
          // ends only when its lease ends, as it last reported it (not at its death): a grant
          // to anyone else before then is an overlap, whether or not the holder is alive.
          await child.closed;
          recorder.point(spec("leaseEnd", { token }), null, believed.until);
          break;
        }
        recorder.point(spec("leaseEnd", { token }), null, Math.min(believed.until, recorder.now()));
        enter("releasing", k, took.release);
        await recorder.record(spec("release", { token }), () =>
          timed("release", async () => {
            const m = await ask({ release: true });
            if ("released" in m && typeof m.released === "boolean") return { released: m.released };
            throw unknown(m);
          }),
        );
      }
    }
    clearTimeout(killer);
    child.kill(); // the run is over (or the child died before it was ready): not a fault
    await child.closed;
    if (faults) for (const kind of FAULT_KINDS) run.faults[kind] += faults[kind];
  };

  const processWorkers = new Set(run.workers.slice(inProcess));
  await run.loop((w) => (processWorkers.has(w) ? processWorker(w) : inProcessWorker(w)));
  while (duplicatesInFlight.size > 0) await Promise.all([...duplicatesInFlight]);

  // Liveness, after the run: faults off, every holder process gone. A fresh waiter on each
  // lock must be granted within what the protocol allows whatever was left behind: a dead
  // holder's lease, then a window of dead places (their lease and margin), twice over.
  const probeDb = new DynamoDBClient(env.dynamodb);
  const probeWaitMs = 2 * (leaseMs + waiterLeaseMs + PLACE_MARGIN_MS);
  const probe = acquirerFor(probeDb, `${env.runId}-${PROBE}`, systemClock, probeWaitMs);
  await Promise.all(
    lockNames.map(async (lockName) => {
      const spec = (f: string, input: object) => ({ process: PROBE, key: lockName, f, input });
      let lock: HeldLock | undefined;
      await recorder.record(spec("acquire", {}), async () => {
        lock = await probe(lockName);
        return { token: lock.fencingToken };
      }, (err) => (err instanceof LockTimeoutError ? { outcome: "fail" } : { outcome: "info" }));
      if (!lock) return;
      const held = lock;
      recorder.point(spec("leaseEnd", { token: held.fencingToken }), null, recorder.now());
      await recorder.record(spec("release", { token: held.fencingToken }), async () => ({ released: await held.release() }));
    }),
  );
  probeDb.destroy();
  for (const db of twinClients) db.destroy();

  return run.finish({
    control,
    model: fencedMutex,
    invariants: (history) => [...lockAnomalies(history), ...stuckLocks(history, PROBE), ...doubleGrants],
    stats: (history) => ({
      grants: countOk(history, "acquire"),
      "writes accepted": countOk(history, "write", (o) => o === "ok"),
      "stale writes rejected": countOk(history, "write", (o) => o === "stale"),
      "acquires timed out": history.filter((op) => op.f === "acquire" && op.outcome === "fail").length,
      "dead waiters": deadWaiters,
      ...stats,
    }),
  });
}

