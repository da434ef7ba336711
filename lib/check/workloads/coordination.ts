/**
 * The coordination workload: the coordination service (lib/coordination) as its users
 * lean on it, all in one namespace, under the harness's faults.
 *
 * Workers:
 * - Members (in this process): each opens a session (ttl 1.5 s) with an ephemeral key,
 *   runs `group.assignments(session, { partitions })` and, while it believes it owns a
 *   partition, writes to it through a FencedStore with the partition's fencing token.
 *   It consumes the assignments in a task of their own and works on the latest one, as a
 *   real member would, so it believes it owns (p, token) from receiving an assignment
 *   listing it until it receives one without it, its session's signal aborts, or it stops
 *   (stop, crash). That holds the service to more than the least its contract says
 *   (belief ends when the member asks for the next assignment): the generator gives a
 *   partition up only after the member has taken an assignment without it. Each member
 *   lives a few seconds and then stops in one of three ways, in turn: gracefully (stops
 *   its assignments, closes its session), by crashing (its client is cut off from
 *   DynamoDB and abandoned: no release, no close; the others must expire its session), or
 *   by a stop-the-world pause of two to three ttls before one of its first writes, after
 *   which it makes that write with the token it had (a GC pause: it must be fenced off if
 *   a successor wrote). Now and then it reads its own ephemeral key while it believes its
 *   session live.
 * - Member processes: the same member in a child process (coordination-process.ts), its
 *   writes asked for over stdin, killed with SIGKILL at a random moment of its life.
 * - Key-value clients: get, put, compareAndSet (from a revision they read, sometimes an
 *   older one) and delete on three keys, with unique values.
 * - Watchers: `watch(prefix, { fromRevision })` that stop every so often and resume from
 *   the revision after their last event; one watches everything from revision 1, one the
 *   key-value keys from a `list` snapshot (etcd's list-then-watch).
 * - View observers: `group.views()`, stopped and restarted every few seconds.
 * Faults: every client of every worker (and of every child) meets lost requests, lost
 * responses after the write applied, throttling and 5xx bursts, slow responses and
 * requests delivered late after the client gave up on them.
 *
 * After the run (faults off, late requests landed): a reaper expires every session left,
 * a sentinel key is written, every watcher catches up to it, and then:
 * - the key-value history is checked against the key-value register model, and the
 *   partitions' history (grants believed, beliefs' ends, fenced writes) against the fenced
 *   mutex, with lockAnomalies: no two owners whose beliefs overlap, every grant's token
 *   above the previous ones, no stale owner's fenced write accepted after a newer one;
 * - view agreement, watch completeness and the ephemeral keys' lifetime
 *   (coordination-invariants.ts).
 * Times: one clock for everything, the recorder's; a child process reports times on the
 * clock every process of the machine shares (performance.timeOrigin + now), converted.
 * Assumes, as the session's guarantee does, that no process is starved of the CPU for
 * longer than the session's safety margin (its signal would abort late, and a belief
 * recorded from it would look longer than it was).
 * Negative controls, each a broken variant the checks must catch:
 * - `watch-skip`: watchers resume from two past their last event, skipping one change;
 * - `unconditional-view`: membership changes are committed without their conditions
 *   (CoordinationStoreHooks.unsafeUnconditionalCommit), so two take one revision and epoch;
 * - `unfenced-rebalance`: partitions are granted without checking the previous grant or
 *   its owner's session (CoordinationStoreHooks.unsafeUnfencedGrants).
 */
import { DynamoDBClient, type DynamoDBClientConfig } from "@aws-sdk/client-dynamodb";
import { Coordination, type CoordinationHooks } from "../../coordination/coordination.js";
import { SessionReaper } from "../../coordination/reaper.js";
import type { PartitionGrant } from "../../coordination/assignment.js";
import { GROUPS_PREFIX, type Session } from "../../coordination/session.js";
import type { ChangeRecord } from "../../coordination/store.js";
import { CoordinationBusyError, InvalidArgumentError, OutcomeUnknownError, StaleTokenError } from "../../errors.js";
import { FencedStore } from "../../locks/fencing.js";
import { systemClock } from "../../locks/clock.js";
import { ephemeralAnomalies, viewAnomalies, watchAnomalies, type OwnKeyRead, type SeenView, type ViewRun, type WatchedEvent, type WatcherRecord } from "../coordination-invariants.js";
import { FAULT_KINDS, type FaultCounts, type FaultRates } from "../faults.js";
import type { Classification, HistoryRecorder, Operation } from "../history.js";
import { checkAnomalies, lockAnomalies } from "../invariants.js";
import { checkLinearizability } from "../linearizability.js";
import { injectedFailure, injectFaults } from "../middleware.js";
import { fencedMutex, kvRegister } from "../models.js";
import { countOk, pauseFor, serializableFaults, startWorkerChild, startWorkload, type Worker, type WorkloadEnvironment, type WorkloadResult } from "./workers.js";

/** A deliberately broken variant (see the module comment). */
export type CoordinationControl = "watch-skip" | "unconditional-view" | "unfenced-rebalance";
export const COORDINATION_CONTROLS: readonly CoordinationControl[] = ["watch-skip", "unconditional-view", "unfenced-rebalance"];

export interface CoordinationWorkloadOptions {
  /** Run a negative control instead of the correct system. */
  control?: CoordinationControl;
}

const CONTROL_NAMES: Record<CoordinationControl, string> = {
  "watch-skip": "coordination, watcher resumes past a change",
  "unconditional-view": "coordination, view change without its condition",
  "unfenced-rebalance": "coordination, rebalance without fencing",
};

const TTL_MS = 1500;
const PARTITIONS = 8;
const POLL_MS = 100;
const GROUP = "workers";
const MEMBER_PREFIX = `${GROUPS_PREFIX}${GROUP}/members/`;
const KV_KEYS = ["kv/k0", "kv/k1", "kv/k2"];
/** Written after the run: every watcher has caught up once it delivered this key. */
const SENTINEL = "kv/~end";

/** How many workers of each kind a run has, and how they behave. */
interface Plan {
  readonly members: number;
  readonly processes: number;
  readonly kv: number;
  /** Watchers' prefixes, one watcher each. */
  readonly watchers: readonly string[];
  readonly observers: number;
  /** A member's life, ms. */
  readonly life: readonly [number, number];
  /** A watcher's or observer's run between resumes, ms. */
  readonly watchLife: readonly [number, number];
  /**
   * How members' lives end, in turn (member i starts at the i-th): coverage, not luck, so a
   * short run on a loaded machine still pauses and crashes members.
   */
  readonly ends: readonly ("graceful" | "crash" | "pause")[];
}

const FULL_PLAN: Plan = { members: 3, processes: 1, kv: 2, watchers: ["", "kv/"], observers: 1, life: [2000, 6000], watchLife: [300, 3000], ends: ["pause", "graceful", "crash", "graceful"] };
/** Each control: the workers its bug shows in, short lives so it shows often. */
const CONTROL_PLANS: Record<CoordinationControl, Plan> = {
  "watch-skip": { members: 1, processes: 0, kv: 2, watchers: ["", ""], observers: 0, life: [1000, 3000], watchLife: [200, 800], ends: ["graceful"] },
  "unconditional-view": { members: 3, processes: 0, kv: 0, watchers: [""], observers: 2, life: [800, 2500], watchLife: [500, 2000], ends: ["graceful", "crash", "graceful"] },
  "unfenced-rebalance": { members: 3, processes: 0, kv: 0, watchers: [], observers: 0, life: [800, 2500], watchLife: [500, 2000], ends: ["graceful", "graceful", "crash", "graceful"] },
};

/** The seams a control sets on every client of its run. */
export function coordinationHooks(control: CoordinationControl | undefined): CoordinationHooks {
  if (control === "unconditional-view") return { store: { unsafeUnconditionalCommit: (operations) => operations.some((op) => op.group !== undefined) } };
  if (control === "unfenced-rebalance") return { store: { unsafeUnfencedGrants: true } };
  return {};
}

/** What a member in a child process needs (JSON). */
export interface MemberProcessConfig {
  readonly dynamodb: DynamoDBClientConfig;
  readonly tableName: string;
  readonly fencedTable: string;
  readonly keyPrefix: string;
  readonly namespace: string;
  readonly group: string;
  readonly partitions: number;
  readonly ttlMs: number;
  readonly pollMs: number;
  readonly ownerId: string;
  readonly seed: number;
  readonly faults: Omit<FaultRates, "requests">;
  readonly control: CoordinationControl | undefined;
}

/** One line a member process writes (see coordination-process.ts). */
export type MemberMessage = { at: number; faults?: FaultCounts } & (
  | { ready: true }
  | { session: string }
  | { ephemeral: string }
  | { assignment: { epoch: number; members: readonly string[]; partitions: readonly PartitionGrant[] } }
  | { lost: true }
  | { ended: string }
  | { write: number; result: "ok" | "stale" | "not-owner" | "error"; error?: string }
);

/** A session as its owner believes it (mutable while the run goes on). */
interface SessionRecord {
  readonly id: string;
  readonly process: string;
  readonly start: number;
  end: number;
}

/**
 * One member's beliefs in its partitions, as intervals on the recorder's clock: (p, token)
 * from the assignment that first listed it to the first that did not (or the end of all
 * belief). A grant believed again after a gap (its release failed, and the member found it
 * still its own) is one belief: nobody else can have held it in between.
 */
class PartitionBeliefs {
  readonly #open = new Map<number, { token: number; start: number }>();
  readonly #closed: { partition: number; token: number; start: number; end: number }[] = [];
  #over = false;

  /** The member received `partitions` at `at`. */
  update(partitions: readonly PartitionGrant[], at: number): void {
    if (this.#over) return;
    const now = new Map(partitions.map((g) => [g.id, g.fencingToken]));
    for (const [p, b] of this.#open) if (now.get(p) !== b.token) this.#close(p, at);
    for (const [p, token] of now) {
      if (this.#open.has(p)) continue;
      const earlier = this.#closed.findIndex((c) => c.partition === p && c.token === token);
      const start = earlier >= 0 ? this.#closed.splice(earlier, 1)[0]!.start : at;
      this.#open.set(p, { token, start });
    }
  }

  /** Every belief ends at `at` (the session was lost, the member stopped or died); later assignments are ignored. */
  end(at: number): void {
    for (const p of [...this.#open.keys()]) this.#close(p, at);
    this.#over = true;
  }

  /** The partitions believed now, with their tokens. */
  get believed(): [number, number][] {
    return [...this.#open].map(([p, b]) => [p, b.token]);
  }

  /** Records each belief as an `acquire` at its start and a `leaseEnd` at its end (the fenced mutex's operations). */
  emit(recorder: HistoryRecorder, process: string): void {
    for (const c of this.#closed) {
      const key = partitionKey(c.partition);
      recorder.point({ process, key, f: "acquire", input: {} }, { token: c.token }, c.start);
      recorder.point({ process, key, f: "leaseEnd", input: { token: c.token } }, null, Math.max(c.start, c.end));
    }
    this.#closed.length = 0;
  }

  #close(p: number, at: number): void {
    const b = this.#open.get(p);
    if (!b) return;
    this.#open.delete(p);
    this.#closed.push({ partition: p, token: b.token, start: b.start, end: at });
  }
}

const partitionKey = (p: number) => `partition/${p}`;

/** The fault rates a child process can be given (JSON: no request filter). */
/** A write of the coordination service: certainly not applied only if it says so. */
const classifyWrite = (err: unknown): Classification<never> => (err instanceof CoordinationBusyError || err instanceof InvalidArgumentError ? { outcome: "fail" } : { outcome: "info" });
const classifyFencedWrite = (err: unknown): Classification<string> =>
  err instanceof StaleTokenError ? { outcome: "ok", output: "stale" } : (err as Error | undefined)?.name === "NotOwner" ? { outcome: "fail" } : { outcome: "info" };
/** A value as the change log holds it (JSON text). */
const jsonOf = (value: unknown) => JSON.stringify(value) ?? "null";

export async function runCoordinationWorkload(env: WorkloadEnvironment, options: CoordinationWorkloadOptions = {}): Promise<WorkloadResult> {
  const setup = env.coordination;
  if (!setup) throw new InvalidArgumentError("env.coordination", "is required by the coordination workload (the coordination table)");
  const control = options.control;
  const name = control ? CONTROL_NAMES[control] : "coordination";
  const plan = control ? CONTROL_PLANS[control] : FULL_PLAN;
  const hooks = coordinationHooks(control);
  const namespace = `verify-${env.runId}${control ? `-${control}` : ""}`;
  const keyPrefix = `coord#${namespace}#`;
  const total = plan.members + plan.processes + plan.kv + plan.watchers.length + plan.observers;
  const run = startWorkload(env, name, total);
  const { recorder } = run;
  const deadline = run.started + env.durationMs;
  const roles = new Map<Worker, "member" | "process" | "kv" | "watcher" | "observer">();
  let next = 0;
  for (const [role, n] of [["member", plan.members], ["process", plan.processes], ["kv", plan.kv], ["watcher", plan.watchers.length], ["observer", plan.observers]] as const) {
    for (let i = 0; i < n; i++) roles.set(run.workers[next++]!, role);
  }
  const coordinationOf = (dynamodb: DynamoDBClient, w: Worker) => new Coordination({ tableName: setup.tableName, dynamodb, namespace, clock: w.clock, ownerId: `${env.runId}-${w.id}` }, hooks);
  const clients = new Map(run.workers.map((w) => [w, coordinationOf(w.dynamodb, w)]));

  const stats = { incarnations: 0, graceful: 0, crashed: 0, paused: 0, "assignments failed": 0, "processes started": 0, "watch resumes": 0, "watch failures": 0, "view runs": 0 };
  const sessions: SessionRecord[] = [];
  const viewRuns: ViewRun[] = [];
  const assignmentViews: SeenView[] = [];
  const ownKeyReads: OwnKeyRead[] = [];
  /** Clients of members, destroyed at the end (a crashed member's session must run out first). */
  const memberClients: DynamoDBClient[] = [];
  const background: Promise<unknown>[] = [];

  // --- members in this process ------------------------------------------------------
  const memberIndex = new Map([...roles].filter(([, role]) => role === "member").map(([w], i) => [w, i]));
  const lives = new Map<Worker, number>();
  const member = async (w: Worker) => {
    const dynamodb = new DynamoDBClient(env.dynamodb);
    memberClients.push(dynamodb);
    w.schedule.attach(dynamodb);
    w.gate.attach(dynamodb);
    let cut = false;
    injectFaults(dynamodb, () => (cut ? { kind: "lose-request" } : undefined));
    const coord = coordinationOf(dynamodb, w);
    const store = new FencedStore<string>({ tableName: env.tableName, dynamodb, keyPrefix });
    const opened = await recorder.record({ process: w.id, key: "sessions", f: "open-session", input: {} }, () => coord.openSession({ ttlMs: TTL_MS }));
    if (opened.outcome !== "ok" || !opened.output) return pauseFor(50);
    const session: Session = opened.output;
    stats.incarnations++;
    const belief: SessionRecord = { id: session.id, process: w.id, start: recorder.now(), end: Infinity };
    sessions.push(belief);
    const beliefs = new PartitionBeliefs();
    const endAll = (at: number) => {
      belief.end = Math.min(belief.end, at);
      beliefs.end(at);
    };
    session.signal.addEventListener("abort", () => endAll(recorder.now()), { once: true });
    const ephemeralKey = `eph/${session.id}/0`;
    const ephemeral = await recorder.record({ process: w.id, key: "ephemeral", f: "put", input: { key: ephemeralKey } }, async () => (await coord.put(ephemeralKey, w.id, { session })).revision, classifyWrite);

    const turn = lives.get(w) ?? memberIndex.get(w)!;
    lives.set(w, turn + 1);
    const mode = plan.ends[turn % plan.ends.length]!;
    // A life that ends in a pause lasts until it has paused (it needs a partition first,
    // which a loaded machine may take a whole life to grant), and a life that lost its
    // session first leaves the pause to the worker's next one: coverage by waiting, not luck.
    const life = w.random.int(...plan.life);
    const until = mode === "pause" ? deadline : Math.min(performance.now() + life, deadline);
    const stop = new AbortController();
    const consumer = (async () => {
      try {
        for await (const a of coord.group(GROUP).assignments(session, { partitions: PARTITIONS, pollMs: POLL_MS, signal: stop.signal, meta: { worker: w.id } })) {
          const at = recorder.now();
          if (belief.end < Infinity) continue; // stopped, crashed or lost: a dead member believes nothing
          assignmentViews.push({ observer: `${w.id} (member ${session.id.slice(0, 8)})`, epoch: a.epoch, members: a.members, at });
          if (session.live) beliefs.update(a.partitions, at);
        }
      } catch {
        // Ended by an error other than the session's end (transient errors do not end it; see assignment.ts).
        if (!cut && !session.signal.aborted) stats["assignments failed"]++;
      } finally {
        endAll(recorder.now());
      }
    })();

    let writes = 0;
    let pausedNow = false;
    const pauseAt = w.random.int(0, 3);
    const write = async (p: number, token: number) => {
      const value = `${w.id}:${token}:${writes++}`;
      return recorder.record(
        { process: w.id, key: partitionKey(p), f: "write", input: { token, value } },
        async () => {
          await store.put(`p${p}`, value, token);
          return "ok";
        },
        classifyFencedWrite,
      );
    };
    const readOwnKey = async () => {
      const before = session.live;
      const read = await recorder.record({ process: w.id, key: "ephemeral", f: "get", input: { key: ephemeralKey } }, async () => (await coord.get(ephemeralKey)) !== undefined, () => ({ outcome: "fail" }));
      if (read.outcome === "ok") ownKeyReads.push({ process: w.id, session: session.id, key: ephemeralKey, present: read.output === true, liveThroughout: before && session.live });
    };
    while (performance.now() < until && belief.end === Infinity) {
      const believed = beliefs.believed;
      if (believed.length === 0 || !session.live) {
        await pauseFor(20);
        continue;
      }
      const [p, token] = w.random.pick(believed);
      if (mode === "pause" && writes >= pauseAt) {
        stats.paused++;
        pausedNow = true;
        const from = recorder.now();
        await w.gate.pause(w.random.int(TTL_MS * 2, TTL_MS * 3));
        run.pauses.push({ process: w.id, key: partitionKey(p), from, to: recorder.now() });
        // Woken from the pause, it writes with what it believed before (a GC pause), then stops.
        await write(p, token);
        break;
      }
      if (ephemeral.outcome === "ok" && w.random.chance(0.1)) await readOwnKey();
      await write(p, token);
      await pauseFor(w.random.int(5, 30));
    }
    if (mode === "pause" && !pausedNow) lives.set(w, turn);

    if (mode === "crash") {
      // Dies: nothing more leaves it. Its session must be expired by the others.
      stats.crashed++;
      endAll(recorder.now());
      cut = true;
      background.push(consumer);
    } else {
      if (mode === "graceful") stats.graceful++;
      endAll(recorder.now());
      stop.abort();
      await consumer;
      await recorder.record({ process: w.id, key: "sessions", f: "close-session", input: {} }, () => session.close());
    }
    beliefs.emit(recorder, w.id);
  };

  // --- members in child processes, killed with SIGKILL ------------------------------
  const memberProcess = async (w: Worker) => {
    const lane = `${w.id}/process`;
    const beliefs = new PartitionBeliefs();
    let session: SessionRecord | undefined;
    let killedAt: number | undefined;
    let faults: FaultCounts | undefined;
    const endAll = (at: number) => {
      if (session) session.end = Math.min(session.end, at);
      beliefs.end(at);
    };
    const child = startMemberProcess(
      {
        dynamodb: env.dynamodb,
        tableName: setup.tableName,
        fencedTable: env.tableName,
        keyPrefix,
        namespace,
        group: GROUP,
        partitions: PARTITIONS,
        ttlMs: TTL_MS,
        pollMs: POLL_MS,
        ownerId: `${env.runId}-${lane}-${stats["processes started"]}`,
        seed: w.random.int(0, 2 ** 31 - 1),
        faults: serializableFaults(env.faults),
        control,
      },
      (m) => {
        if (m.faults) faults = m.faults;
        const at = m.at - performance.timeOrigin; // the shared clock, as this process's performance.now()
        if ("session" in m) sessions.push((session = { id: m.session, process: lane, start: at, end: Infinity }));
        else if ("assignment" in m) {
          if (!session || session.end < Infinity) return;
          assignmentViews.push({ observer: `${lane} (member ${session.id.slice(0, 8)})`, epoch: m.assignment.epoch, members: m.assignment.members, at });
          beliefs.update(m.assignment.partitions, at);
        } else if ("lost" in m || "ended" in m) endAll(at);
      },
    );
    stats["processes started"]++;
    if (await child.ready) {
      const kill = () => {
        const at = recorder.now();
        if (child.kill()) {
          killedAt = at;
          run.faults.sigkill++;
        }
      };
      const killer = setTimeout(kill, Math.max(1, Math.min(w.random.int(1000, 5000), deadline - performance.now())));
      let writes = 0;
      while (child.alive) {
        const believed = beliefs.believed;
        if (believed.length === 0) {
          if (session && session.end < Infinity) kill(); // its session is over: it has nothing left to do
          await pauseFor(20);
          continue;
        }
        const [p, token] = w.random.pick(believed);
        const value = `${lane}:${token}:${writes++}`;
        await recorder.record({ process: lane, key: partitionKey(p), f: "write", input: { token, value } }, () => child.write(p, token, value), classifyFencedWrite);
        await pauseFor(w.random.int(5, 30));
      }
      clearTimeout(killer);
    }
    await child.closed;
    endAll(killedAt ?? recorder.now());
    beliefs.emit(recorder, lane);
    if (faults) for (const kind of FAULT_KINDS) run.faults[kind] += faults[kind];
  };

  // --- key-value clients ------------------------------------------------------------
  let values = 0;
  /** What each client last learned of each key: (value, revision) pairs it saw, newest last. */
  const known = new Map<string, { value: string | null; revision: number }[]>();
  const learn = (w: Worker, key: string, pair: { value: string | null; revision: number }) => {
    const seen = known.get(`${w.id}/${key}`) ?? [];
    seen.push(pair);
    known.set(`${w.id}/${key}`, seen.slice(-4));
  };
  const text = (value: unknown): string | null => (value === undefined ? null : typeof value === "string" ? value : jsonOf(value));
  const kvClient = async (w: Worker) => {
    const coord = clients.get(w)!;
    const key = w.random.pick(KV_KEYS);
    const spec = (f: string, input: object) => ({ process: w.id, key, f, input });
    const r = w.random.next();
    if (r < 0.35) {
      const read = await recorder.record(
        spec("read", {}),
        async () => {
          const entry = await coord.get(key);
          return { value: entry ? text(entry.value) : null, revision: entry?.revision ?? 0 };
        },
        () => ({ outcome: "fail" }),
      );
      if (read.output) learn(w, key, read.output);
    } else if (r < 0.55) {
      const value = `${w.id}-${values++}`;
      const put = await recorder.record(spec("put", { value }), async () => ({ revision: (await coord.put(key, value)).revision }), classifyWrite);
      if (put.output) learn(w, key, { value, revision: put.output.revision });
    } else if (r < 0.85) {
      const seen = known.get(`${w.id}/${key}`) ?? [];
      // Mostly from the newest revision seen, sometimes from an older one (it must fail if the key moved on).
      const base = seen.length > 0 && w.random.chance(0.85) ? seen[seen.length - 1]! : seen.length > 0 && w.random.chance(0.7) ? w.random.pick(seen) : { value: null, revision: 0 };
      const value = `${w.id}-${values++}`;
      const cas = await recorder.record(
        spec("cas", { expected: base.value, expectedRevision: base.revision, value }),
        async () => {
          const result = await coord.compareAndSet(key, base.revision, value);
          return result.ok ? { ok: true as const, revision: result.revision, current: undefined } : { ok: false as const, value: result.current ? text(result.current.value) : null, current: result.current };
        },
        classifyWrite,
      );
      const out = cas.output;
      if (out?.ok) learn(w, key, { value, revision: out.revision });
      else if (out?.current) learn(w, key, { value: text(out.current.value), revision: out.current.revision });
    } else {
      const removed = await recorder.record(
        spec("delete", {}),
        async () => {
          const result = await coord.delete(key);
          return result.deleted ? { deleted: true, revision: result.revision } : { deleted: false };
        },
        classifyWrite,
      );
      if (removed.output) learn(w, key, { value: null, revision: 0 });
    }
    await pauseFor(w.random.int(0, 15));
  };

  // --- watchers -----------------------------------------------------------------------
  interface WatcherState {
    readonly record: { watcher: string; prefix: string; from: number; snapshot: Map<string, string>; events: WatchedEvent[]; caughtUp: boolean };
    /** The revision to resume from; undefined before the first start. */
    next: number | undefined;
  }
  const watchers = new Map<Worker, WatcherState>();
  [...roles].filter(([, role]) => role === "watcher").forEach(([w], i) => watchers.set(w, { record: { watcher: w.id, prefix: plan.watchers[i]!, from: 1, snapshot: new Map(), events: [], caughtUp: false }, next: undefined }));
  /** Watches from the resume point until `stop` aborts or `done` says so; false if the watch failed. */
  const watchOnce = async (w: Worker, stop: AbortController, done: (e: WatchedEvent) => boolean): Promise<boolean> => {
    const state = watchers.get(w)!;
    const coord = clients.get(w)!;
    const { record } = state;
    if (state.next === undefined) {
      if (record.prefix === "") state.next = 1;
      else {
        const snapshot = await coord.list(record.prefix).catch(() => undefined);
        if (!snapshot) return false;
        for (const e of snapshot.entries) record.snapshot.set(e.key, jsonOf(e.value));
        state.next = snapshot.revision + 1;
      }
      record.from = state.next;
    }
    try {
      for await (const ev of coord.watch(record.prefix, { fromRevision: state.next, signal: stop.signal, pollMs: 50 })) {
        const event: WatchedEvent = { revision: ev.revision, type: ev.type, key: ev.key, value: ev.type === "put" ? jsonOf(ev.value) : undefined, session: ev.session, cause: ev.cause, at: recorder.now() };
        record.events.push(event);
        // The rule: resume from the revision after the last event. The control skips one.
        state.next = ev.revision + (control === "watch-skip" ? 2 : 1);
        if (done(event)) stop.abort();
      }
      return true;
    } catch {
      stats["watch failures"]++;
      return false;
    }
  };
  const watcher = async (w: Worker) => {
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), Math.max(1, Math.min(w.random.int(...plan.watchLife), deadline - performance.now())));
    const ok = await watchOnce(w, stop, () => false);
    clearTimeout(timer);
    stats["watch resumes"]++;
    if (!ok) await pauseFor(50);
  };

  // --- view observers -----------------------------------------------------------------
  const observer = async (w: Worker) => {
    const group = clients.get(w)!.group(GROUP);
    const views: SeenView[] = [];
    const id = `${w.id} (views run ${stats["view runs"]++})`;
    viewRuns.push({ observer: id, views });
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), Math.max(1, Math.min(w.random.int(1000, 5000), deadline - performance.now())));
    try {
      for await (const view of group.views({ signal: stop.signal, pollMs: 50 })) {
        const at = recorder.now();
        views.push({ observer: id, epoch: view.epoch, members: view.members.map((m) => m.id), at });
        recorder.point({ process: w.id, key: "views", f: "view", input: {} }, { epoch: view.epoch, members: view.members.length }, at);
      }
    } catch {
      await pauseFor(50);
    } finally {
      clearTimeout(timer);
    }
  };

  await run.loop(async (w) => {
    const role = roles.get(w);
    if (role === "member") return member(w);
    if (role === "process") return memberProcess(w);
    if (role === "kv") return kvClient(w);
    if (role === "watcher") return watcher(w);
    return observer(w);
  });

  // --- quiesce: every session ends, every watcher catches up ----------------------------
  await Promise.race([Promise.allSettled(background), pauseFor(4 * TTL_MS)]);
  const adminClient = new DynamoDBClient(env.dynamodb); // no faults
  const admin = new Coordination({ tableName: setup.tableName, dynamodb: adminClient, namespace }, hooks);
  const reaper = new SessionReaper(admin.store, namespace, systemClock);
  // Bounds for a broken variant are short: its sessions or watchers may never settle, and it is caught anyway.
  const quiet = performance.now() + (control ? 3 * TTL_MS + 2000 : 6 * TTL_MS + 10_000);
  let live = await admin.store.listSessions(namespace, true);
  while (live.length > 0 && performance.now() < quiet) {
    await reaper.pass().catch(() => []);
    await pauseFor(POLL_MS);
    live = await admin.store.listSessions(namespace, true);
  }
  for (let tries = 0; tries < 5; tries++) if (await admin.put(SENTINEL, "end").then(() => true, () => false)) break;
  await Promise.all(
    [...watchers].map(async ([w, state]) => {
      const giveUp = performance.now() + (control ? 5000 : 30_000);
      while (!state.record.caughtUp && performance.now() < giveUp) {
        const stop = new AbortController();
        const timer = setTimeout(() => stop.abort(), Math.max(1, giveUp - performance.now()));
        await watchOnce(w, stop, (e) => (state.record.caughtUp = e.key === SENTINEL));
        clearTimeout(timer);
      }
    }),
  );
  const log: ChangeRecord[] = [];
  for (;;) {
    const page = await admin.store.readChanges(namespace, log.at(-1)?.revision ?? 0, 100);
    if (page.length === 0) break;
    log.push(...page);
  }
  const finalKeys = await admin.store.listKeys(namespace, "");
  adminClient.destroy();
  for (const client of memberClients) client.destroy();

  const watcherRecords: WatcherRecord[] = [...watchers.values()].map((s) => s.record);
  const everything = watcherRecords.find((r) => r.prefix === "");
  const isPartition = (op: Operation) => op.key.startsWith("partition/");
  const result = run.finish({
    control: control !== undefined,
    invariants: (history) => [
      ...lockAnomalies(history.filter(isPartition)),
      ...viewAnomalies(GROUP, MEMBER_PREFIX, log.filter((c) => c.key.startsWith(MEMBER_PREFIX)), viewRuns, assignmentViews),
      ...watchAnomalies(log, new Map(finalKeys.map((k) => [k.key, k.value])), watcherRecords),
      ...ephemeralAnomalies(
        finalKeys.filter((k) => k.session !== undefined).map((k) => ({ key: k.key, session: k.session })),
        live.map((s) => s.id),
        sessions,
        everything?.events.filter((e) => e.type === "delete") ?? [],
        ownKeyReads,
      ),
    ],
    stats: (history) => ({
      ...stats,
      sessions: sessions.length,
      "sessions expired": new Set(log.filter((c) => c.cause === "session-expired").map((c) => c.session)).size,
      "view epochs": Math.max(0, ...log.flatMap((c) => (c.epoch === undefined ? [] : [c.epoch]))),
      "views seen": viewRuns.reduce((n, r) => n + r.views.length, 0),
      grants: countOk(history.filter(isPartition), "acquire"),
      "writes accepted": countOk(history.filter(isPartition), "write", (o) => o === "ok"),
      "stale writes rejected": countOk(history.filter(isPartition), "write", (o) => o === "stale"),
      "watch events": watcherRecords.reduce((n, r) => n + r.events.length, 0),
      changes: log.length,
      "cas won": countOk(history, "cas", (o) => (o as { ok: boolean }).ok),
      "cas lost": countOk(history, "cas", (o) => !(o as { ok: boolean }).ok),
    }),
  });
  const checks = [checkLinearizability(kvRegister, result.history.filter((op) => KV_KEYS.includes(op.key))), checkLinearizability(fencedMutex, result.history.filter(isPartition))];
  return { ...result, checks, anomalies: [...result.anomalies, ...checks.flatMap(checkAnomalies)] };
}

/** A member in a child process (coordination-process.ts), driven over its stdin and stdout. */
interface MemberProcess {
  /** True once it is ready; false if it died first. */
  readonly ready: Promise<boolean>;
  /** Settles once it exited and everything it wrote has been read. */
  readonly closed: Promise<void>;
  readonly alive: boolean;
  /** Asks it to write; "ok" or "stale", or rejects: NotOwner (nothing written) or an unknown outcome. */
  write(partition: number, token: number, value: string): Promise<"ok" | "stale">;
  /** SIGKILL; false if it had already exited. */
  kill(): boolean;
}

function startMemberProcess(config: MemberProcessConfig, onMessage: (m: MemberMessage) => void): MemberProcess {
  let writes = 0;
  const waiting = new Map<number, { resolve: (r: "ok" | "stale") => void; reject: (e: unknown) => void }>();
  const child = startWorkerChild<MemberMessage>(
    "coordination-process",
    config,
    (m) => "ready" in m,
    (m) => {
      if ("write" in m) {
        const w = waiting.get(m.write);
        waiting.delete(m.write);
        if (m.result === "ok" || m.result === "stale") w?.resolve(m.result);
        else if (m.result === "not-owner") w?.reject(injectedFailure("NotOwner", "the member process no longer owned the partition with that token: it wrote nothing", 400));
        else w?.reject(new OutcomeUnknownError(`the member process's write failed: ${m.error ?? "?"}`));
      }
      onMessage(m);
    },
  );
  const closed = child.closed.then(() => {
    for (const w of waiting.values()) w.reject(new OutcomeUnknownError("the member process was killed before it answered"));
    waiting.clear();
  });
  return {
    ready: child.ready,
    closed,
    get alive() {
      return child.alive;
    },
    write: (partition, token, value) =>
      new Promise((resolve, reject) => {
        const n = writes++;
        waiting.set(n, { resolve, reject });
        if (child.send({ write: n, partition, token, value })) return;
        waiting.delete(n);
        reject(new OutcomeUnknownError("the member process is gone"));
      }),
    kill: () => child.kill(),
  };
}
