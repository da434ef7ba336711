/**
 * Remote mode: the lock family over the lock Lambda (lib/service) instead of direct table
 * access, for callers that may invoke the function but not touch the table.
 *
 * Semantics are the direct mode's, because the function runs the same LockClient: it
 * waits for the grant inside the invocation and hands the lease over without
 * heartbeating it; this side keeps it with `heartbeat` and ends it with `release`, one
 * invocation (one DynamoDB request) each. The holder's lease is measured from before the
 * invoke was sent, which precedes the granting write, so the holder still stops
 * believing before any waiter may take over (see lock.ts).
 *
 * Errors thrown by the function come back as `{ errorType, errorMessage }` and are turned
 * back into the same classes (LockTimeoutError, InvalidArgumentError, ...), so
 * `instanceof` works across the boundary; their messages are the function's.
 * Assumes: a lost invoke response after a grant leaves an orphan lease under this owner,
 * which expires after one lease (safe; a retry waits for it).
 */
import { InvokeCommand, LambdaClient } from "@aws-sdk/client-lambda";
import type { LockGrant, LockKind, LockRequest, LockResponses } from "../service/lock-api.js";
import * as errors from "./errors.js";
import type { LeaseKeeper } from "./lock.js";

/** The typed errors a function may throw, by errorType. */
/** Every error class of the lock family, by name: any of them crosses the Lambda boundary as itself. */
const ERROR_CLASSES: Record<string, new (...args: never[]) => Error> = Object.fromEntries(
  Object.entries(errors).filter(([, value]) => typeof value === "function" && (value === errors.FencepostError || value.prototype instanceof errors.FencepostError)),
) as Record<string, new (...args: never[]) => Error>;

/** Lets other families (two-phase commit) have their typed errors rebuilt across the Lambda boundary too. */
export function registerErrorClasses(classes: Record<string, new (...args: never[]) => Error>): void {
  Object.assign(ERROR_CLASSES, classes);
}

/** An error a function reported that is not one of Fencepost's own (a bug, a runtime failure). */
export class RemoteFunctionError extends errors.FencepostError {
  override name = "RemoteFunctionError";
  constructor(
    readonly errorType: string,
    message: string,
  ) {
    super(`The Fencepost function failed with ${errorType}: ${message}`);
  }
}

/** Rebuilds the error a function threw: same class (so instanceof works), same message. */
export function hydrateError(errorType: string, errorMessage: string): Error {
  const cls = ERROR_CLASSES[errorType];
  if (!cls) return new RemoteFunctionError(errorType, errorMessage);
  const err = Object.create(cls.prototype) as Error & { field?: string };
  Object.defineProperty(err, "message", { value: errorMessage, enumerable: false, writable: true });
  Object.defineProperty(err, "stack", { value: `${errorType}: ${errorMessage}\n    at <lock function>`, enumerable: false, writable: true });
  if (errorType === "InvalidArgumentError") err.field = /^Invalid ([^:]+):/.exec(errorMessage)?.[1];
  if (err instanceof errors.ClaimOutcomeUnknownError) Object.defineProperty(err, "claim", { value: errors.ClaimOutcomeUnknownError.claimIn(errorMessage), enumerable: true });
  return err;
}

/** Invokes a function with a JSON request; returns its JSON answer, or throws the error it threw, rebuilt. */
export async function invokeJson(lambda: LambdaClient, functionName: string, request: unknown): Promise<unknown> {
  const out = await lambda.send(new InvokeCommand({ FunctionName: functionName, Payload: new TextEncoder().encode(JSON.stringify(request)) }));
  const text = out.Payload ? new TextDecoder().decode(out.Payload) : "null";
  const body = JSON.parse(text) as unknown;
  if (out.FunctionError) {
    const { errorType, errorMessage } = (body ?? {}) as { errorType?: string; errorMessage?: string };
    throw hydrateError(errorType ?? out.FunctionError, errorMessage ?? text);
  }
  return body;
}

/** Sends LockRequests to the lock function. */
export class LockFunction {
  constructor(
    readonly lambda: LambdaClient,
    readonly functionName: string,
  ) {}

  async call<R extends LockRequest>(request: R): Promise<LockResponses[R["action"]]> {
    return (await invokeJson(this.lambda, this.functionName, request)) as LockResponses[R["action"]];
  }
}

/** Splits a lock item key into the kind and name the function expects. */
export function kindAndName(key: string): { kind: LockKind; name: string } {
  if (key.startsWith("election#")) return { kind: "election", name: key.slice("election#".length) };
  if (key.startsWith("lock#")) return { kind: "lock", name: key.slice("lock#".length) };
  throw new errors.InvalidArgumentError("key", `'${key}' is not a lock or election key`);
}

/** Heartbeats and release of a lease held through the lock function. */
export class RemoteLeaseKeeper implements LeaseKeeper {
  constructor(private readonly fn: LockFunction) {}

  async heartbeat(key: string, owner: string, current: string, next: string, leaseMs: number) {
    const { kind, name } = kindAndName(key);
    const out = await this.fn.call({ action: "heartbeat", kind, name, owner, version: current, nextVersion: next, leaseMs: Math.round(leaseMs) });
    return out.ok ? { ok: true as const } : { ok: false as const, found: out.version ? { holder: out.holder, version: out.version } : undefined };
  }

  async release(key: string, owner: string, fencingToken: number) {
    const { kind, name } = kindAndName(key);
    return this.fn.call({ action: "release", kind, name, owner, fencingToken });
  }
}

export type { LockGrant };
