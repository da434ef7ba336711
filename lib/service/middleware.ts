/**
 * middy middlewares shared by Fencepost's Lambda handlers: request validation and
 * structured logs. Handlers stay thin: validate, call lib/, let typed errors through.
 *
 * Errors: a thrown error reaches the caller of a direct invoke as
 * `{ errorType, errorMessage }`. `typedErrors` writes Fencepost's typed errors in the form
 * errors.ts `toWire` defines (errorType is the class name, e.g. InvalidArgumentError; the
 * message carries the error's fields), which the caller's `fromWire` turns back into the
 * same class.
 */
import type { MiddlewareObj } from "@middy/core";
import { FencepostError, wireError } from "../errors.js";

/**
 * Rethrows a FencepostError in its wire form (errors.ts `toWire`), so its fields reach
 * the caller. Use it before structuredLog, which then logs the error as it was thrown.
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

/** One JSON log line per invocation: what was asked, how long it took, how it ended. */
export function structuredLog(describe: (event: unknown) => Record<string, unknown>): MiddlewareObj<unknown, unknown> {
  const started = new WeakMap<object, number>();
  // Middlewares must return nothing: in middy a returned value becomes the response.
  const line = (fields: Record<string, unknown>): void => {
    process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...fields })}\n`);
  };
  const base = (request: { event: unknown; context: { awsRequestId?: string } }) => {
    let described: Record<string, unknown> = {};
    try {
      described = describe(request.event);
    } catch {
      // the event was not even an object: the validation error will say so
    }
    return { requestId: request.context.awsRequestId, ...described };
  };
  return {
    before: (request) => {
      started.set(request, performance.now());
    },
    after: (request) => {
      line({ level: "info", ...base(request), ms: Math.round(performance.now() - (started.get(request) ?? 0)), outcome: "ok" });
    },
    onError: (request) => {
      const err = request.error;
      // Typed errors are answers (a timeout, a taken claim, bad input); anything else is a bug or an outage.
      const expected = err instanceof FencepostError;
      line({
        level: expected ? "warn" : "error",
        ...base(request),
        ms: Math.round(performance.now() - (started.get(request) ?? 0)),
        outcome: "error",
        errorType: err?.name,
        errorMessage: err?.message,
      });
    },
  };
}
