/**
 * The coordinator Lambda: run, status, list, recover and override behind one function,
 * called by direct invoke with a TxnRequest (lib/service/txn-api.ts). Parse, validate,
 * call lib/, let typed errors through; no logic here.
 *
 * Environment: TXN_TABLE (the decision log); METRIC_DIMENSION and POWERTOOLS_* (middleware.ts `observability`).
 */
import middy from "@middy/core";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { SQSClient } from "@aws-sdk/client-sqs";
import { txnRequestSchema, type TxnRequest } from "../lib/service/txn-api.js";
import { TxnService } from "../lib/service/txn-service.js";
import { invocationLog, observability, powertools, typedErrors, validateEvent } from "../lib/service/middleware.js";
import { actionsOf, validator } from "../lib/service/validate.js";

const tableName = process.env["TXN_TABLE"];
if (!tableName) throw new Error("TXN_TABLE is not set: deploy this function with the Fencepost construct, which sets it");
const tools = observability("txn");
const { tracer } = tools;
const service = new TxnService({ tableName, dynamodb: tracer.captureAWSv3Client(new DynamoDBClient({})), sqs: tracer.captureAWSv3Client(new SQSClient({})), lambda: tracer.captureAWSv3Client(new LambdaClient({})) });

export const handler = middy<unknown, unknown>()
  .use(powertools(tools))
  .use(typedErrors())
  .use(invocationLog(tools, { actions: actionsOf(txnRequestSchema), describe: (event) => ({ action: (event as Partial<TxnRequest>).action, txId: (event as { txId?: string }).txId }) }))
  .use(validateEvent(validator<TxnRequest>(txnRequestSchema)))
  .handler((event) => service.handle(event as TxnRequest));
