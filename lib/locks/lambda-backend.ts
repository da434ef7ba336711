/**
 * LambdaLockBackend: the lock protocol through the lock function (lib/service), for callers
 * that may invoke the function but not touch the table.
 * (Guarantees and assumptions: see the TSDoc of LambdaLockBackend below.)
 */
import type { LambdaClient } from "@aws-sdk/client-lambda";
import type { AcquireRequest, Grant, LeaseName, LockBackend } from "./backend.js";
import type { MonotonicClock } from "./clock.js";
import { randomBytes } from "node:crypto";
import { requestIds } from "./request-ids.js";
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
 * Lost answers: every acquire, elect and tryAcquire call carries a fresh `requestId`
 * (protocol.ts), the same in the SDK's retries and in every slice of a long wait, so a
 * copy that runs after another's grant (its answer lost, both at once, or a slice the
 * caller gave up on) answers with that grant (`adopted`) instead of waiting behind it. An
 * adopted grant's lease is measured from the call's first send, which precedes every
 * copy's write; one with less than half of it left is taken up with a heartbeat first. A
 * function deployed before request ids refuses the field: this side then sends without
 * it, and a lost answer leaves an orphan lease that expires after one lease (safe).
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

  /** Whether to send `requestId`: until a function refuses it as an unknown field, before any call with one was served. */
  #requestIds = true;
  /** A call with a request id was served: the function knows them, and a refusal naming one is about that request. */
  #requestIdsKnown = false;

  /** Sends one LockRequest and returns the function's answer (or throws the error it threw). */
  async call<R extends LockRequest>(request: R): Promise<LockResponses[R["action"]]> {
    return (await invokeJson(this.lambda, this.functionName, request)) as LockResponses[R["action"]];
  }

  /** Sends a granting request under `requestId` (every copy of it carries the id), or without one to a function that predates them. */
  async #grantCall<R extends Extract<LockRequest, { action: "acquire" | "tryAcquire" | "elect" }>>(request: R, requestId: string): Promise<LockResponses[R["action"]]> {
    if (!this.#requestIds) return this.call(request);
    try {
      const answer = await this.call({ ...request, requestId });
      this.#requestIdsKnown = true;
      return answer;
    } catch (err) {
      // A function deployed before request ids: it refused the request before doing anything.
      if (this.#requestIdsKnown || requestIdRefusal(err) !== "unknown-field") throw err;
      this.#requestIds = false;
      return this.call(request);
    }
  }

  async acquire(request: AcquireRequest): Promise<Grant> {
    const { kind, name, owner, data, signal } = request;
    // One request id for every slice: a grant a copy of an earlier slice made is adopted by a later one.
    let requestId = newRequestId();
    let firstSentAt = this.clock.now();
    const deadline = firstSentAt + request.waitMs;
    try {
      for (;;) {
        signal?.throwIfAborted();
        const sentAt = this.clock.now();
        const slice = Math.floor(Math.max(0, Math.min(deadline - sentAt, WAIT_SLICE_MS)));
        const common = { name, owner, waitMs: slice, leaseMs: Math.round(request.leaseMs) };
        try {
          const grant = await this.#grantCall(kind === "election" ? { action: "elect", ...common, value: data } : { action: "acquire", ...common, data }, requestId);
          if (!grant.adopted) return grantOf(grant, sentAt, request.leaseMs);
          const held = await this.#adopt({ kind, name }, owner, grant, requestId, firstSentAt, request.leaseMs);
          if (held) return held;
        } catch (err) {
          if (this.clock.now() >= deadline) throw err;
          if (requestIdRefusal(err) === "grant-moved-on") {
            // A grant this request made has moved on without this side (an operator broke it
            // before its answer came back, say): wait on as a new request.
            requestId = newRequestId();
            firstSentAt = this.clock.now();
            continue;
          }
          if (!(err instanceof LockTimeoutError)) throw err;
        }
      }
    } catch (err) {
      await this.#abandon({ kind, name }, owner, requestId);
      throw err;
    }
  }

  async tryAcquire(request: Omit<AcquireRequest, "kind" | "waitMs" | "signal">): Promise<Grant | undefined> {
    const sentAt = this.clock.now();
    const requestId = newRequestId();
    const out = await this.#grantCall({ action: "tryAcquire", name: request.name, owner: request.owner, leaseMs: Math.round(request.leaseMs), data: request.data }, requestId).catch(async (err: unknown) => {
      await this.#abandon({ kind: "lock", name: request.name }, request.owner, requestId);
      throw err;
    });
    // An adopted grant was made by an earlier copy of this very call: after `sentAt` too.
    return out.granted ? grantOf(out.lock, sentAt, request.leaseMs) : undefined;
  }

  /**
   * Giving up on a request (its wait timed out or was aborted, or its outcome is unknown):
   * a grant one of its copies made and nobody took is released, since copies never give
   * one back (another copy may have answered with it). Best effort: failing that (or on a
   * function before request ids), the grant ends with its lease.
   */
  async #abandon(lease: LeaseName, owner: string, requestId: string): Promise<void> {
    if (!this.#requestIds) return;
    await this.call({ action: "abandon", kind: lease.kind, name: lease.name, owner, requestId }).catch(() => undefined);
  }

  /**
   * A grant another copy of this request made (LockGrant `adopted`), measured from the
   * request's first send. With less than half its lease left by that measure (it was made
   * in an earlier slice), it is taken up with a heartbeat first, measured from that one's
   * send. Undefined: the heartbeat found it gone (taken over), so the wait goes on.
   */
  async #adopt(lease: LeaseName, owner: string, grant: LockGrant, requestId: string, firstSentAt: number, askedLeaseMs: number): Promise<Grant | undefined> {
    const adopted = grantOf(grant, firstSentAt, askedLeaseMs);
    if (firstSentAt + (adopted.firstLeaseMs ?? adopted.leaseMs) / 2 > this.clock.now()) return adopted;
    // Named for the request like its grants, so `abandon` can still give it back if this heartbeat's outcome stays unknown.
    const next = requestIds(requestId).next();
    const sentAt = this.clock.now();
    const outcome = await this.heartbeat(lease, owner, grant.version, next, Math.round(askedLeaseMs));
    return outcome.ok ? { fencingToken: grant.fencingToken, version: next, data: grant.data, leaseMs: Math.round(askedLeaseMs), sentAt } : undefined;
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
 * Why a function refused a request's `requestId`: a function before request ids does not
 * know the field (its validation says so: lib/service/validate.ts), or the request's grant
 * has moved on (request-ids.ts `finished`). Undefined for any other error.
 */
function requestIdRefusal(err: unknown): "unknown-field" | "grant-moved-on" | undefined {
  if (!(err instanceof InvalidArgumentError && err.field === "requestId")) return undefined;
  return err.message.includes("is not a known field") ? "unknown-field" : "grant-moved-on";
}

/** A request id (protocol.ts): 16 random bytes, base64url (22 characters). */
function newRequestId(): string {
  return randomBytes(16).toString("base64url");
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
