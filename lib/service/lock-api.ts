/**
 * The lock service's wire format: the requests the lock Lambda accepts (one function,
 * dispatched on `action`), their JSON schema, and the responses. Shared by the handler
 * (functions/locks.ts), which validates every request against the schema before it
 * touches DynamoDB, and by the remote-mode LockClient, which sends them.
 *
 * Bounds: names, namespaces and values up to 512 characters; owners up to 256 (and 256
 * UTF-8 bytes, as LockClient requires: an owner id is stored in every queue place); attached data up to
 * 4 KiB; waits up to 15 minutes (Lambda's limit); leases from 1 ms to 24 hours. Unknown
 * fields are refused, not ignored, so a misspelt option never silently does nothing.
 */
import type { LockState } from "../locks/client.js";
import type { Leader } from "../locks/election.js";
import { action, integer, text } from "./validate.js";

export type LockKind = "lock" | "election";

export type LockRequest =
  | { action: "acquire"; name: string; owner: string; waitMs?: number; leaseMs?: number; data?: string }
  | { action: "tryAcquire"; name: string; owner: string; leaseMs?: number; data?: string }
  | { action: "heartbeat"; kind?: LockKind; name: string; owner: string; version: string; nextVersion: string; leaseMs: number }
  | { action: "release"; kind?: LockKind; name: string; owner: string; fencingToken: number }
  | { action: "inspect"; name: string }
  | { action: "list"; limit?: number; startAfter?: string }
  | { action: "elect"; name: string; owner: string; waitMs?: number; leaseMs?: number; value?: string }
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
}

export interface LockResponses {
  acquire: LockGrant;
  tryAcquire: { granted: false } | { granted: true; lock: LockGrant };
  heartbeat: { ok: true; version: string } | { ok: false; holder?: string; version?: string };
  release: { released: boolean };
  inspect: LockState | null;
  /** `next`: pass as `startAfter` for the following page; absent on the last page. */
  list: { locks: ({ name: string } & LockState)[]; next?: string };
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

/** JSON schema (draft 2020-12 subset, ajv with `discriminator: true`) of a LockRequest. */
export const lockRequestSchema = {
  type: "object",
  properties: { action: { type: "string" } },
  required: ["action"],
  discriminator: { propertyName: "action" },
  oneOf: [
    action("acquire", { name, owner, waitMs, leaseMs, data }, ["name", "owner"]),
    action("tryAcquire", { name, owner, leaseMs, data }, ["name", "owner"]),
    action("heartbeat", { kind, name, owner, version, nextVersion: version, leaseMs }, ["name", "owner", "version", "nextVersion", "leaseMs"]),
    action("release", { kind, name, owner, fencingToken: integer(1) }, ["name", "owner", "fencingToken"]),
    action("inspect", { name }, ["name"]),
    action("list", { limit: integer(1, 1000), startAfter: text(1024) }, []),
    action("elect", { name, owner, waitMs, leaseMs, value: data }, ["name", "owner"]),
    action("leader", { name }, ["name"]),
    action("claim", { namespace: name, value: name, owner, incarnation: name }, ["namespace", "value", "owner"]),
    action("releaseClaim", { namespace: name, value: name, owner, incarnation: name }, ["namespace", "value", "owner", "incarnation"]),
    action("claimOwner", { namespace: name, value: name }, ["namespace", "value"]),
  ],
} as const;

export const LOCK_ACTIONS: readonly LockAction[] = lockRequestSchema.oneOf.map((branch) => branch.properties.action.const as LockAction);
