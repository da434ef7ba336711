/**
 * The coordination service's wire protocol: the requests the coordination Lambda accepts
 * (one function, dispatched on `action`), their JSON schema, and the responses. Shared by
 * the service (lib/service/coordination-service.ts and functions/coordination.ts, which
 * validates every request against the schema before it touches DynamoDB) and by callers
 * such as the `fencepost kv|members|session` commands.
 *
 * What is served: the key-value store (put, get, delete, list, compareAndSet, revision),
 * a page of the change log (`changes`: what a watch is made of, for callers that poll),
 * a group's view and a namespace's sessions. Sessions themselves stay client-side: a
 * session needs a keepalive every ttl/3 from a long-lived process, which an invocation is
 * not, so nothing here opens, renews or closes one, or writes an ephemeral key.
 *
 * Bounds: namespaces, keys, prefixes and group names up to 512 characters (and 512 UTF-8
 * bytes, checked by the client); values any JSON up to 64 KiB as text (MAX_VALUE_BYTES);
 * revisions whole numbers from 0; pages up to 1,000 items and about MAX_ANSWER_BYTES, so
 * an answer fits Lambda's 6 MB response. Unknown fields are refused, not ignored, so a
 * misspelt option never silently does nothing.
 */
import { action, integer, text } from "../internal/schema.js";
import type { Entry, WatchEvent } from "./coordination.js";
import type { View } from "./group.js";
import type { SessionRecord } from "./store.js";

/**
 * About how many bytes (as JSON) of entries, events or sessions one answer carries at
 * most: Lambda's synchronous responses are limited to 6 MB. A page cut by it says so
 * (`truncated`, or `next` short of the head).
 */
export const MAX_ANSWER_BYTES = 4 * 1024 * 1024;

export type CoordinationRequest =
  | { action: "put"; namespace: string; key: string; value: unknown; ifRevision?: number }
  | { action: "get"; namespace: string; key: string }
  | { action: "delete"; namespace: string; key: string; ifRevision?: number }
  | { action: "list"; namespace: string; prefix?: string; limit?: number }
  | { action: "compareAndSet"; namespace: string; key: string; expectedRevision: number; value: unknown }
  | { action: "revision"; namespace: string }
  | { action: "changes"; namespace: string; fromRevision: number; prefix?: string; limit?: number }
  | { action: "view"; namespace: string; group: string }
  | { action: "sessions"; namespace: string; all?: boolean; limit?: number };

export type CoordinationAction = CoordinationRequest["action"];

/** A session as the service shows it: everything but its keepalive version (which only its owner needs). */
export type SessionInfo = Omit<SessionRecord, "version">;

/** A page of the change log. */
export interface ChangePage {
  /** The changes under the prefix from `fromRevision` on, in revision order. */
  events: WatchEvent[];
  /** Ask for this revision next: one past the last change this page looked at (events or not). */
  next: number;
  /** The namespace's revision when the page was read: the caller has caught up when `next > revision`. */
  revision: number;
}

export interface CoordinationResponses {
  put: { revision: number };
  get: Entry | null;
  /** `deleted: false`: there was nothing to delete, or its revision was not `ifRevision`. */
  delete: { deleted: true; revision: number } | { deleted: false };
  /** A snapshot at one revision; `truncated`: only the first entries (by key) fit `limit` or the answer. */
  list: { entries: Entry[]; revision: number; truncated: boolean };
  compareAndSet: { ok: true; revision: number } | { ok: false; current: Entry | null };
  revision: { revision: number };
  changes: ChangePage;
  view: View;
  /** Sessions in id order; `truncated`: only the first ones fit `limit` or the answer. */
  sessions: { sessions: SessionInfo[]; truncated: boolean };
}

const namespace = text(512);
const key = text(512);
const prefix = { type: "string", maxLength: 512 };
const revision = integer(0);
const limit = integer(1, 1000);
/** Any JSON value; its size (MAX_VALUE_BYTES as text) is checked by the client. */
const value = {};

/** JSON schema (draft 2020-12 subset, ajv with `discriminator: true`) of a CoordinationRequest. */
export const coordinationRequestSchema = {
  type: "object",
  properties: { action: { type: "string" } },
  required: ["action"],
  discriminator: { propertyName: "action" },
  oneOf: [
    action("put", { namespace, key, value, ifRevision: revision }, ["namespace", "key", "value"]),
    action("get", { namespace, key }, ["namespace", "key"]),
    action("delete", { namespace, key, ifRevision: revision }, ["namespace", "key"]),
    action("list", { namespace, prefix, limit }, ["namespace"]),
    action("compareAndSet", { namespace, key, expectedRevision: revision, value }, ["namespace", "key", "expectedRevision", "value"]),
    action("revision", { namespace }, ["namespace"]),
    action("changes", { namespace, fromRevision: revision, prefix, limit }, ["namespace", "fromRevision"]),
    action("view", { namespace, group: text(512) }, ["namespace", "group"]),
    action("sessions", { namespace, all: { type: "boolean" }, limit }, ["namespace"]),
  ],
} as const;

export const COORDINATION_ACTIONS: readonly CoordinationAction[] = coordinationRequestSchema.oneOf.map((branch) => branch.properties.action.const as CoordinationAction);
