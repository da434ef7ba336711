/**
 * Calling a Fencepost function (or a participant's): a JSON request by direct invoke, its
 * JSON answer back, and a function error rebuilt as the class that was thrown (errors.ts
 * `fromWire`), so `instanceof` works across the Lambda boundary.
 */
import { InvokeCommand, type LambdaClient } from "@aws-sdk/client-lambda";
import { fromWire } from "../errors.js";

/** Invokes `functionName` with `request` as JSON; returns its JSON answer, or throws the error it threw, rebuilt. */
export async function invokeJson(lambda: LambdaClient, functionName: string, request: unknown): Promise<unknown> {
  const out = await lambda.send(new InvokeCommand({ FunctionName: functionName, Payload: new TextEncoder().encode(JSON.stringify(request)) }));
  const text = out.Payload ? new TextDecoder().decode(out.Payload) : "null";
  const body = JSON.parse(text) as unknown;
  if (out.FunctionError) {
    const { errorType, errorMessage } = (body ?? {}) as { errorType?: string; errorMessage?: string };
    throw fromWire({ errorType: errorType ?? out.FunctionError, errorMessage: errorMessage ?? text }, functionName);
  }
  return body;
}
