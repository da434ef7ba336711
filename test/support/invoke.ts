/**
 * Faults on a caller's Lambda client for the lock function's requests (lib/check/middleware.ts
 * underneath, inside the SDK's retry loop).
 */
import type { LambdaClient } from "@aws-sdk/client-lambda";
import { injectFaults, type RequestInfo } from "../../lib/check/middleware.js";

/** The lock request an Invoke carries (empty for any other command). */
export function lockRequestOf(request: RequestInfo): { action?: string; name?: string; requestId?: string } {
  if (request.commandName !== "InvokeCommand") return {};
  return JSON.parse(new TextDecoder().decode(request.input["Payload"] as Uint8Array)) as { action?: string };
}

/**
 * The first `action` invocation for `name` is delayed in the network by `delayMs`: the caller
 * hears a timeout at once (the SDK sends it again), and the copy reaches the function later.
 * `late` holds that delivery (it settles once the copy was answered); `remove` takes the fault off.
 */
export function delayFirstInvoke(lambda: LambdaClient, action: string, name: string, delayMs: number): { late: Promise<void>[]; remove: () => void } {
  const late: Promise<void>[] = [];
  let first = true;
  const remove = injectFaults(
    lambda,
    (request) => {
      const sent = lockRequestOf(request);
      if (sent.action !== action || sent.name !== name || !first) return undefined;
      first = false;
      return { kind: "late-delivery", delayMs };
    },
    undefined,
    (delivery) => late.push(delivery),
  );
  return { late, remove };
}
