/** Lock clients on the shared local cloud, each with its own SDK client (so faults stay per client). */
import { randomUUID } from "node:crypto";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { injectedFailure, injectFaults, RequestCounter } from "../../lib/check/middleware.js";
import { LockClient, type LockClientOptions } from "../../lib/index.js";
import { LeaseStore } from "../../lib/locks/lease.js";
import { dynamoDbClient, lockTable } from "./cloud.js";

export function newLockClient(options: Partial<LockClientOptions> = {}) {
  const dynamodb = options.dynamodb ?? dynamoDbClient();
  const requests = new RequestCounter();
  requests.attach(dynamodb);
  const client = new LockClient({ tableName: lockTable(), dynamodb, ...options });
  return { client, dynamodb, requests };
}

/** The lock table's persistence layer, to read or arrange items beneath the client. */
export function leaseStore(): LeaseStore {
  return new LeaseStore(dynamoDbClient(), lockTable());
}

export function uniqueName(prefix = "lock"): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

export const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `check` holds (polling every 10 ms), or fails after `ms`. */
export async function until(check: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A grant UpdateItem (not the creating transaction). */
const isGrantUpdate = (input: Record<string, unknown>) => /holder = :me/.test(String(input["UpdateExpression"] ?? ""));

/** The creating transaction of a lock item (`grantMissing`). */
export const isCreatingTransaction = (input: Record<string, unknown>) => Array.isArray(input["TransactItems"]);

/**
 * Delays in the network the first grant write `client` sends once `arm()` is called (a
 * grant UpdateItem, or what `isGrant` picks): the SDK hears a timeout at once and sends the
 * same request again, while the first copy waits until `deliver()` and then reaches
 * DynamoDB; `late` settles with its answer (the token an UpdateItem granted, or the error's name).
 */
export function delayFirstGrant(dynamodb: DynamoDBClient, isGrant: (input: Record<string, unknown>) => boolean = isGrantUpdate) {
  let armed = false;
  let deliver!: () => void;
  const delivered = new Promise<void>((r) => (deliver = r));
  let late: { token?: string; error?: string } | undefined;
  const state = {
    arm: () => void (armed = true),
    deliver: () => deliver(),
    /** The first grant was caught and is on its way. */
    held: false,
    /** Its answer once it arrived. */
    get late() {
      return late;
    },
  };
  dynamodb.middlewareStack.add(
    (next) => async (args) => {
      const input = args.input as unknown as Record<string, unknown>;
      if (!armed || state.held || !isGrant(input)) return next(args);
      state.held = true;
      void delivered
        .then(() => next(args))
        .then(
          (out) => (late = { token: (out.output as { Attributes?: { token?: { N?: string } } }).Attributes?.token?.N }),
          (err: unknown) => (late = { error: (err as Error).name }),
        );
      throw injectedFailure("TimeoutError", "injected fault: request delayed in the network; it reaches the service later");
    },
    { step: "finalizeRequest", priority: "low", name: "late-grant" },
  );
  return state;
}

/**
 * Teaches `client` that names it meets already exist, with three such names: its first
 * grant for a name it has not read is then the blind UpdateItem (new names go to the
 * creating transaction, whose late copy finds the item there).
 */
export async function expectExistingNames(client: LockClient, maker: LockClient): Promise<void> {
  for (let i = 0; i < 3; i++) {
    const existing = uniqueName("existing");
    await (await maker.acquire(existing)).release();
    const mine = await client.tryAcquire(existing);
    if (!mine) throw new Error(`tryAcquire of the free lock ${existing} was refused`);
    await mine.release();
  }
}

/**
 * A lock the client `<prefix>-owner` acquired with a blind grant whose first copy is still
 * in the network (`delayed.deliver()` lets it land), on a name `<prefix>-maker` made first.
 */
export async function acquiredThroughDelayedGrant(prefix: string) {
  const { client, dynamodb } = newLockClient({ ownerId: `${prefix}-owner`, leaseMs: 5000 });
  const delayed = delayFirstGrant(dynamodb);
  const maker = newLockClient({ ownerId: `${prefix}-maker` }).client;
  await expectExistingNames(client, maker);
  const name = uniqueName(prefix);
  await (await maker.acquire(name)).release();
  delayed.arm();
  const lock = await client.acquire(name);
  return { client, dynamodb, delayed, name, lock };
}

/**
 * `dynamodb`'s wall clock runs `offsetMs` behind: every time its lock writes carry (`:now`,
 * `:freedBefore`) is shifted; only in the writes `only` picks, if given.
 */
export function clockBehind(dynamodb: DynamoDBClient, offsetMs: number, only?: (input: { UpdateExpression?: string }) => boolean): void {
  dynamodb.middlewareStack.add(
    (next) => async (args) => {
      if (only && !only(args.input as { UpdateExpression?: string })) return next(args);
      const values = (args.input as { ExpressionAttributeValues?: Record<string, { N?: string }> }).ExpressionAttributeValues;
      for (const name of [":now", ":freedBefore"]) {
        if (values?.[name]?.N !== undefined) values[name] = { N: String(Number(values[name].N) - offsetMs) };
      }
      return next(args);
    },
    { step: "initialize", name: "clock-behind" },
  );
}

/**
 * A waiter that queues for `name` and then crashes: cut off from DynamoDB and abandoned,
 * its place left behind. Resolves to its client once the queue holds `queued` places and
 * the waiter is gone.
 */
export async function queueDeadWaiter(name: string, options: Partial<LockClientOptions>, queued = 1) {
  const dead = newLockClient(options);
  let cut = false;
  injectFaults(dead.dynamodb, () => (cut ? { kind: "lose-request" } : undefined));
  const stop = new AbortController();
  const waiting = dead.client.acquire(name, { waitMs: 60_000, signal: stop.signal }).catch(() => undefined);
  await until(async () => (await leaseStore().read(`lock#${name}`))?.queue.length === queued);
  cut = true;
  stop.abort();
  await waiting;
  return dead;
}
