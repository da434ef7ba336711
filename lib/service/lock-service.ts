/**
 * The lock service: what the lock Lambda does with a validated LockRequest, using the
 * same LockClient, LeaseStore and Claims as the direct mode (so both modes have one
 * implementation of the protocol).
 *
 * Guarantees: stateless between invocations. `acquire` and `elect` wait inside the
 * invocation (never past its remaining time minus a reserve) and hand the lease to the
 * caller without heartbeating it: the caller keeps it with `heartbeat` and ends it with
 * `release`, each one DynamoDB request. The caller measures its lease from before it
 * invoked, so its deadline still falls before any takeover.
 * Assumes: requests were validated against lockRequestSchema; owners are the callers' own
 * ids (IAM decides who may invoke; an owner id is only as secret as the caller keeps it).
 */
import { DynamoDBClient, ScanCommand } from "@aws-sdk/client-dynamodb";
import { randomUUID } from "node:crypto";
import { Claims } from "../locks/claims.js";
import { LockClient, stateOf, type InvocationContext } from "../locks/client.js";
import { electionKey } from "../locks/election.js";
import { parseLease } from "../locks/lease.js";
import type { Lock } from "../locks/lock.js";
import type { LockGrant, LockKind, LockRequest, LockResponses } from "./lock-api.js";

/** Time kept back from the invocation for the response. */
const RESERVE_MS = 1000;

export interface LockServiceOptions {
  tableName: string;
  dynamodb?: DynamoDBClient;
  /** Default lease for grants that name none. Default 10 000 ms. */
  leaseMs?: number;
  /** Default wait for acquire and elect. Default 10 000 ms (bounded by the invocation). */
  waitMs?: number;
}

export const keyOf = (kind: LockKind | undefined, name: string) => (kind === "election" ? electionKey(name) : `lock#${name}`);

export class LockService {
  readonly #options: LockServiceOptions;
  readonly #dynamodb: DynamoDBClient;
  readonly #locks: LockClient;
  readonly #claims: Claims;

  constructor(options: LockServiceOptions) {
    this.#options = options;
    this.#dynamodb = options.dynamodb ?? new DynamoDBClient({});
    this.#locks = this.#clientFor("fencepost-service");
    this.#claims = new Claims({ tableName: options.tableName, dynamodb: this.#dynamodb });
  }

  /** Carries out one validated request. Typed errors (LockTimeoutError, ...) propagate to the caller. */
  async handle<R extends LockRequest>(request: R, context?: InvocationContext): Promise<LockResponses[R["action"]]> {
    return (await this.#dispatch(request, context)) as LockResponses[R["action"]];
  }

  async #dispatch(req: LockRequest, context: InvocationContext | undefined): Promise<LockResponses[LockRequest["action"]]> {
    const store = this.#locks.store;
    switch (req.action) {
      case "acquire": {
        const lock = await this.#clientFor(req.owner).acquire(req.name, { waitMs: this.#wait(req.waitMs, context), leaseMs: req.leaseMs, data: req.data });
        return grantOf(req.name, lock);
      }
      case "tryAcquire": {
        const lock = await this.#clientFor(req.owner).tryAcquire(req.name, { leaseMs: req.leaseMs, data: req.data });
        return lock ? { granted: true, lock: grantOf(req.name, lock) } : { granted: false };
      }
      case "heartbeat": {
        const outcome = await store.heartbeat(keyOf(req.kind, req.name), req.owner, req.version, req.nextVersion, req.leaseMs);
        return outcome.ok ? { ok: true, version: req.nextVersion } : { ok: false, holder: outcome.found?.holder, version: outcome.found?.version };
      }
      case "release": {
        const outcome = await store.release(keyOf(req.kind, req.name), req.owner, req.fencingToken, randomUUID());
        return { released: outcome.released };
      }
      case "inspect":
        return stateOf(await store.read(keyOf("lock", req.name))) ?? null;
      case "list":
        return this.#list(req.limit ?? 100, req.startAfter);
      case "elect": {
        const lock = await this.#clientFor(req.owner).acquireKey(electionKey(req.name), req.name, {
          waitMs: this.#wait(req.waitMs, context),
          leaseMs: req.leaseMs,
          data: req.value,
        });
        return grantOf(req.name, lock);
      }
      case "leader":
        return (await this.#locks.leader(req.name)) ?? null;
      case "claim":
        return { claimed: true, incarnation: (await this.#claims.claim(req.namespace, req.value, req.owner, { incarnation: req.incarnation })).incarnation };
      case "releaseClaim":
        await this.#claims.release(req);
        return { released: true };
      case "claimOwner":
        return { owner: (await this.#claims.owner(req.namespace, req.value)) ?? null };
    }
  }

  #clientFor(owner: string): LockClient {
    const { tableName, leaseMs } = this.#options;
    return new LockClient({ tableName, dynamodb: this.#dynamodb, ownerId: owner, leaseMs: leaseMs ?? 10_000 });
  }

  #wait(requested: number | undefined, context: InvocationContext | undefined): number {
    const wanted = requested ?? this.#options.waitMs ?? 10_000;
    const available = context ? context.getRemainingTimeInMillis() - RESERVE_MS : wanted;
    return Math.max(1, Math.min(wanted, available));
  }

  /** Lock items, a page of the table at a time (needs dynamodb:Scan); `next` is an opaque cursor. */
  async #list(limit: number, startAfter: string | undefined): Promise<LockResponses["list"]> {
    const out = await this.#dynamodb.send(
      new ScanCommand({
        TableName: this.#options.tableName,
        FilterExpression: "begins_with(pk, :prefix)",
        ExpressionAttributeValues: { ":prefix": { S: "lock#" } },
        ConsistentRead: true,
        Limit: limit,
        ExclusiveStartKey: startAfter ? { pk: { S: startAfter } } : undefined,
      }),
    );
    const locks = (out.Items ?? []).flatMap((item) => {
      const state = stateOf(parseLease(item));
      const key = item["pk"]?.S;
      return state && key ? [{ name: key.slice("lock#".length), ...state }] : [];
    });
    const next = out.LastEvaluatedKey?.["pk"]?.S;
    return { locks, ...(next ? { next } : {}) };
  }
}

function grantOf(name: string, lock: Lock): LockGrant {
  const { version, fencingToken, leaseMs, data } = lock.detach();
  return { name, fencingToken, version, leaseMs, ...(data !== undefined ? { data } : {}) };
}
