/**
 * A verification run: the lock, register, counter, broadcast, bank (two-phase commit) and
 * coordination workloads side by side for the chosen duration under seeded faults, then
 * each negative control for a short while.
 *
 * The run passes only if every workload shows zero anomalies (an `unknown` checker
 * verdict counts as one) and every negative control is caught by at least one check (a
 * control missed by its short run gets one more run, twice as long).
 * Replaying a seed replays each worker's fault schedule, pauses and choices; the
 * interleaving still depends on timing.
 */
import type { DynamoDBClientConfig } from "@aws-sdk/client-dynamodb";
import type { FaultRates } from "./faults.js";
import { BANK_CONTROLS, runBankWorkload } from "./workloads/bank.js";
import { runBroadcastWorkload } from "./workloads/broadcast.js";
import { COORDINATION_CONTROLS, runCoordinationWorkload } from "./workloads/coordination.js";
import { runCounterWorkload } from "./workloads/counter.js";
import { LOCK_CONTROLS, runLockWorkload } from "./workloads/locks.js";
import { runRegisterWorkload } from "./workloads/register.js";
import type { WorkloadEnvironment, WorkloadResult } from "./workloads/workers.js";

export const WORKLOADS = ["locks", "register", "counter", "broadcast", "bank", "coordination"] as const;
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
  /** Coordination service under test: its table. Without it the coordination workload is skipped. */
  readonly coordination?: WorkloadEnvironment["coordination"];
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
  /** 2 when the first, short run missed it and this result is from the longer second run. */
  readonly attempts?: number;
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
  const env: WorkloadEnvironment = { dynamodb: options.dynamodb, tableName: options.tableName, broadcast: options.broadcast, txn: options.txn, coordination: options.coordination, seed, durationMs, runId, faults: options.faults, onProgress: progress };
  const started = performance.now();

  options.onProgress?.(`workloads running for ${(durationMs / 1000).toFixed(0)} s (seed ${seed})`);
  const wanted = (name: WorkloadName) => !options.only || options.only.includes(name);
  const locks = wanted("locks");
  const register = wanted("register");
  const counter = wanted("counter");
  const broadcast = wanted("broadcast") && env.broadcast !== undefined;
  const bank = wanted("bank") && env.txn !== undefined;
  const coordination = wanted("coordination") && env.coordination !== undefined;
  const workloads = await Promise.all([
    ...(locks ? [runLockWorkload(env)] : []),
    ...(register ? [runRegisterWorkload(env)] : []),
    ...(counter ? [runCounterWorkload(env)] : []),
    ...(broadcast ? [runBroadcastWorkload(env)] : []),
    ...(bank ? [runBankWorkload(env)] : []),
    ...(coordination ? [runCoordinationWorkload(env)] : []),
  ]);

  counts.clear();
  options.onProgress?.(`negative controls running for ${(controlMs / 1000).toFixed(0)} s each, ${options.controlConcurrency ?? 4} at a time`);
  const controlEnv = { ...env, durationMs: controlMs };
  // Controls run a few at a time: starved of CPU, a control runs too few operations to
  // show its bug, and an uncaught control fails the run.
  const controlRuns: ((env: WorkloadEnvironment) => Promise<WorkloadResult>)[] = [
    ...(locks ? LOCK_CONTROLS.map((control) => (e: WorkloadEnvironment) => runLockWorkload(e, control)) : []),
    ...(register ? [(e: WorkloadEnvironment) => runRegisterWorkload(e, { condition: "skipped" })] : []),
    ...(counter ? [(e: WorkloadEnvironment) => runCounterWorkload(e, { atomic: false }), (e: WorkloadEnvironment) => runCounterWorkload(e, { requestId: "ignored" })] : []),
    ...(broadcast ? [(e: WorkloadEnvironment) => runBroadcastWorkload(e, { cursor: "unchecked" }), (e: WorkloadEnvironment) => runBroadcastWorkload(e, { dedup: "check-then-act" })] : []),
    ...(bank ? BANK_CONTROLS.map((control) => (e: WorkloadEnvironment) => runBankWorkload(e, { control })) : []),
    ...(coordination ? COORDINATION_CONTROLS.map((control) => (e: WorkloadEnvironment) => runCoordinationWorkload(e, { control })) : []),
  ];
  const judged = (result: WorkloadResult): ControlResult => ({ result, caught: result.anomalies.some((a) => a.kind !== "check-unknown") });
  const concurrency = options.controlConcurrency ?? 4;
  const controls = (await inBatches(controlRuns.map((run) => () => run(controlEnv)), concurrency)).map(judged);
  // A control that a short run did not catch (its bug needs a rare interleaving) runs once
  // more, twice as long, on a fresh run id. It must be caught then; its first run is kept
  // in the report as `attempts`.
  const missed = controls.flatMap((c, i) => (c.caught ? [] : [i]));
  if (missed.length > 0) {
    options.onProgress?.(`running ${missed.length} uncaught control(s) again for ${((controlMs * 2) / 1000).toFixed(0)} s`);
    const again = await inBatches(missed.map((i) => () => controlRuns[i]!({ ...controlEnv, durationMs: controlMs * 2, runId: `${runId}-again` })), concurrency);
    missed.forEach((i, k) => (controls[i] = { ...judged(again[k]!), attempts: 2 }));
  }

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
