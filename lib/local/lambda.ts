/**
 * Local Lambda: every AWS::Lambda::Function of the synthesized template, served behind the
 * Lambda Invoke API on localhost, so `new LambdaClient({ endpoint })` works unchanged.
 *
 * - Each function runs in its own worker thread with its own environment: the template's
 *   variables (Ref / Fn::GetAtt of tables, queues and functions resolved to the local
 *   ones) plus endpoints and credentials that point its SDK clients at the local cloud.
 *   The handler module is found through the `fencepost:handler` metadata the construct
 *   writes on each function (a path relative to the package root).
 * - Invoke: RequestResponse (200; a thrown error comes back as `{ errorType,
 *   errorMessage }` with X-Amz-Function-Error), Event (202, run in the background) and
 *   DryRun (204). Timeouts are enforced (`Sandbox.Timedout`), counted from the end of
 *   init as on Lambda, so a cold start does not time out the invocation that caused it.
 * - SQS event source mappings are polled and delivered in Lambda's batch shape. Up to
 *   BatchSize (at most 10) messages per batch. With ReportBatchItemFailures, the reported
 *   messages are left for redelivery and the rest deleted; on a FIFO queue the messages
 *   after a failure in the same message group are left too, so none overtakes it. A
 *   thrown error leaves the whole batch.
 * - Schedules (AWS::Events::Rule with `rate(...)`) invoke their targets periodically.
 * Differences from AWS: one worker per function runs invocations concurrently; IAM is not
 * enforced; reserved concurrency is not either; `cron(...)` schedules are reported and
 * skipped; X-Ray tracing is off (POWERTOOLS_TRACE_ENABLED=false); a schedule's dead-letter
 * queue is provisioned but never written to.
 */
import { LocalCloudError } from "../errors.js";
import { sleep } from "../internal/time.js";
import { DeleteMessageBatchCommand, ReceiveMessageCommand, SQSClient, type Message } from "@aws-sdk/client-sqs";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import { resolveIntrinsics, resourceRole, type CloudFormationTemplate, type ResolvedResource } from "./template.js";

export const HANDLER_METADATA = "fencepost:handler";

export interface LocalLambdaOptions {
  template: CloudFormationTemplate;
  /** Provisioned tables and queues by logical id (functions are added here). */
  resources: Record<string, ResolvedResource>;
  region: string;
  endpoints: { dynamodb: string; sqs: string };
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** Where `fencepost:handler` paths are relative to. Default: this package's root. */
  root?: string;
  /** Where the functions' own log lines go. Default: stderr, prefixed with the function. */
  log?: (functionName: string, line: string) => void;
  /** Runs schedules this many times faster (for tests). Default: 1. */
  scheduleTimeScale?: number;
}

export interface LocalLambdas {
  /** The Invoke API endpoint, for `new LambdaClient({ endpoint })`. */
  readonly endpoint: string;
  /** Function names keyed by `fencepost:resource` role, else by logical id. */
  readonly functions: Record<string, string>;
  stop(): Promise<void>;
}

interface LocalFunction {
  readonly name: string;
  readonly arn: string;
  readonly timeoutMs: number;
  invoke(payload: unknown): Promise<{ ok: true; result: unknown } | { ok: false; error: { errorType: string; errorMessage: string; trace: string[] } }>;
  terminate(): Promise<void>;
}

/**
 * How long a cold start may take before invocations waiting on it fail. Lambda allows 10 s
 * of init; locally a handler may be compiled from TypeScript on a loaded machine, so more.
 */
const INIT_TIMEOUT_MS = 60_000;

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Finds the handler file: the path as written, or its compiled twin under dist/. */
function handlerFile(root: string, path: string): string {
  const candidates = [join(root, path), join(root, "dist", path.replace(/\.ts$/, ".js")), join(root, path.replace(/\.ts$/, ".js"))];
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new LocalCloudError(`local Lambda: handler file ${path} not found (looked in ${candidates.join(", ")})`);
  return found;
}

export async function serveLambdas(options: LocalLambdaOptions): Promise<LocalLambdas> {
  const { template, region } = options;
  const root = options.root ?? packageRoot;
  const log = options.log ?? ((fn, line) => process.stderr.write(`[${fn}] ${line}\n`));
  const resources = { ...options.resources };
  const fnIds = Object.entries(template.Resources ?? {}).filter(([, r]) => r.Type === "AWS::Lambda::Function");
  const names: Record<string, string> = {};
  for (const [id, r] of fnIds) {
    const name = String((r.Properties?.["FunctionName"] as string | undefined) ?? id);
    const arn = `arn:aws:lambda:${region}:000000000000:function:${name}`;
    resources[id] = { ref: name, attributes: { Arn: arn } };
    names[resourceRole(r) ?? id] = name;
  }

  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const address = server.address();
  const endpoint = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  const pseudo = { "AWS::Region": region, "AWS::AccountId": "000000000000", "AWS::Partition": "aws", "AWS::StackName": "Fencepost", "AWS::URLSuffix": "amazonaws.com" };

  const functions = new Map<string, LocalFunction>();
  for (const [id, r] of fnIds) {
    const props = r.Properties ?? {};
    const handlerPath = (r.Metadata?.[HANDLER_METADATA] as string | undefined) ?? undefined;
    if (!handlerPath) {
      log(id, `skipped: no ${HANDLER_METADATA} metadata, so the local cloud cannot find its source`);
      continue;
    }
    const variables = resolveIntrinsics((props["Environment"] as { Variables?: object } | undefined)?.Variables ?? {}, resources, pseudo, `${id}.Environment`) as Record<string, unknown>;
    const name = resources[id]!.ref;
    const arn = resources[id]!.attributes["Arn"]!;
    const env: Record<string, string> = {
      ...Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined && !e[0].startsWith("AWS_"))),
      ...Object.fromEntries(Object.entries(variables).map(([k, v]) => [k, String(v)])),
      AWS_REGION: region,
      AWS_DEFAULT_REGION: region,
      AWS_ACCESS_KEY_ID: options.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: options.credentials.secretAccessKey,
      AWS_ENDPOINT_URL_DYNAMODB: options.endpoints.dynamodb,
      AWS_ENDPOINT_URL_SQS: options.endpoints.sqs,
      AWS_ENDPOINT_URL_LAMBDA: endpoint,
      AWS_LAMBDA_FUNCTION_NAME: name,
      // As Lambda sets it: Powertools reports a cold start only for on-demand initialization.
      AWS_LAMBDA_INITIALIZATION_TYPE: "on-demand",
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
      // No X-Ray daemon here: the Powertools tracer stays off (its logs and EMF metrics just print).
      POWERTOOLS_TRACE_ENABLED: "false",
    };
    functions.set(name, startFunction({ name, arn, file: handlerFile(root, handlerPath), exportName: String(props["Handler"] ?? "index.handler").split(".").pop()!, timeoutMs: Number(props["Timeout"] ?? 3) * 1000, memoryMb: Number(props["MemorySize"] ?? 128), env, log }));
  }

  const lookup = (nameOrArn: string) => functions.get(decodeURIComponent(nameOrArn).split(":function:").pop()!.split(":")[0]!);
  server.on("request", (req, res) => void serveInvoke(req, res, lookup, region));

  const sqs = new SQSClient({ endpoint: options.endpoints.sqs, region, credentials: options.credentials });
  const stopping = new AbortController();
  const loops: Promise<void>[] = [];
  for (const [id, r] of Object.entries(template.Resources ?? {})) {
    const props = r.Properties ?? {};
    if (r.Type === "AWS::Lambda::EventSourceMapping" && props["Enabled"] !== false) {
      const fn = lookup(String(resolveIntrinsics(props["FunctionName"], resources, pseudo, id)));
      const queueArn = String(resolveIntrinsics(props["EventSourceArn"], resources, pseudo, id));
      const queue = Object.values(resources).find((q) => q.attributes["Arn"] === queueArn);
      if (!fn || !queue?.attributes["QueueUrl"]) {
        log(id, "skipped: its function or SQS queue is not served locally");
        continue;
      }
      const reportFailures = ((props["FunctionResponseTypes"] as string[] | undefined) ?? []).includes("ReportBatchItemFailures");
      const batchSize = Math.min(10, Number(props["BatchSize"] ?? 10));
      loops.push(pollQueue({ sqs, fn, queueUrl: queue.attributes["QueueUrl"], queueArn, region, batchSize, reportFailures, signal: stopping.signal, log }));
    }
    if (r.Type === "AWS::Events::Rule" && props["ScheduleExpression"] && props["State"] !== "DISABLED") {
      const expression = String(props["ScheduleExpression"]);
      const every = rateMs(expression);
      if (every === undefined) {
        log(id, `schedule '${expression}' is not run locally (only rate(...) is)`);
        continue;
      }
      for (const target of (props["Targets"] as { Arn: unknown; Input?: string }[] | undefined) ?? []) {
        const fn = lookup(String(resolveIntrinsics(target.Arn, resources, pseudo, id)));
        if (!fn) continue;
        loops.push(runSchedule(fn, every / (options.scheduleTimeScale ?? 1), target.Input, stopping.signal, (line) => log(fn.name, line)));
      }
    }
  }

  return {
    endpoint,
    functions: names,
    async stop() {
      stopping.abort();
      const closed = new Promise<void>((ok) => server.close(() => ok()));
      server.closeAllConnections();
      // Invocations in flight end with their runtimes: a scheduled recovery or reaper may run
      // for minutes, and stopping must not wait for it.
      await Promise.all([...functions.values()].map((f) => f.terminate()));
      await Promise.allSettled(loops);
      sqs.destroy();
      await closed;
    },
  };
}

/**
 * The worker's entry: the compiled runtime directly, or (running from TypeScript source)
 * a bootstrap that registers tsx's loader inside the worker first; `--import` in a
 * worker's execArgv does not take on Node 20.
 */
function workerEntry(): { code: string; eval: boolean } {
  const self = fileURLToPath(import.meta.url);
  if (!self.endsWith(".ts")) return { code: join(dirname(self), "lambda-worker.js"), eval: false };
  // tsx's ESM API (the "import" condition of tsx/esm/api), next to the CJS file require resolves.
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx/esm/api").replace(/\.cjs$/, ".mjs")).href;
  const runtime = pathToFileURL(join(dirname(self), "lambda-worker.ts")).href;
  return { code: `import(${JSON.stringify(tsx)}).then((m) => { (m.register ?? m.default.register)(); return import(${JSON.stringify(runtime)}); });`, eval: true };
}

type Outcome = Awaited<ReturnType<LocalFunction["invoke"]>>;

function startFunction(spec: { name: string; arn: string; file: string; exportName: string; timeoutMs: number; memoryMb: number; env: Record<string, string>; log: (fn: string, line: string) => void }): LocalFunction {
  const entry = workerEntry();
  const worker = new Worker(entry.code, {
    eval: entry.eval,
    workerData: { file: spec.file, exportName: spec.exportName, functionName: spec.name, functionArn: spec.arn, memoryMb: spec.memoryMb },
    env: spec.env,
    stdout: true,
    stderr: true,
  });
  worker.unref();
  for (const stream of [worker.stdout, worker.stderr]) {
    let buffered = "";
    stream.on("data", (chunk: Buffer) => {
      const lines = (buffered + chunk.toString()).split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) if (line) spec.log(spec.name, line);
    });
  }
  const pending = new Map<string, (outcome: Outcome) => void>();
  const started = new Map<string, () => void>();
  // Once the runtime dies, every invocation fails at once, as a broken Lambda runtime would.
  let dead: Outcome | undefined;
  const die = (message: string) => {
    dead = { ok: false, error: { errorType: "Runtime.ExitError", errorMessage: `the local runtime of ${spec.name} stopped: ${message}`, trace: [] } };
    for (const done of [...pending.values()]) done(dead);
  };
  worker.on("message", (m: ({ id: string; started: true }) | ({ id: string; started?: undefined } & Outcome)) => {
    if (m.started) started.get(m.id)?.();
    else pending.get(m.id)?.(m);
  });
  worker.on("error", (err) => {
    spec.log(spec.name, `runtime error: ${err.stack ?? err.message}`);
    die(err.message);
  });
  worker.on("exit", (code) => die(`exit code ${code}`));
  return {
    name: spec.name,
    arn: spec.arn,
    timeoutMs: spec.timeoutMs,
    invoke(payload) {
      if (dead) return Promise.resolve(dead);
      const id = randomUUID();
      return new Promise((done) => {
        const fail = (errorType: string, errorMessage: string) => () => {
          pending.delete(id);
          started.delete(id);
          done({ ok: false, error: { errorType, errorMessage, trace: [] } });
        };
        // Init has its own budget; the function's timeout starts when the handler does.
        let timer = setTimeout(fail("Runtime.InitTimeout", `init did not finish within ${INIT_TIMEOUT_MS / 1000} seconds`), INIT_TIMEOUT_MS + spec.timeoutMs);
        started.set(id, () => {
          clearTimeout(timer);
          timer = setTimeout(fail("Sandbox.Timedout", `Task timed out after ${(spec.timeoutMs / 1000).toFixed(2)} seconds`), spec.timeoutMs);
        });
        pending.set(id, (outcome) => {
          clearTimeout(timer);
          pending.delete(id);
          started.delete(id);
          done(outcome);
        });
        worker.postMessage({ id, payload, timeoutMs: spec.timeoutMs });
      });
    },
    async terminate() {
      worker.removeAllListeners("exit");
      await worker.terminate();
      die("the local cloud stopped"); // invocations in flight fail now instead of never
    },
  };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function sendError(res: ServerResponse, status: number, type: string, message: string): void {
  res.writeHead(status, { "content-type": "application/json", "x-amzn-errortype": type });
  res.end(JSON.stringify({ Type: "User", message }));
}

async function serveInvoke(req: IncomingMessage, res: ServerResponse, lookup: (name: string) => LocalFunction | undefined, region: string): Promise<void> {
  const match = /^\/2015-03-31\/functions\/([^/]+)\/invocations/.exec(req.url ?? "");
  if (req.method !== "POST" || !match) return sendError(res, 404, "UnknownOperationException", `the local Lambda serves only Invoke, not ${req.method} ${req.url}`);
  const fn = lookup(match[1]!);
  if (!fn) return sendError(res, 404, "ResourceNotFoundException", `Function not found: arn:aws:lambda:${region}:000000000000:function:${decodeURIComponent(match[1]!)}`);
  const body = await readBody(req);
  let payload: unknown = {};
  try {
    if (body.length > 0) payload = JSON.parse(body);
  } catch {
    return sendError(res, 400, "InvalidRequestContentException", "Could not parse request body into json: the payload must be JSON");
  }
  const type = String(req.headers["x-amz-invocation-type"] ?? "RequestResponse");
  if (type === "DryRun") return void res.writeHead(204).end();
  if (type === "Event") {
    void fn.invoke(payload);
    return void res.writeHead(202).end();
  }
  const outcome = await fn.invoke(payload);
  const headers: Record<string, string> = { "content-type": "application/json", "x-amz-executed-version": "$LATEST" };
  if (!outcome.ok) headers["x-amz-function-error"] = "Unhandled";
  res.writeHead(200, headers);
  res.end(JSON.stringify(outcome.ok ? outcome.result : outcome.error));
}

async function pollQueue(p: {
  sqs: SQSClient;
  fn: LocalFunction;
  queueUrl: string;
  queueArn: string;
  region: string;
  batchSize: number;
  reportFailures: boolean;
  signal: AbortSignal;
  log: (fn: string, line: string) => void;
}): Promise<void> {
  const fifo = p.queueUrl.endsWith(".fifo");
  while (!p.signal.aborted) {
    let messages: Message[] = [];
    try {
      const out = await p.sqs.send(
        new ReceiveMessageCommand({ QueueUrl: p.queueUrl, MaxNumberOfMessages: p.batchSize, WaitTimeSeconds: 1, MessageSystemAttributeNames: ["All"], MessageAttributeNames: ["All"] }),
        { abortSignal: p.signal },
      );
      messages = out.Messages ?? [];
    } catch (err) {
      if (p.signal.aborted) return;
      p.log(p.fn.name, `event source: receive failed: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 500));
      continue;
    }
    if (messages.length === 0) continue;
    const event = { Records: messages.map((m) => sqsRecord(m, p.queueArn, p.region)) };
    const outcome = await p.fn.invoke(event);
    if (!outcome.ok) {
      p.log(p.fn.name, `event source: batch of ${messages.length} failed (${outcome.error.errorType}: ${outcome.error.errorMessage}); left for redelivery`);
      continue;
    }
    const failed = new Set(
      p.reportFailures ? (((outcome.result as { batchItemFailures?: { itemIdentifier: string }[] } | null)?.batchItemFailures ?? []).map((f) => f.itemIdentifier)) : [],
    );
    // FIFO: a failure holds back the rest of its message group in this batch, so nothing overtakes it.
    const blockedGroups = new Set<string>();
    const done = messages.filter((m) => {
      const group = m.Attributes?.MessageGroupId ?? "";
      if (failed.has(m.MessageId ?? "")) {
        if (fifo) blockedGroups.add(group);
        return false;
      }
      return !(fifo && blockedGroups.has(group));
    });
    if (done.length > 0) {
      await p.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: p.queueUrl, Entries: done.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }));
    }
  }
}

function sqsRecord(m: Message, queueArn: string, region: string) {
  return {
    messageId: m.MessageId,
    receiptHandle: m.ReceiptHandle,
    body: m.Body,
    attributes: m.Attributes ?? {},
    messageAttributes: Object.fromEntries(
      Object.entries(m.MessageAttributes ?? {}).map(([k, v]) => [k, { stringValue: v.StringValue, binaryValue: v.BinaryValue, dataType: v.DataType, stringListValues: [], binaryListValues: [] }]),
    ),
    md5OfBody: m.MD5OfBody,
    eventSource: "aws:sqs",
    eventSourceARN: queueArn,
    awsRegion: region,
  };
}

/** Milliseconds of a `rate(N unit)` expression, or undefined for anything else. */
export function rateMs(expression: string): number | undefined {
  const m = /^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$/.exec(expression.trim());
  if (!m) return undefined;
  const unit = m[2]!.startsWith("minute") ? 60_000 : m[2]!.startsWith("hour") ? 3_600_000 : 86_400_000;
  return Number(m[1]) * unit;
}

async function runSchedule(fn: LocalFunction, everyMs: number, input: string | undefined, signal: AbortSignal, log: (line: string) => void): Promise<void> {
  while (!signal.aborted) {
    // sleep removes its abort listener when it resolves (one per wait would pile up on the signal).
    await sleep(everyMs, signal).catch(() => undefined);
    if (signal.aborted) return;
    const event = input ? JSON.parse(input) : { source: "aws.events", "detail-type": "Scheduled Event", time: new Date().toISOString(), detail: {} };
    const outcome = await fn.invoke(event);
    if (!outcome.ok && !signal.aborted) log(`scheduled invocation failed: ${outcome.error.errorType}: ${outcome.error.errorMessage}`);
  }
}
