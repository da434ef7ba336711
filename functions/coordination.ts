/**
 * The coordination Lambda: the coordination service's key-value store, change log, group
 * views and session listing behind one function, called by direct invoke with a
 * CoordinationRequest (lib/coordination/protocol.ts). Parse, validate, call lib/, let
 * typed errors through; no logic here.
 *
 * Environment: COORDINATION_TABLE (the coordination table); METRIC_DIMENSION and POWERTOOLS_* (middleware.ts `observability`).
 */
import middy from "@middy/core";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { coordinationRequestSchema, type CoordinationRequest } from "../lib/coordination/protocol.js";
import { CoordinationService } from "../lib/service/coordination-service.js";
import { invocationLog, observability, powertools, typedErrors, validateEvent } from "../lib/service/middleware.js";
import { actionsOf, validator } from "../lib/service/validate.js";

const tableName = process.env["COORDINATION_TABLE"];
if (!tableName) throw new Error("COORDINATION_TABLE is not set: deploy this function with the Fencepost construct, which sets it");
const tools = observability("coordination");
const service = new CoordinationService({ tableName, dynamodb: tools.tracer.captureAWSv3Client(new DynamoDBClient({})) });

export const handler = middy<unknown, unknown>()
  .use(powertools(tools))
  .use(typedErrors())
  .use(invocationLog(tools, { actions: actionsOf(coordinationRequestSchema), describe: (event) => ({ action: (event as Partial<CoordinationRequest>).action, namespace: (event as { namespace?: string }).namespace }) }))
  .use(validateEvent(validator<CoordinationRequest>(coordinationRequestSchema)))
  .handler((event) => service.handle(event as CoordinationRequest));
