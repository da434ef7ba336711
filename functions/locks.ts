/**
 * The lock Lambda: every lock, election and claim action behind one function, called by
 * direct invoke with a LockRequest (lib/locks/protocol.ts). Parse, validate, call
 * lib/, let typed errors through; no logic here.
 *
 * Environment: TABLE_NAME (the lock table); METRIC_DIMENSION and POWERTOOLS_* (middleware.ts `observability`).
 */
import middy from "@middy/core";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { lockRequestSchema, type LockRequest } from "../lib/locks/protocol.js";
import { LockService } from "../lib/service/lock-service.js";
import { invocationLog, observability, powertools, typedErrors, validateEvent } from "../lib/service/middleware.js";
import { actionsOf, validator } from "../lib/service/validate.js";

const tableName = process.env["TABLE_NAME"];
if (!tableName) throw new Error("TABLE_NAME is not set: deploy this function with the Fencepost construct, which sets it");
const tools = observability("locks");
const service = new LockService({ tableName, dynamodb: tools.tracer.captureAWSv3Client(new DynamoDBClient({})), metrics: tools.metrics });

export const handler = middy<unknown, unknown>()
  .use(powertools(tools))
  .use(typedErrors())
  .use(invocationLog(tools, { actions: actionsOf(lockRequestSchema), describe: (event) => ({ action: (event as Partial<LockRequest>).action, name: (event as { name?: string }).name }) }))
  .use(validateEvent(validator<LockRequest>(lockRequestSchema)))
  .handler((event, context) => service.handle(event as LockRequest, context));
