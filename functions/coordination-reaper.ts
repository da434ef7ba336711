/**
 * The scheduled session reaper Lambda: expires the sessions, in every namespace, whose
 * owners stopped their keepalives and that no client is observing, and deletes their
 * ephemeral keys as recorded changes (lib/service/coordination-reaper.ts). It watches for
 * up to its remaining time minus REAPER_RESERVE_MS, so with the construct's 15-minute
 * timeout it outlasts the longest session ttl (10 minutes). Returns what it did; a run
 * that could not finish a namespace fails (the function's Errors metric) with that report
 * in its message, after reaping the others.
 *
 * Environment: COORDINATION_TABLE (the coordination table); METRIC_DIMENSION and POWERTOOLS_* (middleware.ts `observability`).
 */
import middy from "@middy/core";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { CoordinationStore } from "../lib/coordination/store.js";
import { DEFAULT_RETAIN_CHANGES_MS } from "../lib/coordination/defaults.js";
import { FencepostError } from "../lib/errors.js";
import { reapSessions, REAPER_RESERVE_MS } from "../lib/service/coordination-reaper.js";
import { invocationLog, observability, powertools, typedErrors } from "../lib/service/middleware.js";

const tableName = process.env["COORDINATION_TABLE"];
if (!tableName) throw new Error("COORDINATION_TABLE is not set: deploy this function with the Fencepost construct, which sets it");
const tools = observability("coordination-reaper");
const store = new CoordinationStore(tools.tracer.captureAWSv3Client(new DynamoDBClient({})), tableName, DEFAULT_RETAIN_CHANGES_MS);

export const handler = middy<unknown, unknown>()
  .use(powertools(tools))
  .use(typedErrors())
  .use(invocationLog(tools, { actions: ["reap"], describe: () => ({ action: "reap" }) }))
  .handler(async (_event, context) => {
    const report = await reapSessions(store, { budgetMs: context.getRemainingTimeInMillis() - REAPER_RESERVE_MS });
    if (report.failed.length > 0) throw new FencepostError(`The session reaper could not finish ${report.failed.map((f) => `'${f.namespace}' (${f.error})`).join(", ")}; the next run tries again. Report: ${JSON.stringify(report)}`);
    return report;
  });
