/**
 * Measures the linearizability checker on one large generated history (time, peak heap,
 * verdict). Not a test: run it by hand, ideally under `/usr/bin/time -v` for peak RSS.
 *   npx tsx test/check/measure-checker.ts [operations] [counter|register] [infoRate] [processes]
 */
import { checkLinearizability } from "../../lib/check/linearizability.js";
import { casRegister, counter } from "../../lib/check/models.js";
import { generateHistory } from "./generated-histories.js";

const operations = Number(process.argv[2] ?? 100_000);
const model = process.argv[3] === "register" ? "register" : "counter";
const infoRate = Number(process.argv[4] ?? 0);
const processes = Number(process.argv[5] ?? 4);
const history = generateHistory({ model, operations, infoRate, processes });
const heapBefore = process.memoryUsage().heapUsed;
const started = performance.now();
const result = model === "counter" ? checkLinearizability(counter, history) : checkLinearizability(casRegister, history);
const ms = performance.now() - started;
const mb = (n: number) => `${(n / 2 ** 20).toFixed(0)} MB`;
console.log(JSON.stringify({ operations, model, infoRate, processes, verdict: result.verdict, ms: Math.round(ms), heapBefore: mb(heapBefore), heapAfter: mb(process.memoryUsage().heapUsed), result: { ...result, partitions: result.partitions.map((p) => ({ ...p, counterexample: undefined })) } }));
