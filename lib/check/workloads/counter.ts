/**
 * The counter workload: workers increment counters and read them, under faults. An
 * increment whose outcome is not learned is retried with the same request id (up to 20
 * times, a few ms apart), as the Counter's docs tell users to: it is one operation that
 * took effect at most once, and its value is almost always learned in the end. (An
 * increment left unknown may have applied anywhere later in the history; a few dozen of
 * them per key make the checker's search explode: a 30-minute run with 3 tries each left
 * 35 and ended "unknown".) The history must
 * be linearizable as a counter per key, and no two increments may return the same value.
 *
 * Duplicate runs: a tenth of the increments are run twice at once, by the worker and by
 * another worker's client with the same request id (as a retried Lambda invocation or an
 * SQS redelivery would). The duplicate is not an operation of the history (it is the same
 * increment): it must apply nothing more, and when both runs learn a value it must be the
 * same one (`duplicate-disagrees`).
 *
 * Negative controls:
 * - `atomic: false`: a counter that reads, adds one and writes back.
 * - `requestId: "ignored"`: an atomic counter (one UpdateItem that adds) that ignores the
 *   request id, so the two runs of one increment both apply (duplicate runs, with the
 *   SDK's faults off so that they are what exposes it).
 */
import { GetItemCommand, PutItemCommand, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { randomUUID } from "node:crypto";
import { counter } from "../models.js";
import { counterAnomalies, type Anomaly } from "../invariants.js";
import { Counter } from "../../locks/counter.js";
import { countOk, pauseFor, startWorkload, type Worker, type WorkloadEnvironment, type WorkloadResult } from "./workers.js";

export interface CounterWorkloadOptions {
  workers?: number;
  counters?: number;
  /** false: the negative control with a read-modify-write counter. */
  atomic?: boolean;
  /** "ignored": the negative control whose increments ignore their request id. */
  requestId?: "honoured" | "ignored";
  /** Share of increments run twice at once under one request id. Default 0.1 (0.5 in the request-id control). */
  duplicates?: number;
}

interface Incrementable {
  get(): Promise<number>;
  newRequestId(): string;
  incrementAndGet(delta: number, options: { requestId: string }): Promise<number>;
}

export async function runCounterWorkload(env: WorkloadEnvironment, options: CounterWorkloadOptions = {}): Promise<WorkloadResult> {
  const ignored = options.requestId === "ignored";
  const control = options.atomic === false || ignored;
  const name = options.atomic === false ? "counter, read-modify-write" : ignored ? "counter, request id ignored (duplicate runs)" : "counter";
  const duplicates = options.duplicates ?? (ignored ? 0.5 : options.atomic === false ? 0 : 0.1);
  const run = startWorkload(ignored ? { ...env, faults: { ...env.faults, rate: 0 } } : env, name, options.workers ?? 4);
  const keys = Array.from({ length: options.counters ?? 2 }, (_, i) => `verify-${env.runId}-${control ? `control-${ignored ? "ignored" : "rmw"}` : "counter"}-${i}`);
  const counterFor = (w: Worker, key: string): Incrementable =>
    options.atomic === false ? new ReadModifyWriteCounter(w, env.tableName, key) : ignored ? new ForgetfulCounter(w, env.tableName, key) : new Counter({ tableName: env.tableName, name: key, dynamodb: w.dynamodb });
  const counters = new Map(run.workers.flatMap((w) => keys.map((k) => [`${w.id}/${k}`, counterFor(w, k)] as const)));
  const disagreements: Anomaly[] = [];
  let duplicateRuns = 0;

  /** One increment, retried with its request id (up to 20 tries) while its outcome is unknown. */
  const increment = async (target: Incrementable, requestId: string, w: Worker): Promise<number> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await target.incrementAndGet(1, { requestId });
      } catch (err) {
        if (attempt >= 20) throw err;
        await pauseFor(w.random.int(5, 50));
      }
    }
  };

  await run.loop(async (w) => {
    const key = w.random.pick(keys);
    const target = counters.get(`${w.id}/${key}`)!;
    const spec = (f: string, input: object) => ({ process: w.id, key, f, input });
    if (w.random.chance(0.2)) {
      await run.recorder.record(spec("read", {}), () => target.get(), () => ({ outcome: "fail" }));
    } else {
      const requestId = target.newRequestId();
      const twin = w.random.chance(duplicates) ? w.random.pick(run.workers.filter((o) => o !== w)) : undefined;
      await run.recorder.record(
        spec("increment", { delta: 1 }),
        async () => {
          if (!twin) return increment(target, requestId, w);
          // The same increment run again at once by another worker's client (started within 20 ms).
          run.faults["duplicate-run"]++;
          duplicateRuns++;
          const again = pauseFor(w.random.int(0, 20)).then(() => increment(counters.get(`${twin.id}/${key}`)!, requestId, w));
          const [first, second] = await Promise.allSettled([increment(target, requestId, w), again]);
          if (first.status === "fulfilled" && second.status === "fulfilled" && first.value !== second.value) {
            disagreements.push({ kind: "duplicate-disagrees", key, detail: `increment ${requestId} run twice at once got ${first.value} (${w.id}) and ${second.value} (${twin.id})`, operations: [] });
          }
          if (first.status === "rejected") throw first.reason;
          return first.value;
        },
        // Even a final 4xx does not prove an earlier attempt had no effect: info.
      );
    }
    await pauseFor(w.random.int(0, 10));
  });

  return run.finish({
    control,
    model: counter,
    invariants: (history) => [...counterAnomalies(history), ...disagreements],
    stats: (history) => ({
      increments: countOk(history, "increment"),
      "increments unknown": history.filter((op) => op.f === "increment" && op.outcome === "info").length,
      ...(duplicates > 0 ? { "duplicate runs": duplicateRuns } : {}),
    }),
  });
}

/** A broken counter of the negative controls: one item `<prefix>#<name>` holding `n`; request ids are minted and ignored. */
abstract class BrokenCounter implements Incrementable {
  protected readonly key: { pk: { S: string } };

  constructor(
    protected readonly worker: Worker,
    protected readonly tableName: string,
    prefix: string,
    name: string,
  ) {
    this.key = { pk: { S: `${prefix}#${name}` } };
  }

  async get(): Promise<number> {
    const { Item } = await this.worker.dynamodb.send(new GetItemCommand({ TableName: this.tableName, Key: this.key, ConsistentRead: true }));
    return Number(Item?.["n"]?.N ?? 0);
  }

  newRequestId(): string {
    return randomUUID();
  }

  abstract incrementAndGet(delta: number): Promise<number>;
}

/** Negative control: an atomic counter (one UpdateItem that adds) that ignores request ids, so a run twice is applied twice. */
class ForgetfulCounter extends BrokenCounter {
  constructor(worker: Worker, tableName: string, name: string) {
    super(worker, tableName, "forgetful", name);
  }

  async incrementAndGet(delta: number): Promise<number> {
    const out = await this.worker.dynamodb.send(
      new UpdateItemCommand({ TableName: this.tableName, Key: this.key, UpdateExpression: "ADD n :d", ExpressionAttributeValues: { ":d": { N: String(delta) } }, ReturnValues: "UPDATED_NEW" }),
    );
    return Number(out.Attributes?.["n"]?.N);
  }
}

/** Negative control: a counter that reads, adds and writes back without a condition. */
class ReadModifyWriteCounter extends BrokenCounter {
  constructor(worker: Worker, tableName: string, name: string) {
    super(worker, tableName, "rmw", name);
  }

  async incrementAndGet(delta: number): Promise<number> {
    const next = (await this.get()) + delta;
    await this.worker.dynamodb.send(new PutItemCommand({ TableName: this.tableName, Item: { ...this.key, n: { N: String(next) } } }));
    return next;
  }
}
