/**
 * Scripted faults for deterministic interleavings, on a real SDK client (inside its retry
 * loop, like lib/check's fault injection):
 * - `holdResponse`: the first matching request reaches the service and is applied; its
 *   response waits until `release()` (a slow response).
 * - `ghost`: the first matching request does not reach the service now; the caller sees a
 *   timeout (and the SDK retries; `lostRetries` more matching requests are lost outright,
 *   so that the caller gives up). `deliver()` sends it later (a late delivery).
 * Note: the SDK gives TransactWriteItems an idempotency token, so a late copy of a
 * transaction whose retry already applied is a no-op on DynamoDB's side (for 10 minutes).
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";

type Next = (args: unknown) => Promise<unknown>;
type Match = (commandName: string, input: Record<string, unknown>) => boolean;

function install(client: DynamoDBClient, match: Match, body: (next: Next, args: unknown) => Promise<unknown>, lostRetries = 0): void {
  let armed = true;
  let toLose = lostRetries;
  (client.middlewareStack as unknown as { add(middleware: unknown, options: object): void }).add(
    (next: Next, context: { commandName?: string }) => async (args: unknown) => {
      const input = (args as { input?: Record<string, unknown> }).input ?? {};
      if (!match(context.commandName ?? "", input)) return next(args);
      if (!armed) {
        if (toLose-- > 0) throw Object.assign(new Error("scripted fault: request lost"), { name: "TimeoutError", $metadata: {} });
        return next(args);
      }
      armed = false;
      return body(next, args);
    },
    { step: "finalizeRequest", priority: "low", name: `intercept${Math.random().toString(36).slice(2)}` },
  );
}

/** Does this request touch `table` (directly, or as one item of a transaction)? */
export const touches = (table: string): Match => (_command, input) => JSON.stringify(input).includes(`"TableName":"${table}"`);

export function holdResponse(client: DynamoDBClient, match: Match): { held: Promise<void>; release(): void } {
  let onHeld!: () => void;
  let release!: () => void;
  const held = new Promise<void>((r) => (onHeld = r));
  const released = new Promise<void>((r) => (release = r));
  install(client, match, async (next, args) => {
    const result = await next(args);
    onHeld();
    await released;
    return result;
  });
  return { held, release };
}

export function ghost(client: DynamoDBClient, match: Match, lostRetries = 0): { lost: Promise<void>; deliver(): Promise<unknown> } {
  let onLost!: () => void;
  let send: (() => Promise<unknown>) | undefined;
  const lost = new Promise<void>((r) => (onLost = r));
  install(client, match, async (next, args) => {
    send = () => next(args);
    onLost();
    throw Object.assign(new Error("scripted fault: request delayed in the network"), { name: "TimeoutError", $metadata: {} });
  }, lostRetries);
  return {
    lost,
    deliver: () => {
      if (!send) throw new Error("no request was intercepted");
      return send();
    },
  };
}
