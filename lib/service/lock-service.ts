/**
 * The lock service: what the lock Lambda does with a validated LockRequest, using the
 * same LockClient, DynamoDbLockBackend and Claims as the direct mode (so both modes have
 * one implementation of the protocol).
 * (Guarantees and assumptions: see the TSDoc of LockService below.)
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { randomUUID } from "node:crypto";
import { Claims } from "../locks/claims.js";
import { LockClient, type InvocationContext } from "../locks/client.js";
import { systemClock } from "../locks/clock.js";
import { DEFAULT_LEASE_MS, DEFAULT_POLL_MS, DEFAULT_SERVICE_WAIT_MS, SERVICE_RESPONSE_RESERVE_MS } from "../locks/defaults.js";
import { DynamoDbLockBackend } from "../locks/dynamodb-backend.js";
import { Election } from "../locks/election.js";
import type { Lock } from "../locks/lock.js";
import type { LockGrant, LockRequest, LockResponses } from "../locks/protocol.js";
import type { Metrics } from "@aws-lambda-powertools/metrics";
import { LockTimeoutError } from "../errors.js";
import { recordGrant } from "./domain-metrics.js";
import { raceUntil } from "../internal/time.js";


export interface LockServiceOptions {
  tableName: string;
  dynamodb?: DynamoDBClient;
  /** Lease for grants that name none. @default DEFAULT_LEASE_MS (10 s) */
  leaseMs?: number;
  /** Wait for acquire and elect requests that name none (bounded by the invocation). @default DEFAULT_SERVICE_WAIT_MS (10 s) */
  waitMs?: number;
  /** Where to report grants, waits, timeouts and refusals (domain-metrics.ts `recordGrant`); none if absent. */
  metrics?: Metrics;
}

/**
 * The lock service: what the lock Lambda does with a validated LockRequest, using the
 * same LockClient, DynamoDbLockBackend and Claims as the direct mode (so both modes have
 * one implementation of the protocol).
 *
 * Guarantees: stateless between invocations. `acquire` and `elect` wait inside the
 * invocation (never past its remaining time minus a reserve) and hand the lease to the
 * caller without heartbeating it (except a lock handed over and not yet taken up, which
 * one heartbeat first gives the lease the caller asked for, in place of the handover's
 * short one): the caller keeps it with `heartbeat` and ends it with
 * `release`, each one DynamoDB request. The caller measures its lease from before it
 * invoked, so its deadline still falls before any takeover.
 * Assumes: requests were validated against lockRequestSchema; owners are the callers' own
 * ids (IAM decides who may invoke; an owner id is only as secret as the caller keeps it).
 */
export class LockService {
  readonly #options: LockServiceOptions;
  readonly #dynamodb: DynamoDBClient;
  readonly #locks: LockClient;
  /** Heartbeats, releases and reads on behalf of any owner. */
  readonly #backend: DynamoDbLockBackend;
  readonly #claims: Claims;

  constructor(options: LockServiceOptions) {
    this.#options = options;
    this.#dynamodb = options.dynamodb ?? new DynamoDBClient({});
    this.#locks = this.#clientFor("fencepost-service");
    this.#backend = new DynamoDbLockBackend({ dynamodb: this.#dynamodb, tableName: options.tableName, clock: systemClock, pollMs: DEFAULT_POLL_MS });
    this.#claims = new Claims({ tableName: options.tableName, dynamodb: this.#dynamodb });
  }

  /** Carries out one validated request. Typed errors (LockTimeoutError, ...) propagate to the caller. */
  async handle<R extends LockRequest>(request: R, context?: InvocationContext): Promise<LockResponses[R["action"]]> {
    return (await this.#dispatch(request, context)) as LockResponses[R["action"]];
  }

  async #dispatch(req: LockRequest, context: InvocationContext | undefined): Promise<LockResponses[LockRequest["action"]]> {
    const backend = this.#backend;
    switch (req.action) {
      case "acquire": {
        const lock = await this.#measured("acquire", () => this.#clientFor(req.owner).acquire(req.name, { waitMs: this.#wait(req.waitMs, context), leaseMs: req.leaseMs, data: req.data, requestId: req.requestId }));
        return this.#detachWithLease(req.name, req.owner, lock, req.leaseMs ?? this.#options.leaseMs ?? DEFAULT_LEASE_MS, context);
      }
      case "tryAcquire": {
        const lock = await this.#measured("tryAcquire", () => this.#clientFor(req.owner).tryAcquire(req.name, { leaseMs: req.leaseMs, data: req.data, requestId: req.requestId }));
        return lock ? { granted: true, lock: grantOf(req.name, lock) } : { granted: false };
      }
      case "heartbeat": {
        const outcome = await backend.heartbeat({ kind: req.kind ?? "lock", name: req.name }, req.owner, req.version, req.nextVersion, req.leaseMs);
        return outcome.ok ? { ok: true, version: req.nextVersion } : { ok: false, holder: outcome.found?.holder, version: outcome.found?.version };
      }
      case "release": {
        const outcome = await backend.release({ kind: req.kind ?? "lock", name: req.name }, req.owner, req.fencingToken);
        return { released: outcome.released };
      }
      case "abandon":
        return { released: await backend.abandon({ kind: req.kind ?? "lock", name: req.name }, req.owner, req.requestId) };
      case "inspect":
        return (await backend.read({ kind: req.kind ?? "lock", name: req.name })) ?? null;
      case "list":
        return backend.list(req.limit ?? 100, req.startAfter);
      case "elect": {
        const lock = await this.#measured("elect", () =>
          this.#clientFor(req.owner).acquireIn("election", req.name, {
            waitMs: this.#wait(req.waitMs, context),
            leaseMs: req.leaseMs,
            data: req.value,
            requestId: req.requestId,
          }),
        );
        return grantOf(req.name, lock);
      }
      case "leader":
        return (await new Election(this.#locks, req.name).leader()) ?? null;
      case "claim":
        return { claimed: true, incarnation: (await this.#claims.claim(req.namespace, req.value, req.owner, { incarnation: req.incarnation })).incarnation };
      case "releaseClaim":
        await this.#claims.release(req);
        return { released: true };
      case "claimOwner":
        return { owner: (await this.#claims.owner(req.namespace, req.value)) ?? null };
    }
  }

  /** Runs one grant request and reports its outcome (granted after how long, timed out, refused). */
  async #measured<L extends Lock | undefined>(action: "acquire" | "tryAcquire" | "elect", grant: () => Promise<L>): Promise<L> {
    const metrics = this.#options.metrics;
    if (!metrics) return grant();
    const started = performance.now();
    try {
      const lock = await grant();
      recordGrant(metrics, action, lock ? { granted: true, waitedMs: performance.now() - started } : { granted: false, timedOut: false });
      return lock;
    } catch (err) {
      if (err instanceof LockTimeoutError) recordGrant(metrics, action, { granted: false, timedOut: true });
      throw err;
    }
  }

  /**
   * Detaches a lock for its remote caller with the lease it asked for. A lock handed over by
   * a release and held without a write yet runs on the handover's short lease (lease.ts):
   * it is taken up first with one heartbeat asking for `leaseMs`, as the holder's own first
   * heartbeat would. If that heartbeat is refused, the caller gets the grant as it stands,
   * with its real (short) lease. If its outcome is unknown (an error, a refusal that finds
   * the item still at the grant, or no answer within half the grant's remaining lease, or within the invocation's time
   * less half the response reserve: the caller must hear while it can still use the grant),
   * the caller gets that too, and the version the heartbeat would have written
   * (`unsettledVersion`), which its Lock recognises as its own. (A request with an id never
   * needs this: its handovers are taken up by an accept, which names it; dynamodb-backend.ts.)
   */
  async #detachWithLease(name: string, owner: string, lock: Lock, leaseMs: number, context: InvocationContext | undefined): Promise<LockGrant> {
    const leftMs = lock.remainingMs();
    const grant = grantOf(name, lock);
    if (grant.leaseMs >= leaseMs) return grant;
    const next = randomUUID();
    // Unknown until the heartbeat answers (any error: an earlier attempt of it may have
    // landed). Refused only when the item has moved past the grant: still at it (ours), the
    // heartbeat may yet land (a copy stuck in the network).
    const takeUp: { outcome: "landed" | "refused" | "unknown" } = { outcome: "unknown" };
    const answered = this.#backend.heartbeat({ kind: "lock", name }, owner, grant.version, next, leaseMs).then(
      (result) => void (takeUp.outcome = result.ok ? "landed" : result.found?.version === grant.version && result.found.holder === owner ? "unknown" : "refused"),
      () => undefined,
    );
    // Answer while the caller has time to hear it, and half the grant's own lease left to use.
    const budgetMs = Math.min(leftMs / 2, context ? context.getRemainingTimeInMillis() - SERVICE_RESPONSE_RESERVE_MS / 2 : leftMs);
    await raceUntil(answered, Date.now() + budgetMs);
    if (takeUp.outcome === "landed") return { ...grant, version: next, leaseMs };
    return takeUp.outcome === "unknown" ? { ...grant, unsettledVersion: next } : grant;
  }

  #clientFor(owner: string): LockClient {
    const { tableName, leaseMs } = this.#options;
    return new LockClient({ tableName, dynamodb: this.#dynamodb, ownerId: owner, leaseMs: leaseMs ?? DEFAULT_LEASE_MS });
  }

  #wait(requested: number | undefined, context: InvocationContext | undefined): number {
    const wanted = requested ?? this.#options.waitMs ?? DEFAULT_SERVICE_WAIT_MS;
    const available = context ? context.getRemainingTimeInMillis() - SERVICE_RESPONSE_RESERVE_MS : wanted;
    return Math.max(1, Math.min(wanted, available));
  }
}

function grantOf(name: string, lock: Lock): LockGrant {
  const { version, fencingToken, leaseMs, data, adopted } = lock.detach();
  return { name, fencingToken, version, leaseMs, ...(data !== undefined ? { data } : {}), ...(adopted ? { adopted } : {}) };
}
