/**
 * The coordination Lambda: the coordination service's key-value store, change log, group
 * views and session listing behind one function, called by direct invoke with a
 * CoordinationRequest (lib/coordination/protocol.ts). Parse, validate, call lib/, let
 * typed errors through; no logic here.
 *
 * Environment: COORDINATION_TABLE (the coordination table).
 */
import middy from "@middy/core";
import { coordinationRequestSchema, type CoordinationRequest } from "../lib/coordination/protocol.js";
import { CoordinationService } from "../lib/service/coordination-service.js";
import { structuredLog, typedErrors, validateEvent } from "../lib/service/middleware.js";
import { validator } from "../lib/service/validate.js";

const tableName = process.env["COORDINATION_TABLE"];
if (!tableName) throw new Error("COORDINATION_TABLE is not set: deploy this function with the Fencepost construct, which sets it");
const service = new CoordinationService({ tableName });

export const handler = middy<unknown, unknown>()
  .use(typedErrors())
  .use(structuredLog((event) => ({ action: (event as Partial<CoordinationRequest>).action, namespace: (event as { namespace?: string }).namespace })))
  .use(validateEvent(validator<CoordinationRequest>(coordinationRequestSchema)))
  .handler((event) => service.handle(event as CoordinationRequest));
