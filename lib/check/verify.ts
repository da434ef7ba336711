/**
 * A verification run: the lock, register, counter, broadcast and bank (two-phase commit) workloads side by side for the
 * chosen duration under seeded faults, then each negative control for a short while.
 *
 * The run passes only if every workload shows zero anomalies (an `unknown` checker
 * verdict counts as one) and every negative control is caught by at least one check.
 * Replaying a seed replays each worker's fault schedule, pauses and choices; the
 * interleaving still depends on timing.
 */
import type { DynamoDBClientConfig } from "@aws-sdk/client-dynamodb";
import type { FaultRates } from "./faults.js";
import { BANK_CONTROLS, runBankWorkload } from "./workloads/bank.js";
import { runBroadcastWorkload } from "./workloads/broadcast.js";
import { runCounterWorkload } from "./workloads/counter.js";
import { runLockWorkload } from "./workloads/locks.js";
import { runRegisterWorkload } from "./workloads/register.js";
import type { WorkloadEnvironment, WorkloadResult } from "./workloads/workers.js";

export const WORKLOADS = ["locks", "register", "counter", "broadcast", "bank"] as const;
export type WorkloadName = (typeof WORKLOADS)[number];

export interface VerifyOptions {
  /** DynamoDB client configuration (endpoint, region, credentials) of the cloud under test. */
  readonly dynamodb: DynamoDBClientConfig;
  /** The lock table (string partition key `pk`). */
  readonly tableName: string;
  /** Broadcast under test: the log table, the FIFO queue and SQS client configuration. Without it the broadcast workload is skipped. */
  readonly broadcast?: WorkloadEnvironment["broadcast"];
  /** Two-phase commit under test: the transaction table and SQS client configuration. Without it the bank workload is skipped. */
  readonly txn?: WorkloadEnvironment["txn"];
  /** Default: random. */
  readonly seed?: number;
  /** How long the workloads run. Default 60 000 ms. */
  readonly durationMs?: number;
  /** How long each negative control runs. Default: a sixth of the duration, between 5 and 15 s. */
  readonly controlMs?: number;
  readonly faults?: FaultRates;
  /** How many negative controls run at once. Default 4. */
  readonly controlConcurrency?: number;
  /** Run only these workloads (and their controls). Default: all that the environment allows. */
  readonly only?: readonly WorkloadName[];
  /** Progress: phase changes and operation counts, about once a second. */
  readonly onProgress?: (message: string) => void;
}

export interface ControlResult {
  readonly result: WorkloadResult;
  /** Whether some check flagged the broken variant (an `unknown` verdict does not count). */
  readonly caught: boolean;
}

export interface VerificationReport {
  readonly seed: number;
  readonly runId: string;
  readonly durationMs: number;
  readonly workloads: readonly WorkloadResult[];
  readonly controls: readonly ControlResult[];
  /** Zero anomalies in every workload and every control caught. */
  readonly passed: boolean;
}

export async function runVerification(options: VerifyOptions): Promise<VerificationReport> {
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const runId = `${seed.toString(36)}-${Date.now().toString(36)}`;
  const durationMs = options.durationMs ?? 60_000;
  const controlMs = options.controlMs ?? Math.min(15_000, Math.max(5_000, durationMs / 6));
  const counts = new Map<string, number>();
  const progress = (workload: string, operations: number) => {
    counts.set(workload, operations);
    options.onProgress?.([...counts].map(([name, n]) => `${name}: ${n} ops`).join(", "));
  };
  const env: WorkloadEnvironment = { dynamodb: options.dynamodb, tableName: options.tableName, broadcast: options.broadcast, txn: options.txn, seed, durationMs, runId, faults: options.faults, onProgress: progress };
  const started = performance.now();

  options.onProgress?.(`workloads running for ${(durationMs / 1000).toFixed(0)} s (seed ${seed})`);
  const wanted = (name: WorkloadName) => !options.only || options.only.includes(name);
  const locks = wanted("locks");
  const register = wanted("register");
  const counter = wanted("counter");
  const broadcast = wanted("broadcast") && env.broadcast !== undefined;
  const bank = wanted("bank") && env.txn !== undefined;
  const workloads = await Promise.all([
    ...(locks ? [runLockWorkload(env)] : []),
    ...(register ? [runRegisterWorkload(env)] : []),
    ...(counter ? [runCounterWorkload(env)] : []),
    ...(broadcast ? [runBroadcastWorkload(env)] : []),
    ...(bank ? [runBankWorkload(env)] : []),
  ]);

  counts.clear();
  options.onProgress?.(`negative controls running for ${(controlMs / 1000).toFixed(0)} s each, ${options.controlConcurrency ?? 4} at a time`);
  const controlEnv = { ...env, durationMs: controlMs };
  // Controls run a few at a time: starved of CPU, a control runs too few operations to
  // show its bug, and an uncaught control fails the run.
  const controlRuns: (() => Promise<WorkloadResult>)[] = [
    ...(locks ? [() => runLockWorkload(controlEnv, { fencing: "off", pauseChance: 0.3 }), () => runLockWorkload(controlEnv, { grant: "unconditional" })] : []),
    ...(register ? [() => runRegisterWorkload(controlEnv, { condition: "skipped" })] : []),
    ...(counter ? [() => runCounterWorkload(controlEnv, { atomic: false })] : []),
    ...(broadcast ? [() => runBroadcastWorkload(controlEnv, { cursor: "unchecked" }), () => runBroadcastWorkload(controlEnv, { dedup: "check-then-act" })] : []),
    ...(bank ? BANK_CONTROLS.map((control) => () => runBankWorkload(controlEnv, { control })) : []),
  ];
  const controls = (await inBatches(controlRuns, options.controlConcurrency ?? 4)).map((result) => ({ result, caught: result.anomalies.some((a) => a.kind !== "check-unknown") }));

  const passed = workloads.every((w) => w.anomalies.length === 0) && controls.every((c) => c.caught);
  return { seed, runId, durationMs: performance.now() - started, workloads, controls, passed };
}

/** Runs the tasks, at most `limit` at a time; results in the tasks' order. */
async function inBatches<T>(tasks: readonly (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const lane = async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, tasks.length)) }, lane));
  return results;
}
