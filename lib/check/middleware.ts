/**
 * SDK middleware for evidence: count the requests a client sends, and inject faults
 * into them. Both sit inside the SDK's retry loop, so they see (and count) every attempt
 * that would cross the network.
 *
 * Faults: `lose-request` (never reaches the service), `lose-response` (the service applied
 * it, the caller hears a timeout), `throttle` (a 400 ThrottlingException, not applied),
 * `server-error` (a 500 before the service applied it), `delay` (the response arrives
 * `delayMs` late), `late-delivery` (the caller hears a timeout at once and the SDK
 * retries, but the request itself is only delayed: it reaches the service `delayMs`
 * later, a "ghost" write that lands after the client gave up on it).
 * Duplicates (`duplicateRequests`): a request sent twice at once, as a network that
 * retransmits or an at-least-once invoker may; the caller hears one of the two answers,
 * after both copies were answered.
 * Assumes: an AWS SDK v3 client (anything with a middlewareStack).
 */

export type FaultKind = "lose-request" | "lose-response" | "throttle" | "server-error" | "delay" | "late-delivery";

export interface RequestInfo {
  /** e.g. "UpdateItemCommand" */
  readonly commandName: string;
  readonly input: Readonly<Record<string, unknown>>;
}

/** Decides, per request, which fault (if any) to inject. */
export type FaultPlan = (request: RequestInfo) => { kind: FaultKind; delayMs?: number } | undefined;

interface MiddlewareClient {
  middlewareStack: {
    add(middleware: unknown, options: Record<string, unknown>): void;
    remove(name: string): boolean;
  };
}

type Handler = (args: unknown) => Promise<unknown>;
type Context = { commandName?: string };

/**
 * An error shaped like the AWS SDK's (name, `$metadata`, `$fault`), as injected faults
 * raise them: with `status` a definite answer (4xx: not applied), without one a failure
 * whose outcome the caller cannot know.
 */
export function injectedFailure(name: string, message: string, status?: number): Error {
  const err = new Error(message);
  err.name = name;
  Object.assign(err, { $metadata: status ? { httpStatusCode: status } : {}, $fault: status && status < 500 ? "client" : "server" });
  return err;
}

/** Counts requests by command name. */
export class RequestCounter {
  readonly byCommand = new Map<string, number>();

  get total(): number {
    let sum = 0;
    for (const count of this.byCommand.values()) sum += count;
    return sum;
  }

  reset(): void {
    this.byCommand.clear();
  }

  /** Adds counting to `client`; returns a function that removes it. */
  attach(client: MiddlewareClient): () => void {
    const name = `fencepostCount${Math.random().toString(36).slice(2)}`;
    client.middlewareStack.add(
      (next: Handler, context: Context) => async (args: unknown) => {
        const command = context.commandName ?? "unknown";
        this.byCommand.set(command, (this.byCommand.get(command) ?? 0) + 1);
        return next(args);
      },
      { step: "finalizeRequest", priority: "low", name },
    );
    return () => void client.middlewareStack.remove(name);
  }
}

/**
 * Injects the faults `plan` chooses into `client`'s requests; returns a function that
 * removes them. `onLate` receives each late delivery still on its way (it settles once
 * the request reached the service, or failed to), so a run can wait for them to land.
 */
export function injectFaults(client: MiddlewareClient, plan: FaultPlan, onFault?: (kind: FaultKind, request: RequestInfo) => void, onLate?: (delivery: Promise<void>) => void): () => void {
  const name = `fencepostFaults${Math.random().toString(36).slice(2)}`;
  client.middlewareStack.add(
    (next: Handler, context: Context) => async (args: unknown) => {
      const request: RequestInfo = { commandName: context.commandName ?? "unknown", input: (args as { input?: Record<string, unknown> }).input ?? {} };
      const fault = plan(request);
      if (!fault) return next(args);
      onFault?.(fault.kind, request);
      switch (fault.kind) {
        case "lose-request":
          throw injectedFailure("TimeoutError", "injected fault: request lost before it reached the service");
        case "throttle":
          throw injectedFailure("ThrottlingException", "injected fault: throttled", 400);
        case "server-error":
          throw injectedFailure("InternalServerError", "injected fault: 500 before the write was applied", 500);
        case "lose-response": {
          await next(args);
          throw injectedFailure("TimeoutError", "injected fault: response lost after the service applied the request");
        }
        case "delay": {
          const result = await next(args);
          await new Promise((r) => setTimeout(r, fault.delayMs ?? 100));
          return result;
        }
        case "late-delivery": {
          const delivery = new Promise((r) => setTimeout(r, fault.delayMs ?? 500)).then(
            () => next(args),
          ).then(
            () => undefined,
            () => undefined,
          );
          onLate?.(delivery);
          throw injectedFailure("TimeoutError", "injected fault: request delayed in the network; it reaches the service later");
        }
      }
    },
    { step: "finalizeRequest", priority: "low", name },
  );
  return () => void client.middlewareStack.remove(name);
}

/** How one copy of a duplicated request ended: its deserialized output, or the error it raised. */
export type Delivery = { readonly ok: true; readonly output: unknown } | { readonly ok: false; readonly error: unknown };

/** Decides, per request, whether to send it twice: the second copy `lagMs` after the first; the caller hears copy `answer`. */
export type DuplicatePlan = (request: RequestInfo) => { lagMs: number; answer: 0 | 1 } | undefined;

/**
 * Sends the requests `plan` picks twice, the second copy `lagMs` after the first, both
 * to the service, and answers once both have settled (the duplicates are concurrent, never
 * late: a copy that lands after the caller moved on is late delivery): the caller hears
 * the answer of the copy `plan` names, and `onDuplicate` hears both. `onSent` receives,
 * per duplicated request, a promise that settles after that (so a run can count them and
 * wait for them). Returns a function that removes it.
 */
export function duplicateRequests(
  client: MiddlewareClient,
  plan: DuplicatePlan,
  onDuplicate?: (request: RequestInfo, deliveries: readonly [Delivery, Delivery]) => void,
  onSent?: (settled: Promise<void>) => void,
): () => void {
  const name = `fencepostDuplicates${Math.random().toString(36).slice(2)}`;
  const settle = (p: Promise<unknown>): Promise<{ delivery: Delivery; result: unknown }> =>
    p.then(
      (result) => ({ delivery: { ok: true, output: (result as { output?: unknown }).output }, result }),
      (error: unknown) => ({ delivery: { ok: false, error }, result: undefined }),
    );
  client.middlewareStack.add(
    (next: Handler, context: Context) => async (args: unknown) => {
      const request: RequestInfo = { commandName: context.commandName ?? "unknown", input: (args as { input?: Record<string, unknown> }).input ?? {} };
      const duplicate = plan(request);
      if (!duplicate) return next(args);
      const both = Promise.all([settle(next(args)), settle(new Promise((r) => setTimeout(r, duplicate.lagMs)).then(() => next(args)))]);
      onSent?.(both.then(([a, b]) => onDuplicate?.(request, [a.delivery, b.delivery])));
      const heard = (await both)[duplicate.answer];
      if (heard.delivery.ok) return heard.result;
      throw heard.delivery.error;
    },
    { step: "finalizeRequest", priority: "low", name },
  );
  return () => void client.middlewareStack.remove(name);
}
