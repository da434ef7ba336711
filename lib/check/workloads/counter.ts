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
 * Negative control `atomic: false`: a counter that reads, adds one and writes back.
 */
import { GetItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb";
import { randomUUID } from "node:crypto";
import { counter } from "../models.js";
import { counterAnomalies } from "../invariants.js";
import { Counter } from "../../locks/counter.js";
import { countOk, pauseFor, startWorkload, type Worker, type WorkloadEnvironment, type WorkloadResult } from "./workers.js";

export interface CounterWorkloadOptions {
  workers?: number;
  counters?: number;
  /** false: the negative control. */
  atomic?: boolean;
}

interface Incrementable {
  get(): Promise<number>;
  newRequestId(): string;
  incrementAndGet(delta: number, options: { requestId: string }): Promise<number>;
}

export async function runCounterWorkload(env: WorkloadEnvironment, options: CounterWorkloadOptions = {}): Promise<WorkloadResult> {
  const control = options.atomic === false;
  const name = control ? "counter, read-modify-write" : "counter";
  const run = startWorkload(env, name, options.workers ?? 4);
  const keys = Array.from({ length: options.counters ?? 2 }, (_, i) => `verify-${env.runId}-${control ? "control" : "counter"}-${i}`);
  const counterFor = (w: Worker, key: string): Incrementable =>
    control ? new ReadModifyWriteCounter(w, env.tableName, key) : new Counter({ tableName: env.tableName, name: key, dynamodb: w.dynamodb });
  const counters = new Map(run.workers.flatMap((w) => keys.map((k) => [`${w.id}/${k}`, counterFor(w, k)] as const)));

  await run.loop(async (w) => {
    const key = w.random.pick(keys);
    const target = counters.get(`${w.id}/${key}`)!;
    const spec = (f: string, input: object) => ({ process: w.id, key, f, input });
    if (w.random.chance(0.2)) {
      await run.recorder.record(spec("read", {}), () => target.get(), () => ({ outcome: "fail" }));
    } else {
      const requestId = target.newRequestId();
      await run.recorder.record(
        spec("increment", { delta: 1 }),
        async () => {
          for (let attempt = 1; ; attempt++) {
            try {
              return await target.incrementAndGet(1, { requestId });
            } catch (err) {
              if (attempt >= 20) throw err;
              await pauseFor(w.random.int(5, 50));
            }
          }
        },
        // Even a final 4xx does not prove an earlier attempt had no effect: info.
      );
    }
    await pauseFor(w.random.int(0, 10));
  });

  return run.finish({
    control,
    model: counter,
    invariants: counterAnomalies,
    stats: (history) => ({
      increments: countOk(history, "increment"),
      "increments unknown": history.filter((op) => op.f === "increment" && op.outcome === "info").length,
    }),
  });
}

/** Negative control: a counter that reads, adds and writes back without a condition. */
class ReadModifyWriteCounter implements Incrementable {
  constructor(
    private readonly worker: Worker,
    private readonly tableName: string,
    private readonly name: string,
  ) {}

  async get(): Promise<number> {
    const { Item } = await this.worker.dynamodb.send(new GetItemCommand({ TableName: this.tableName, Key: { pk: { S: `rmw#${this.name}` } }, ConsistentRead: true }));
    return Number(Item?.["n"]?.N ?? 0);
  }

  newRequestId(): string {
    return randomUUID();
  }

  async incrementAndGet(delta: number): Promise<number> {
    const next = (await this.get()) + delta;
    await this.worker.dynamodb.send(new PutItemCommand({ TableName: this.tableName, Item: { pk: { S: `rmw#${this.name}` }, n: { N: String(next) } } }));
    return next;
  }
}
