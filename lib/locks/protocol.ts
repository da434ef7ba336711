/**
 * The lock family's wire protocol: the requests the lock Lambda accepts (one function,
 * dispatched on `action`), their JSON schema, the responses, and the views of a lock and
 * a leader that both modes return. Shared by the service (lib/service/lock-service.ts and
 * functions/locks.ts, which validates every request against the schema before it touches
 * DynamoDB) and by the Lambda backend of LockClient (lambda-backend.ts), which sends them.
 *
 * Bounds: names, namespaces and values up to 512 characters; owners up to 256 (and 256
 * UTF-8 bytes, as LockClient requires: an owner id is stored in every queue place); attached data up to
 * 4 KiB; waits up to 15 minutes (Lambda's limit); leases from 1 ms to 24 hours. Unknown
 * fields are refused, not ignored, so a misspelt option never silently does nothing.
 */
import { action, integer, text } from "../internal/schema.js";

/** The two namespaces of lease items: locks (`lock#name`) and elections (`election#name`). */
export type LockKind = "lock" | "election";

/** The table key of a lock or election item. */
export const leaseKey = (kind: LockKind, name: string): string => `${kind}#${name}`;

/** What LockClient.inspect reports about a lock (and the lock service's `inspect` and `list` return). */
export interface LockState {
  holder: string | undefined;
  fencingToken: number;
  leaseMs: number;
  released: boolean;
  /** Places in the waiter queue (a crashed waiter's place counts until it is judged gone and removed). */
  waiters: number;
  /**
   * Who waits first: the owner ids of the first QUEUE_WINDOW (8) places, in the order they
   * will be served (a crashed waiter's place included until it is removed). Absent from
   * lock functions deployed before this field.
   */
  nextWaiters?: readonly string[];
  data: string | undefined;
  /**
   * When the holder's lease runs out (epoch ms: its last heartbeat plus the lease), by the
   * wall clocks of the writers and the reader. An estimate for people: taking over never
   * uses it (a waiter measures the lease on its own monotonic clock). Undefined when free.
   */
  expiresAt: number | undefined;
  /** Held, but the lease ran out by `expiresAt`: the next acquire will take it over. */
  expired: boolean;
  /**
   * A release handed the lock to `holder`, which has not taken it up yet: it does within
   * about a round trip of its next look, or its short handover lease (`leaseMs`) runs out
   * and the next waiter takes the lock over. Its `data` is not there yet.
   */
  pending?: boolean;
}

/** One page of LockClient.list: lock items in table order. */
export interface LockPage {
  locks: ({ name: string } & LockState)[];
  /** Pass as `startAfter` for the following page; absent on the last page. */
  next?: string;
}

/** The leader of an election as followers see it. */
export interface Leader {
  /** Owner id of the leader. */
  readonly holder: string;
  /** Term: the fencing token of the leader's grant. */
  readonly term: number;
  /** Value the leader proclaimed (its address, say). */
  readonly value: string | undefined;
}

/**
 * `requestId` (acquire, tryAcquire, elect): the caller's id for one request, the same in
 * every copy of it (the SDK's retries resend the payload; a long wait sends it once per
 * slice). A grant another copy made (its answer lost, or both run at once) is answered
 * again (`adopted`), not waited behind: the service writes the id into the versions of
 * this request's grants (`<requestId>.<uuid>`); once that grant has moved on, a late copy
 * grants nothing while no other request was granted since (InvalidArgumentError on
 * `requestId`; tryAcquire: not granted; request-ids.ts). The
 * caller measures an adopted grant's lease from its first send of the id. 16 to 24
 * URL-safe characters; optional (functions before 0.2 refuse it as an unknown field).
 */
export type LockRequest =
  | { action: "acquire"; name: string; owner: string; waitMs?: number; leaseMs?: number; data?: string; requestId?: string }
  | { action: "tryAcquire"; name: string; owner: string; leaseMs?: number; data?: string; requestId?: string }
  | { action: "heartbeat"; kind?: LockKind; name: string; owner: string; version: string; nextVersion: string; leaseMs: number }
  | { action: "release"; kind?: LockKind; name: string; owner: string; fencingToken: number }
  /** The caller gave up on request `requestId` (its wait timed out, was aborted, or failed): a grant it made that nobody took is released. */
  | { action: "abandon"; kind?: LockKind; name: string; owner: string; requestId: string }
  | { action: "inspect"; kind?: LockKind; name: string }
  | { action: "list"; limit?: number; startAfter?: string }
  | { action: "elect"; name: string; owner: string; waitMs?: number; leaseMs?: number; value?: string; requestId?: string }
  | { action: "leader"; name: string }
  | { action: "claim"; namespace: string; value: string; owner: string; incarnation?: string }
  | { action: "releaseClaim"; namespace: string; value: string; owner: string; incarnation: string }
  | { action: "claimOwner"; namespace: string; value: string };

export type LockAction = LockRequest["action"];

/** A grant, as the service returns it: enough for the caller to hold and heartbeat the lease. */
export interface LockGrant {
  name: string;
  fencingToken: number;
  /** The lease version the caller's first heartbeat must present. */
  version: string;
  leaseMs: number;
  data?: string;
  /**
   * The version a heartbeat the service sent for the caller (to give a handed-over lock the
   * lease asked for) would have written, when the service could not learn in time whether
   * it landed: the caller's first heartbeat, refused from `version`, finds the lock at this
   * one if it did, and carries on from it. Absent otherwise.
   */
  unsettledVersion?: string;
  /**
   * The grant was made by another copy of this request (its `requestId`), not by this
   * invocation: the caller measures its lease from its first send of that id, and not from
   * this invocation's, which may have come after the grant. Absent otherwise.
   */
  adopted?: true;
}

export interface LockResponses {
  acquire: LockGrant;
  tryAcquire: { granted: false } | { granted: true; lock: LockGrant };
  heartbeat: { ok: true; version: string } | { ok: false; holder?: string; version?: string };
  release: { released: boolean };
  /** `released`: a grant of the request was found unclaimed and released by this call. */
  abandon: { released: boolean };
  inspect: LockState | null;
  list: LockPage;
  elect: LockGrant;
  leader: Leader | null;
  /** `incarnation`: pass it to `releaseClaim` (and to a retried `claim`, to stay the same claim). */
  claim: { claimed: true; incarnation: string };
  /** The named incarnation no longer holds the value: ended by this call, earlier, or replaced. */
  releaseClaim: { released: true };
  claimOwner: { owner: string | null };
}

const name = text(512);
const owner = text(256);
const waitMs = integer(0, 900_000);
const leaseMs = integer(1, 86_400_000);
const data = { type: "string", maxLength: 4096 };
const kind = { enum: ["lock", "election"] };
const version = text(64);
/** Short enough that `<requestId>.<uuid>` fits `version`; no "." (the separator). */
const requestId = { type: "string", pattern: "^[A-Za-z0-9_-]{16,24}$" };

/** JSON schema (draft 2020-12 subset, ajv with `discriminator: true`) of a LockRequest. */
export const lockRequestSchema = {
  type: "object",
  properties: { action: { type: "string" } },
  required: ["action"],
  discriminator: { propertyName: "action" },
  oneOf: [
    action("acquire", { name, owner, waitMs, leaseMs, data, requestId }, ["name", "owner"]),
    action("tryAcquire", { name, owner, leaseMs, data, requestId }, ["name", "owner"]),
    action("heartbeat", { kind, name, owner, version, nextVersion: version, leaseMs }, ["name", "owner", "version", "nextVersion", "leaseMs"]),
    action("release", { kind, name, owner, fencingToken: integer(1) }, ["name", "owner", "fencingToken"]),
    action("abandon", { kind, name, owner, requestId }, ["name", "owner", "requestId"]),
    action("inspect", { kind, name }, ["name"]),
    action("list", { limit: integer(1, 1000), startAfter: text(1024) }, []),
    action("elect", { name, owner, waitMs, leaseMs, value: data, requestId }, ["name", "owner"]),
    action("leader", { name }, ["name"]),
    action("claim", { namespace: name, value: name, owner, incarnation: name }, ["namespace", "value", "owner"]),
    action("releaseClaim", { namespace: name, value: name, owner, incarnation: name }, ["namespace", "value", "owner", "incarnation"]),
    action("claimOwner", { namespace: name, value: name }, ["namespace", "value"]),
  ],
} as const;

export const LOCK_ACTIONS: readonly LockAction[] = lockRequestSchema.oneOf.map((branch) => branch.properties.action.const as LockAction);
