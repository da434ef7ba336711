/**
 * Coordination: the client of the coordination service, a small linearizable key-value
 * store with sessions, ephemeral keys, watches and groups (ZooKeeper's and etcd's job,
 * on one DynamoDB table).
 * (Guarantees and assumptions: see the TSDoc of Coordination below.)
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { hostname } from "node:os";
import { CoordinationBusyError, InvalidArgumentError, RevisionMismatchError, SessionExpiredError } from "../errors.js";
import { validateName, validatePositiveMs } from "../internal/validation.js";
import { systemClock, type MonotonicClock } from "../locks/clock.js";
import type { LamportClock } from "../ordering/lamport.js";
import { MIN_SAFETY_MARGIN_MS, SAFETY_MARGIN_FRACTION } from "../locks/defaults.js";
import { DEFAULT_NAMESPACE, DEFAULT_RETAIN_CHANGES_MS, DEFAULT_WATCH_POLL_MS, MAX_SESSION_TTL_MS, MAX_VALUE_BYTES, MIN_SESSION_TTL_MS } from "./defaults.js";
import { Group } from "./group.js";
import { GROUPS_PREFIX, Session } from "./session.js";
import { CoordinationStore, type ChangeRecord, type CommitResult, type CoordinationStoreHooks, type KeyOperation, type KeyRecord } from "./store.js";
import { watchChanges } from "./watch.js";

/** Snapshots `list` tries before giving up on a namespace that never stops changing. */
const LIST_TRIES = 20;

export interface CoordinationOptions {
  /** The coordination table (pk S, sk S): the Fencepost construct's `coordinationTable`. */
  tableName: string;
  dynamodb?: DynamoDBClient;
  /**
   * The namespace: keys, revisions, sessions and groups are per namespace.
   * @default DEFAULT_NAMESPACE ("default")
   */
  namespace?: string;
  /**
   * How long changes stay in the change log, so watches can resume from them.
   * @default DEFAULT_RETAIN_CHANGES_MS (24 hours)
   */
  retainChangesMs?: number;
  /** Identifies this client as a session owner (shown by `fencepost session list`). @default hostname/pid */
  ownerId?: string;
  /** Monotonic clock every session is measured on; injectable for tests. @default systemClock */
  clock?: MonotonicClock;
  /**
   * Stamps every change this client writes with a Lamport timestamp (tick), and advances
   * past the stamps of the changes it watches (observe): causal metadata for the changes.
   * Revisions already give one namespace a total order; stamps relate changes across
   * namespaces and to broadcast messages stamped by the same clocks.
   */
  lamport?: LamportClock;
}

/** Test seams for the verification harness (lib/check); never set in production. */
export interface CoordinationHooks {
  /** Seams of the client's CoordinationStore (negative controls). */
  readonly store?: CoordinationStoreHooks;
}

/** A key's value and revisions. */
export interface Entry<T = unknown> {
  readonly key: string;
  readonly value: T;
  /** Revision of the change that last wrote it. */
  readonly revision: number;
  /** Revision of the change that created it. */
  readonly createRevision: number;
  /** Writes since it was created. */
  readonly version: number;
  /** The session an ephemeral key is bound to. */
  readonly session: string | undefined;
}

/** One change, as a watch delivers it. */
export interface WatchEvent<T = unknown> {
  readonly type: "put" | "delete";
  readonly key: string;
  /** The new value (put); undefined for a delete. */
  readonly value: T | undefined;
  readonly revision: number;
  /** The session a put binds the key to; for a delete caused by a session's end, that session. */
  readonly session: string | undefined;
  readonly cause: "request" | "session-expired" | "session-closed";
  /** Membership epoch after this change (membership keys of groups only). */
  readonly epoch: number | undefined;
  readonly lamport: { readonly counter: number; readonly node: string } | undefined;
}

export interface PutOptions {
  /** Bind the key to this live session: it is deleted when the session ends (ephemeral). */
  session?: Session;
  /** Write only if the key's revision is this (0: only if it does not exist); else RevisionMismatchError. */
  ifRevision?: number;
}

/**
 * The client of the coordination service.
 *
 * Guarantees:
 * - Linearizable: every read is a consistent read of the item (or, for `list`, a snapshot
 *   at one revision), every write one conditional transaction; `revision` increases by one
 *   per change of the namespace (put, delete, an ephemeral key's removal), and a change and
 *   its revision (and its change-log item) are written together.
 * - Ephemeral keys live exactly as long as their session: written only while it is live,
 *   deleted (as recorded changes) when it closes or expires.
 * - Watches deliver every change in revision order, none missed or repeated (watch.ts).
 * Assumes: the table of the Fencepost construct; values are JSON (at most 64 KiB as text).
 */
export class Coordination {
  readonly namespace: string;
  readonly ownerId: string;
  /** The persistence layer (for the service and the harness). */
  readonly store: CoordinationStore;
  readonly #clock: MonotonicClock;
  readonly #lamport: LamportClock | undefined;

  constructor(options: CoordinationOptions, hooks: CoordinationHooks = {}) {
    validateName("tableName", options.tableName);
    this.namespace = options.namespace ?? DEFAULT_NAMESPACE;
    validateName("namespace", this.namespace);
    validatePositiveMs("retainChangesMs", options.retainChangesMs);
    this.ownerId = options.ownerId ?? `${hostname()}/${process.pid}`;
    validateName("ownerId", this.ownerId);
    this.#clock = options.clock ?? systemClock;
    this.#lamport = options.lamport;
    this.store = new CoordinationStore(options.dynamodb ?? new DynamoDBClient({}), options.tableName, options.retainChangesMs ?? DEFAULT_RETAIN_CHANGES_MS, hooks.store);
  }

  /** Opens a session (one request); keep it alive by doing nothing: it sends a keepalive every ttl/3. */
  async openSession(options: { ttlMs: number }): Promise<Session> {
    const { ttlMs } = options;
    if (!(Number.isFinite(ttlMs) && ttlMs >= MIN_SESSION_TTL_MS && ttlMs <= MAX_SESSION_TTL_MS)) {
      throw new InvalidArgumentError("ttlMs", `must be from ${MIN_SESSION_TTL_MS} to ${MAX_SESSION_TTL_MS} ms, got ${ttlMs}`);
    }
    const safetyMarginMs = Math.max(ttlMs * SAFETY_MARGIN_FRACTION, MIN_SAFETY_MARGIN_MS);
    return Session.open(this.store, { namespace: this.namespace, ttlMs, clock: this.#clock, owner: this.ownerId, safetyMarginMs });
  }

  /** Writes `value` at `key`; resolves to the change's revision. */
  async put(key: string, value: unknown, options: PutOptions = {}): Promise<{ revision: number }> {
    validateKey(key);
    const result = await this.#commit([{ type: "put", key, value: encode(value), ...bindTo(options.session), ...(options.ifRevision !== undefined ? { ifRevision: options.ifRevision } : {}) }], options.session);
    if (result.committed) return { revision: result.revision };
    throw new RevisionMismatchError(key, options.ifRevision ?? 0, result.current?.revision);
  }

  /** Sets `key` to `value` if its revision is `expectedRevision` (0: if it does not exist). */
  async compareAndSet(key: string, expectedRevision: number, value: unknown, options: { session?: Session } = {}): Promise<{ ok: true; revision: number } | { ok: false; current: Entry | undefined }> {
    validateKey(key);
    validateRevision("expectedRevision", expectedRevision);
    const result = await this.#commit([{ type: "put", key, value: encode(value), ifRevision: expectedRevision, ...bindTo(options.session) }], options.session);
    return result.committed ? { ok: true, revision: result.revision } : { ok: false, current: result.current && entryOf(result.current) };
  }

  /** The key's value and revisions (one consistent read), or undefined. */
  async get<T = unknown>(key: string): Promise<Entry<T> | undefined> {
    validateKey(key, { internal: true });
    const record = await this.store.getKey(this.namespace, key);
    return record && (entryOf(record) as Entry<T>);
  }

  /** Deletes `key` (if its revision is `ifRevision`, when given). Resolves to the change's revision, or `deleted: false` if there was nothing to delete (or the revision did not match). */
  async delete(key: string, options: { ifRevision?: number } = {}): Promise<{ deleted: true; revision: number } | { deleted: false }> {
    validateKey(key);
    const result = await this.#commit([{ type: "delete", key, ...(options.ifRevision !== undefined ? { ifRevision: options.ifRevision } : {}) }]);
    return result.committed ? { deleted: true, revision: result.revision } : { deleted: false };
  }

  /** Every key starting with `prefix`, as of one revision (a consistent snapshot). */
  async list<T = unknown>(prefix = ""): Promise<{ entries: Entry<T>[]; revision: number }> {
    for (let tries = 1; tries <= LIST_TRIES; tries++) {
      const before = await this.store.revision(this.namespace);
      const records = await this.store.listKeys(this.namespace, prefix);
      // No change between the two reads of the head: the keys read are the state at that revision.
      if ((await this.store.revision(this.namespace)) === before) {
        const entries = records.filter((r) => prefix.startsWith(GROUPS_PREFIX) || !r.key.startsWith(GROUPS_PREFIX)).map((r) => entryOf(r) as Entry<T>);
        return { entries, revision: before };
      }
    }
    throw new CoordinationBusyError(this.namespace, LIST_TRIES);
  }

  /** The namespace's current revision (one consistent read). */
  revision(): Promise<number> {
    return this.store.revision(this.namespace);
  }

  /**
   * Every change under `prefix` with revision >= `fromRevision` (default: the next one), in
   * revision order, until `signal` aborts. CompactedError if those changes are no longer kept.
   */
  async *watch<T = unknown>(prefix: string, options: { fromRevision?: number; signal?: AbortSignal; pollMs?: number } = {}): AsyncGenerator<WatchEvent<T>> {
    if (options.fromRevision !== undefined) validateRevision("fromRevision", options.fromRevision);
    const fromRevision = Math.max(1, options.fromRevision ?? (await this.revision()) + 1);
    const pollMs = options.pollMs ?? DEFAULT_WATCH_POLL_MS;
    const watch = watchChanges(this.store, this.namespace, prefix, { fromRevision, pollMs, ...(options.signal ? { signal: options.signal } : {}) });
    for await (const change of watch) {
      this.#lamport?.observe(change.lamport);
      yield eventOf<T>(change);
    }
  }

  /** A group of this namespace: membership, views, work allocation. */
  group(name: string): Group {
    return new Group(this, name, this.#clock);
  }

  /** @internal Commits key operations; a refused session condition becomes SessionExpiredError. */
  async commitOperations(operations: KeyOperation[], session?: Session): Promise<CommitResult> {
    return this.#commit(operations, session);
  }

  async #commit(operations: KeyOperation[], session?: Session): Promise<CommitResult> {
    session?.assertLive();
    const result = await this.store.commit(this.namespace, operations, this.#lamport ? { lamport: this.#lamport.tick() } : {});
    if (!result.committed && result.failed === "session") throw new SessionExpiredError(session?.id ?? "?", "it has ended: it can no longer write");
    return result;
  }
}

function bindTo(session: Session | undefined): { session?: string } {
  return session ? { session: session.id } : {};
}

function encode(value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new InvalidArgumentError("value", "must be JSON-serializable", { cause: err });
  }
  if (text === undefined) throw new InvalidArgumentError("value", "must be JSON-serializable (got undefined or a function)");
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > MAX_VALUE_BYTES) throw new InvalidArgumentError("value", `must be at most ${MAX_VALUE_BYTES} bytes as JSON, got ${bytes}`);
  return text;
}

function decode(text: string | undefined): unknown {
  return text === undefined ? undefined : JSON.parse(text);
}

export function entryOf(record: KeyRecord): Entry {
  return { key: record.key, value: decode(record.value), revision: record.revision, createRevision: record.createRevision, version: record.version, session: record.session };
}

export function eventOf<T>(change: ChangeRecord): WatchEvent<T> {
  return { type: change.type, key: change.key, value: decode(change.value) as T | undefined, revision: change.revision, session: change.session, cause: change.cause, epoch: change.epoch, lamport: change.lamport };
}

function validateKey(key: string, options: { internal?: boolean } = {}): void {
  validateName("key", key);
  if (!options.internal && key.startsWith("_fencepost/")) throw new InvalidArgumentError("key", "must not start with '_fencepost/' (reserved for groups)");
}

function validateRevision(field: string, revision: number): void {
  if (!(Number.isSafeInteger(revision) && revision >= 0)) throw new InvalidArgumentError(field, `must be a whole number from 0, got ${revision}`);
}

