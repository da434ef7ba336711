/**
 * The runtime inside one local Lambda function's worker thread: imports the handler
 * module once (its init code runs with the function's own environment, as in a Lambda
 * cold start), then runs each invocation the parent posts, with a Lambda-like context.
 * It tells the parent when an invocation starts, after init, so the function's timeout
 * does not count a cold start (Lambda gives init a separate budget).
 * Results and errors go back in the shape Lambda reports them.
 */
import { parentPort, workerData } from "node:worker_threads";
import { pathToFileURL } from "node:url";

interface WorkerConfig {
  file: string;
  exportName: string;
  functionName: string;
  functionArn: string;
  memoryMb: number;
}

interface Invocation {
  id: string;
  payload: unknown;
  /** The function's timeout; its clock starts once init is over, as on Lambda. */
  timeoutMs: number;
}

type Handler = (event: unknown, context: object) => Promise<unknown>;

const config = workerData as WorkerConfig;

function failure(err: unknown) {
  const e = err instanceof Error ? err : new Error(String(err));
  return { errorType: e.name || "Error", errorMessage: e.message, trace: (e.stack ?? "").split("\n") };
}

const loaded: Promise<Handler> = import(pathToFileURL(config.file).href).then((mod: Record<string, unknown>) => {
  const handler = mod[config.exportName];
  if (typeof handler !== "function") throw Object.assign(new Error(`${config.file} does not export a function '${config.exportName}'`), { name: "Runtime.HandlerNotFound" });
  return handler as Handler;
});
// An init error is reported by every invocation, as Lambda does; it must not crash the thread.
loaded.catch(() => undefined);

parentPort!.on("message", async ({ id, payload, timeoutMs }: Invocation) => {
  let handler: Handler;
  try {
    handler = await loaded;
  } catch (err) {
    parentPort!.postMessage({ id, ok: false, error: failure(err) });
    return;
  }
  // Init is over: the invocation's own clock starts now (Lambda gives init a budget of its own).
  const deadline = Date.now() + timeoutMs;
  parentPort!.postMessage({ id, started: true });
  const context = {
    awsRequestId: id,
    functionName: config.functionName,
    functionVersion: "$LATEST",
    invokedFunctionArn: config.functionArn,
    memoryLimitInMB: String(config.memoryMb),
    logGroupName: `/aws/lambda/${config.functionName}`,
    logStreamName: "local",
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
  try {
    const result = await handler(payload, context);
    parentPort!.postMessage({ id, ok: true, result: result === undefined ? null : result });
  } catch (err) {
    parentPort!.postMessage({ id, ok: false, error: failure(err) });
  }
});
