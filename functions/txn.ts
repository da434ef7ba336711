/**
 * The coordinator Lambda: run, status, list, recover and override behind one function,
 * called by direct invoke with a TxnRequest (lib/service/txn-api.ts). Parse, validate,
 * call lib/, let typed errors through; no logic here.
 *
 * Environment: TXN_TABLE (the decision log).
 */
import middy from "@middy/core";
import { txnRequestSchema, type TxnRequest } from "../lib/service/txn-api.js";
import { TxnService } from "../lib/service/txn-service.js";
import { structuredLog, typedErrors, validateEvent } from "../lib/service/middleware.js";
import { validator } from "../lib/service/validate.js";

const tableName = process.env["TXN_TABLE"];
if (!tableName) throw new Error("TXN_TABLE is not set: deploy this function with the Fencepost construct, which sets it");
const service = new TxnService({ tableName });

export const handler = middy<unknown, unknown>()
  .use(typedErrors())
  .use(structuredLog((event) => ({ action: (event as Partial<TxnRequest>).action, txId: (event as { txId?: string }).txId })))
  .use(validateEvent(validator<TxnRequest>(txnRequestSchema)))
  .handler((event) => service.handle(event as TxnRequest));
