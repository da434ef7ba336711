/**
 * middy middlewares shared by Fencepost's Lambda handlers: request validation, typed
 * errors, and observability with Lambda Powertools for TypeScript (logger, metrics,
 * tracer). Handlers stay thin: validate, call lib/, let typed errors through.
 *
 * Errors: a thrown error reaches the caller of a direct invoke as
 * `{ errorType, errorMessage }`. `typedErrors` writes Fencepost's typed errors in the form
 * errors.ts `toWire` defines (errorType is the class name, e.g. InvalidArgumentError; the
 * message carries the error's fields), which the caller's `fromWire` turns back into the
 * same class.
 *
 * Observability (see `observability`, `invocationLog`): one Powertools log line per
 * invocation (message `invocation`) with the request's action and subject, its duration
 * and outcome, the Lambda context (request id, cold start) and the request id as
 * `correlation_id`; EMF lines per invocation with `Requests` and `Duration` per
 * function, action and outcome, and per function and outcome, in namespace `Fencepost` with dimension `Construct`; an
 * X-Ray subsegment per invocation and per AWS SDK call (`captureAWSv3Client`) when
 * tracing is on.
 */
import type { MiddlewareObj } from "@middy/core";
import { Logger } from "@aws-lambda-powertools/logger";
import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { MetricUnit, type Metrics } from "@aws-lambda-powertools/metrics";
import { Tracer } from "@aws-lambda-powertools/tracer";
import { captureLambdaHandler } from "@aws-lambda-powertools/tracer/middleware";
import { FencepostError, wireError } from "../errors.js";
import { FENCEPOST_METRICS } from "./metric-names.js";
import { fencepostMetrics, publishMetrics } from "./domain-metrics.js";

export { FENCEPOST_METRICS, FUNCTION_METRIC_NAMES } from "./metric-names.js";

/** How an invocation ended, as the `Outcome` dimension and the log line say it. */
export type Outcome = "ok" | "rejected" | "fault";

/** A function's Powertools instances: create once per module (at init), share across invocations. */
export interface Observability {
  /** The function's short name: the logger's `service`, the metrics' `Function` dimension. */
  readonly service: string;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly tracer: Tracer;
}

/**
 * The Powertools logger, metrics and tracer of the function named `service`. Metrics go
 * to namespace `Fencepost` with the single default dimension `Construct` = env
 * METRIC_DIMENSION (set by the construct; "Fencepost" if unset): Powertools' default
 * `service` dimension is dropped, so the construct's alarms, which watch
 * `{Construct}` only, see what the functions report. Tracing follows Powertools'
 * rules: on in Lambda unless POWERTOOLS_TRACE_ENABLED=false (the construct sets it from
 * its `tracing` prop; the local cloud sets it false), off outside Lambda.
 */
export function observability(service: string): Observability {
  const logger = new Logger({ serviceName: `fencepost-${service}` });
  const metrics = fencepostMetrics(service);
  const tracer = new Tracer({ serviceName: `fencepost-${service}` });
  return { service, logger, metrics, tracer };
}

/**
 * The Powertools middlewares, outermost first: the tracer's handler subsegment, the
 * logger's Lambda context (request id, cold start, function). Use them before
 * typedErrors and invocationLog.
 */
export function powertools(tools: Observability): MiddlewareObj<unknown, unknown>[] {
  return [captureLambdaHandler(tools.tracer), injectLambdaContext(tools.logger, { resetKeys: true })];
}

/**
 * Rethrows a FencepostError in its wire form (errors.ts `toWire`), so its fields reach
 * the caller. Use it before invocationLog, which then logs the error as it was thrown.
 */
export function typedErrors(): MiddlewareObj<unknown, unknown> {
  return {
    onError: (request) => {
      if (request.error instanceof FencepostError) request.error = wireError(request.error);
    },
  };
}

/** Replaces the event with `validate(event)`; throws (and so writes nothing) on bad input. */
export function validateEvent<T>(validate: (input: unknown) => T): MiddlewareObj<unknown, unknown> {
  return {
    before: (request) => {
      request.event = validate(request.event);
    },
  };
}

/** What invocationLog needs to know about a function's requests. */
export interface InvocationLogOptions {
  /** The log line's request fields: `action` and the subject (`name`, `txId`, `namespace`). Must not throw on any input. */
  describe: (event: unknown) => { action?: unknown } & Record<string, unknown>;
  /**
   * The function's actions: the `Action` metric dimension is the request's action if it
   * is one of these, else `unknown` (so bad input cannot create metrics at will).
   */
  actions: readonly string[];
}

/**
 * One Powertools log line and one EMF metrics line per invocation. The log line: message
 * `invocation`, the request's fields, `ms`, `outcome`, and on error `errorType` and
 * `errorMessage`; level info when ok, warn for a typed FencepostError (an expected
 * answer: a timeout, a taken claim, bad input), error otherwise (with the stack).
 * `correlation_id` is the Lambda request id. The metrics: `Requests` (1) and `Duration`
 * (ms), per Function/Action/Outcome and per Function/Outcome (two EMF lines); a
 * `ColdStart` count on the first invocation. The metrics carry the invocation's start as
 * their timestamp, as Lambda's own `Errors` do, so the construct's error alarms can
 * subtract the rejected requests from Lambda's errors period by period. Metrics are
 * added and published in one synchronous step, so invocations that overlap in one
 * process (the local cloud) never mix their dimensions.
 */
export function invocationLog(tools: Observability, options: InvocationLogOptions): MiddlewareObj<unknown, unknown> {
  const { logger, metrics, tracer } = tools;
  /** Per invocation: its start on the monotonic clock and the wall clock (the metrics' timestamp, as Lambda's own metrics carry the invocation's start). */
  const started = new WeakMap<object, { at: number; wall: number }>();
  const describe = (event: unknown): Record<string, unknown> => {
    try {
      return options.describe(event);
    } catch {
      return {}; // the event was not even an object: the validation error will say so
    }
  };
  const report = (request: { event: unknown; context: { awsRequestId?: string; functionName?: string } }, outcome: Outcome, error?: Error): void => {
    const start = started.get(request) ?? { at: performance.now(), wall: Date.now() };
    const ms = Math.round(performance.now() - start.at);
    const fields = describe(request.event);
    const action = typeof fields["action"] === "string" && options.actions.includes(fields["action"]) ? fields["action"] : "unknown";
    const line = { ...fields, ms, outcome };
    if (outcome === "ok") logger.info("invocation", line);
    else if (outcome === "rejected") logger.warn("invocation", { ...line, errorType: error?.name, errorMessage: error?.message });
    else logger.error("invocation", { ...line, errorType: error?.name, errorMessage: error?.message, error });
    // Two lines, one per dimension set: Powertools warns about keys shared by two sets of one line.
    const sets: Record<string, string>[] = [{ [FENCEPOST_METRICS.action]: action }, {}];
    for (const dimensions of sets) {
      publishMetrics(metrics, { [FENCEPOST_METRICS.function]: tools.service, ...dimensions, [FENCEPOST_METRICS.outcome]: outcome }, [
        [FENCEPOST_METRICS.requests, MetricUnit.Count, 1],
        [FENCEPOST_METRICS.duration, MetricUnit.Milliseconds, ms],
      ], start.wall);
    }
  };
  // Middlewares must return nothing: in middy a returned value becomes the response.
  return {
    before: (request) => {
      started.set(request, { at: performance.now(), wall: Date.now() });
      if (request.context.awsRequestId) logger.setCorrelationId(request.context.awsRequestId);
      metrics.captureColdStartMetric(request.context.functionName);
      const action = describe(request.event)["action"];
      if (typeof action === "string" && options.actions.includes(action)) tracer.putAnnotation("action", action);
    },
    after: (request) => {
      report(request, "ok");
    },
    onError: (request) => {
      const err = request.error ?? undefined;
      // Typed errors are answers (a timeout, a taken claim, bad input); anything else is a bug or an outage.
      report(request, err instanceof FencepostError ? "rejected" : "fault", err);
    },
  };
}
