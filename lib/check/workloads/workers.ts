/**
 * What every workload shares: its workers (each with its own DynamoDB client, fault
 * schedule, pause gate and skewed clock, all forked from the run's seed), the loop that
 * runs them until the deadline, the shape of a workload's result, and the worker
 * processes that runs kill with SIGKILL (started, spoken to in JSON lines, killed).
 */
import { DynamoDBClient, type DynamoDBClientConfig } from "@aws-sdk/client-dynamodb";
import type { SQSClientConfig } from "@aws-sdk/client-sqs";
import { spawn, type ChildProcessByStdio } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, extname, join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { fileURLToPath, pathToFileURL } from "node:url";
import { checkLinearizability, type CheckResult, type Model } from "../linearizability.js";
import type { Operation } from "../history.js";
import { createInterface } from "node:readline";
import { emptyFaultCounts, FaultSchedule, PauseGate, SkewedClock, type FaultCounts, type FaultRates } from "../faults.js";
import { HistoryRecorder } from "../history.js";
import { Random } from "../random.js";
import { checkAnomalies, type Anomaly } from "../invariants.js";

export interface WorkloadEnvironment {
  /** Configuration of the DynamoDB clients the workers create (endpoint, region, credentials). */
  readonly dynamodb: DynamoDBClientConfig;
  /** A table with string partition key `pk` (the lock table). */
  readonly tableName: string;
  /** For the broadcast workload: the log table, the FIFO queue and the SQS client configuration. */
  readonly broadcast?: { readonly logTable: string; readonly queueUrl: string; readonly sqs: SQSClientConfig };
  /** For the bank workload: the transaction table and the SQS client configuration (it creates its outbox queue). */
  readonly txn?: { readonly tableName: string; readonly sqs: SQSClientConfig };
  /** For the coordination workload: the coordination table (pk S, sk S; fenced writes go to `tableName`). */
  readonly coordination?: { readonly tableName: string };
  readonly seed: number;
  readonly durationMs: number;
  /** Keeps this run's items apart from earlier runs' on the same table. */
  readonly runId: string;
  readonly faults?: FaultRates;
  /** Largest clock drift of a worker, as a fraction. Default 0.01 (the lock's margin is 5% at 1 s). */
  readonly maxDrift?: number;
  /** Called about once a second with the number of operations recorded so far. */
  readonly onProgress?: (workload: string, operations: number) => void;
}

export interface Pause {
  readonly process: string;
  /** The object the worker was working on (the lock it held). */
  readonly key: string;
  readonly from: number;
  readonly to: number;
}

export interface WorkloadResult {
  readonly name: string;
  /** True for a negative control: a deliberately broken variant the checks must catch. */
  readonly control: boolean;
  readonly seed: number;
  readonly durationMs: number;
  readonly faults: FaultCounts;
  readonly outcomes: Record<"ok" | "fail" | "info", number>;
  readonly checks: readonly CheckResult[];
  readonly anomalies: readonly Anomaly[];
  readonly history: readonly Operation[];
  readonly pauses: readonly Pause[];
  /** Workload-specific figures: stale writes rejected, CAS that lost, ... */
  readonly stats: Readonly<Record<string, number>>;
}

export interface Worker {
  readonly id: string;
  readonly random: Random;
  readonly dynamodb: DynamoDBClient;
  readonly schedule: FaultSchedule;
  readonly gate: PauseGate;
  readonly clock: SkewedClock;
}

export interface WorkloadRun {
  readonly recorder: HistoryRecorder;
  readonly faults: FaultCounts;
  readonly workers: readonly Worker[];
  readonly pauses: Pause[];
  readonly started: number;
  /**
   * Runs `body` in every worker until the duration is over; then turns faults off and waits
   * for late requests to land. With `covered`, a run whose duration is over goes on while
   * `covered()` is false, up to EXTENSION_FACTOR durations in all: coverage that depends on
   * how many operations ran (a loaded machine runs fewer) is then reached by waiting for
   * it, not by luck.
   */
  loop(body: (worker: Worker) => Promise<void>, covered?: () => boolean): Promise<void>;
  /**
   * Ends the run: closes the clients, checks the history against `model` and the direct
   * invariants, and assembles the result.
   */
  finish<S, I, O>(check: WorkloadCheck<S, I, O>): WorkloadResult;
}

/** How a workload's history is judged and summarised. */
export interface WorkloadCheck<S, I, O> {
  readonly control: boolean;
  /** The sequential model the history is checked against; none for invariant-only workloads. */
  readonly model?: Model<S, I, O>;
  readonly invariants: (history: readonly Operation[]) => Anomaly[];
  readonly stats: (history: readonly Operation[]) => Record<string, number>;
}

/** How many durations a run whose coverage condition is not met yet may take in all. */
export const EXTENSION_FACTOR = 2;

export function startWorkload(env: WorkloadEnvironment, name: string, workers: number): WorkloadRun {
  const random = new Random(env.seed).fork(name);
  const faults = emptyFaultCounts();
  const recorder = new HistoryRecorder();
  const pool: Worker[] = Array.from({ length: workers }, (_, i) => {
    const own = random.fork(`worker-${i}`);
    const dynamodb = new DynamoDBClient(env.dynamodb);
    const schedule = new FaultSchedule(own.fork("faults"), faults, env.faults);
    const gate = new PauseGate(faults);
    schedule.attach(dynamodb);
    gate.attach(dynamodb);
    return { id: `w${i}`, random: own, dynamodb, schedule, gate, clock: new SkewedClock(own.fork("clock"), env.maxDrift ?? 0.01) };
  });
  const started = performance.now();
  const deadline = started + env.durationMs;
  return {
    recorder,
    faults,
    workers: pool,
    pauses: [],
    started,
    async loop(body, covered) {
      const progress = setInterval(() => env.onProgress?.(name, recorder.size), 1000);
      const limit = started + env.durationMs * EXTENSION_FACTOR;
      const going = () => performance.now() < deadline || (covered !== undefined && !covered() && performance.now() < limit);
      try {
        await Promise.all(
          pool.map(async (worker) => {
            while (going()) await body(worker);
          }),
        );
      } finally {
        clearInterval(progress);
        // The run is over: no new faults, and every request still in the network lands
        // before the workload looks at the final state.
        for (const w of pool) w.schedule.disable();
        await Promise.all(pool.map((w) => w.schedule.landed()));
      }
    },
    finish({ control, model, invariants, stats }) {
      for (const w of pool) w.dynamodb.destroy();
      const history = recorder.operations;
      const check = model ? checkLinearizability(model, history) : undefined;
      return {
        name,
        control,
        seed: env.seed,
        durationMs: performance.now() - started,
        faults,
        outcomes: outcomesOf(history),
        checks: check ? [check] : [],
        anomalies: [...invariants(history), ...(check ? checkAnomalies(check) : [])],
        history,
        pauses: this.pauses,
        stats: stats(history),
      };
    },
  };
}

/** How many ok operations named `f` had an output satisfying `test`. */
export function countOk(history: readonly Operation[], f: string, test: (output: unknown) => boolean = () => true): number {
  return history.filter((op) => op.outcome === "ok" && op.f === f && test(op.output)).length;
}

/** Counts a history's outcomes. */
export function outcomesOf(history: readonly Operation[]): Record<"ok" | "fail" | "info", number> {
  const counts = { ok: 0, fail: 0, info: 0 };
  for (const op of history) counts[op.outcome]++;
  return counts;
}

export const pauseFor = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Starts the worker script `name` (a file of this folder, named without its extension) in
 * a child process, with `config` as JSON in argv[2], its stdin and stdout piped (stderr is
 * this process's). Running from TypeScript source, the child loads tsx's loader first.
 */
export function spawnWorkerProcess(name: string, config: unknown): ChildProcessByStdio<Writable, Readable, null> {
  const self = fileURLToPath(import.meta.url);
  const script = join(dirname(self), `${name}${extname(self)}`);
  const loader = extname(self) === ".ts" ? ["--import", pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href] : [];
  const child = spawn(process.execPath, [...loader, script, JSON.stringify(config)], { stdio: ["pipe", "pipe", "inherit"] });
  child.stdin.on("error", () => undefined); // writing to a killed child
  return child;
}

/** Fault rates as a child process receives them (JSON): everything but the request filter. */
export function serializableFaults(rates: FaultRates | undefined): Omit<FaultRates, "requests"> {
  const { requests: _requests, ...rest } = rates ?? {};
  return rest;
}

/** A worker script in a child process, spoken to in JSON lines (see `startWorkerChild`). */
export interface WorkerChild {
  /** True once the child said it is ready; false if it died first. */
  readonly ready: Promise<boolean>;
  /** Settles once the child exited and every line it wrote has been handled. */
  readonly closed: Promise<void>;
  /** False from the moment the child exited. */
  readonly alive: boolean;
  /** Writes `message` as one line to its stdin; false if the child is gone. */
  send(message: object): boolean;
  /** SIGKILL; false if it had already exited or been killed (so a caller counts each kill once). */
  kill(): boolean;
}

/**
 * Starts the worker script `name` (see `spawnWorkerProcess`) and reads its stdout as
 * JSON lines: each goes to `onMessage` (a line cut short by a kill is dropped), and the
 * first for which `isReady` holds resolves `ready`. `onExit` runs when the process exits,
 * before the lines still buffered have been handled; `closed` settles after them.
 */
export function startWorkerChild<M>(name: string, config: unknown, isReady: (m: M) => boolean, onMessage: (m: M) => void, onExit?: () => void): WorkerChild {
  const child = spawnWorkerProcess(name, config);
  let alive = true;
  let killed = false;
  let onReady!: (ok: boolean) => void;
  const ready = new Promise<boolean>((r) => (onReady = r));
  child.on("exit", () => {
    alive = false;
    onReady(false);
    onExit?.();
  });
  const closed = new Promise<void>((resolve) => child.on("close", () => resolve()));
  createInterface({ input: child.stdout }).on("line", (line) => {
    let m: M;
    try {
      m = JSON.parse(line) as M;
    } catch {
      return; // a line cut short by the kill
    }
    if (isReady(m)) onReady(true);
    onMessage(m);
  });
  return {
    ready,
    closed,
    get alive() {
      return alive;
    },
    send: (message) => alive && child.stdin.write(`${JSON.stringify(message)}\n`) !== undefined,
    kill: () => {
      if (!alive || killed) return false;
      killed = true;
      return child.kill("SIGKILL");
    },
  };
}
