/**
 * The register workload: workers read registers and compare-and-set them from the
 * version they read (sometimes from an older one, so some must fail), under faults.
 * The history must be linearizable as a CAS register per key, and no two successful
 * compare-and-sets may replace the same version.
 *
 * Negative control `condition: "skipped"`: a register that checks the version by reading
 * and then writes unconditionally (lost updates under contention).
 */
import { GetItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb";
import { casRegister } from "../models.js";
import { registerAnomalies } from "../invariants.js";
import { Register, type CasResult, type Versioned } from "../../locks/register.js";
import { countOk, pauseFor, startWorkload, type Worker, type WorkloadEnvironment, type WorkloadResult } from "./workers.js";

export interface RegisterWorkloadOptions {
  workers?: number;
  registers?: number;
  /** "skipped": the negative control. */
  condition?: "checked" | "skipped";
}

interface CasTarget {
  get(): Promise<Versioned<string> | undefined>;
  compareAndSet(expected: number, value: string): Promise<CasResult<string>>;
}

export async function runRegisterWorkload(env: WorkloadEnvironment, options: RegisterWorkloadOptions = {}): Promise<WorkloadResult> {
  const control = options.condition === "skipped";
  const name = control ? "register, condition skipped" : "register";
  const run = startWorkload(env, name, options.workers ?? 4);
  const keys = Array.from({ length: options.registers ?? 3 }, (_, i) => `verify-${env.runId}-${control ? "control" : "register"}-${i}`);
  const targetFor = (w: Worker, key: string): CasTarget =>
    control ? new UncheckedRegister(w, env.tableName, key) : new Register<string>({ tableName: env.tableName, name: key, dynamodb: w.dynamodb });
  const targets = new Map(run.workers.flatMap((w) => keys.map((k) => [`${w.id}/${k}`, targetFor(w, k)] as const)));
  let n = 0;

  await run.loop(async (w) => {
    const key = w.random.pick(keys);
    const target = targets.get(`${w.id}/${key}`)!;
    const spec = (f: string, input: object) => ({ process: w.id, key, f, input });
    const read = await run.recorder.record(
      spec("read", {}),
      async () => {
        const found = await target.get();
        return { version: found?.version ?? 0, value: found?.value ?? null };
      },
      () => ({ outcome: "fail" }),
    );
    const seen = read.output?.version ?? 0;
    if (w.random.chance(0.7)) {
      const expected = w.random.chance(0.15) ? Math.max(0, seen - 1) : seen;
      const value = `${w.id}-${n++}`;
      await run.recorder.record(spec("cas", { expected, value }), async () => {
        const result = await target.compareAndSet(expected, value);
        return result.ok ? { ok: true } : { ok: false, version: result.current?.version ?? 0 };
      });
    }
    await pauseFor(w.random.int(0, 10));
  });

  return run.finish({
    control,
    model: casRegister,
    invariants: registerAnomalies,
    stats: (history) => ({
      "cas won": countOk(history, "cas", (o) => (o as { ok: boolean }).ok),
      "cas lost": countOk(history, "cas", (o) => !(o as { ok: boolean }).ok),
      "cas unknown": history.filter((op) => op.f === "cas" && op.outcome === "info").length,
    }),
  });
}

/** Negative control: checks the version with a read, then writes without a condition. */
class UncheckedRegister implements CasTarget {
  constructor(
    private readonly worker: Worker,
    private readonly tableName: string,
    private readonly name: string,
  ) {}

  async get(): Promise<Versioned<string> | undefined> {
    const { Item } = await this.worker.dynamodb.send(new GetItemCommand({ TableName: this.tableName, Key: { pk: { S: `unchecked#${this.name}` } }, ConsistentRead: true }));
    return Item?.["value"]?.S !== undefined ? { value: Item["value"].S, version: Number(Item["version"]?.N) } : undefined;
  }

  async compareAndSet(expected: number, value: string): Promise<CasResult<string>> {
    const current = await this.get();
    if ((current?.version ?? 0) !== expected) return { ok: false, current };
    await this.worker.dynamodb.send(
      new PutItemCommand({ TableName: this.tableName, Item: { pk: { S: `unchecked#${this.name}` }, value: { S: value }, version: { N: String(expected + 1) } } }),
    );
    return { ok: true, version: expected + 1 };
  }
}
