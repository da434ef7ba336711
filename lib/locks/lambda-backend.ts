/**
 * LambdaLockBackend: the lock protocol through the lock function (lib/service), for callers
 * that may invoke the function but not touch the table.
 * (Guarantees and assumptions: see the TSDoc of LambdaLockBackend below.)
 */
import type { LambdaClient } from "@aws-sdk/client-lambda";
import type { AcquireRequest, Grant, LeaseName, LockBackend } from "./backend.js";
import type { MonotonicClock } from "./clock.js";
import { randomBytes } from "node:crypto";
import { FencepostError, InvalidArgumentError, LockTimeoutError } from "../errors.js";
import type { LockGrant, LockPage, LockRequest, LockResponses, LockState } from "./protocol.js";
import { invokeJson } from "../internal/lambda.js";

/** Longest wait one acquire invocation is asked for; longer waits take several. */
export const WAIT_SLICE_MS = 20_000;

/**
 * LambdaLockBackend: the lock protocol through the lock function (lib/service), for callers
 * that may invoke the function but not touch the table.
 *
 * Semantics are the direct mode's, because the function runs a DynamoDbLockBackend: it
 * waits for the grant inside the invocation and hands the lease over without
 * heartbeating it; this side keeps it with `heartbeat` and ends it with `release`, one
 * invocation (one DynamoDB request) each. The grant's `sentAt` is taken before the invoke
 * is sent, which precedes the granting write, so the holder still stops believing before
 * any waiter may take over (see lock.ts). A wait longer than one invocation allows is
 * asked for a slice at a time.
 *
 * Lost answers: every acquire, elect and tryAcquire invocation carries a fresh `requestId`
 * (protocol.ts), the same in the SDK's retries of it, so a copy that runs after an
 * earlier one's grant (its answer lost, or both at once) answers with that grant instead
 * of waiting behind it; the grant's `sentAt` precedes every copy. A function deployed
 * before request ids refuses the field: this side then sends without it, and a lost
 * answer leaves an orphan lease that expires after one lease (safe).
 *
 * Errors thrown by the function come back as the same classes (errors.ts `fromWire`), so
 * `instanceof` works across the boundary.
 * Assumes: `sweep` needs the table: it is refused here.
 */
export class LambdaLockBackend implements LockBackend {
  constructor(
    readonly lambda: LambdaClient,
    /** Name or ARN of the lock function. */
    readonly functionName: string,
    readonly clock: MonotonicClock,
  ) {}

  /** Whether the function knows `requestId` (until it refuses one as an unknown field). */
  #requestIds = true;

  /** Sends one LockRequest and returns the function's answer (or throws the error it threw). */
  async call<R extends LockRequest>(request: R): Promise<LockResponses[R["action"]]> {
    return (await invokeJson(this.lambda, this.functionName, request)) as LockResponses[R["action"]];
  }

  /** Sends a granting request under a fresh request id (every copy of this invocation carries it). */
  async #grantCall<R extends Extract<LockRequest, { action: "acquire" | "tryAcquire" | "elect" }>>(request: R): Promise<LockResponses[R["action"]]> {
    if (!this.#requestIds) return this.call(request);
    try {
      return await this.call({ ...request, requestId: randomBytes(16).toString("base64url") });
    } catch (err) {
      // A function deployed before request ids: it refused the request before doing anything.
      if (!(err instanceof InvalidArgumentError && err.field === "requestId")) throw err;
      this.#requestIds = false;
      return this.call(request);
    }
  }

  async acquire(request: AcquireRequest): Promise<Grant> {
    const { kind, name, owner, data, signal } = request;
    const deadline = this.clock.now() + request.waitMs;
    for (;;) {
      signal?.throwIfAborted();
      const sentAt = this.clock.now();
      const slice = Math.floor(Math.max(0, Math.min(deadline - sentAt, WAIT_SLICE_MS)));
      const common = { name, owner, waitMs: slice, leaseMs: Math.round(request.leaseMs) };
      try {
        const grant = await this.#grantCall(kind === "election" ? { action: "elect", ...common, value: data } : { action: "acquire", ...common, data });
        return grantOf(grant, sentAt, request.leaseMs);
      } catch (err) {
        if (!(err instanceof LockTimeoutError) || this.clock.now() >= deadline) throw err;
      }
    }
  }

  async tryAcquire(request: Omit<AcquireRequest, "kind" | "waitMs" | "signal">): Promise<Grant | undefined> {
    const sentAt = this.clock.now();
    const out = await this.#grantCall({ action: "tryAcquire", name: request.name, owner: request.owner, leaseMs: Math.round(request.leaseMs), data: request.data });
    return out.granted ? grantOf(out.lock, sentAt, request.leaseMs) : undefined;
  }

  async read(lease: LeaseName): Promise<LockState | undefined> {
    // The actions every deployed lock function understands: `inspect` (no kind: a lock) and `leader`.
    if (lease.kind === "lock") return (await this.call({ action: "inspect", name: lease.name })) ?? undefined;
    const leader = await this.call({ action: "leader", name: lease.name });
    return leader ? { holder: leader.holder, fencingToken: leader.term, data: leader.value, leaseMs: 0, released: false, waiters: 0, expiresAt: undefined, expired: false } : undefined;
  }

  async heartbeat(lease: LeaseName, owner: string, current: string, next: string, leaseMs: number) {
    const out = await this.call({ action: "heartbeat", kind: lease.kind, name: lease.name, owner, version: current, nextVersion: next, leaseMs: Math.round(leaseMs) });
    return out.ok ? { ok: true as const } : { ok: false as const, found: out.version ? { holder: out.holder, version: out.version } : undefined };
  }

  async release(lease: LeaseName, owner: string, fencingToken: number) {
    return this.call({ action: "release", kind: lease.kind, name: lease.name, owner, fencingToken });
  }

  async list(limit: number, startAfter?: string): Promise<LockPage> {
    return this.call({ action: "list", limit, ...(startAfter ? { startAfter } : {}) });
  }

  async sweep(): Promise<number> {
    throw new FencepostError(`This LockClient talks to the lock function '${this.functionName}'; sweep needs direct table access (a LockClient with tableName).`);
  }
}

/**
 * The grant as this side holds it: a lease shorter than asked (a handover the service could
 * not take up in time) lasts as it stands, and heartbeats still ask for the lease asked.
 */
function grantOf(grant: LockGrant, sentAt: number, askedLeaseMs: number): Grant {
  const asked = Math.round(askedLeaseMs);
  const short = grant.leaseMs < asked ? { leaseMs: asked, firstLeaseMs: grant.leaseMs } : { leaseMs: grant.leaseMs };
  return { fencingToken: grant.fencingToken, version: grant.version, data: grant.data, ...short, sentAt, unsettledVersion: grant.unsettledVersion };
}
