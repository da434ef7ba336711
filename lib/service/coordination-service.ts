/**
 * The coordination service: what the coordination Lambda does with a validated
 * CoordinationRequest, using the same Coordination client as the library (one
 * implementation of the protocol).
 * (Guarantees and assumptions: see the TSDoc of CoordinationService below.)
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { Coordination } from "../coordination/coordination.js";
import { MAX_ANSWER_BYTES, type ChangePage, type CoordinationRequest, type CoordinationResponses, type SessionInfo } from "../coordination/protocol.js";
import { GROUPS_PREFIX } from "../coordination/session.js";

/** Namespaces whose clients (and their cached heads) one service keeps; the oldest is dropped past this. */
const CACHED_NAMESPACES = 64;
/** Entries `list` and sessions `sessions` return when the request names no limit. */
const DEFAULT_PAGE = 1000;
/** Events `changes` returns when the request names no limit. */
const DEFAULT_CHANGES_PAGE = 100;
/** Changes one `changes` request looks at most (matching the prefix or not), so a rare prefix still answers promptly. */
const MAX_CHANGES_SCANNED = 1000;

export interface CoordinationServiceOptions {
  /** The coordination table: the Fencepost construct's `coordinationTable`. */
  tableName: string;
  dynamodb?: DynamoDBClient;
}

/**
 * The coordination service behind the coordination Lambda.
 *
 * Guarantees: stateless between invocations (a cached head is only a guess the commit
 * checks); every action has the library's semantics: writes are single conditional
 * transactions with the change's revision and change-log item, reads are consistent.
 * `changes` is a page of exactly what `Coordination.watch` delivers: every change from
 * `fromRevision` in revision order, none skipped, CompactedError when they are no longer
 * kept; a caller that asks again from `next` misses nothing and sees nothing twice.
 * Keys under `_fencepost/` (group memberships) are listed and paged only when the prefix
 * names `_fencepost/groups/`, as `Coordination.list` does.
 * Assumes: requests were validated against coordinationRequestSchema; IAM decides who may
 * invoke (any caller may write any key of any namespace).
 */
export class CoordinationService {
  readonly #options: CoordinationServiceOptions;
  readonly #dynamodb: DynamoDBClient;
  readonly #clients = new Map<string, Coordination>();

  constructor(options: CoordinationServiceOptions) {
    this.#options = options;
    this.#dynamodb = options.dynamodb ?? new DynamoDBClient({});
  }

  /** Carries out one validated request. Typed errors (RevisionMismatchError, CompactedError, ...) propagate to the caller. */
  async handle<R extends CoordinationRequest>(request: R): Promise<CoordinationResponses[R["action"]]> {
    return (await this.#dispatch(request)) as CoordinationResponses[R["action"]];
  }

  async #dispatch(req: CoordinationRequest): Promise<CoordinationResponses[CoordinationRequest["action"]]> {
    const coord = this.#client(req.namespace);
    switch (req.action) {
      case "put":
        return coord.put(req.key, req.value, req.ifRevision !== undefined ? { ifRevision: req.ifRevision } : {});
      case "get":
        return (await coord.get(req.key)) ?? null;
      case "delete":
        return coord.delete(req.key, req.ifRevision !== undefined ? { ifRevision: req.ifRevision } : {});
      case "list": {
        const { entries, revision } = await coord.list(req.prefix ?? "");
        const kept = fitting(entries, req.limit ?? DEFAULT_PAGE);
        return { entries: kept, revision, truncated: kept.length < entries.length };
      }
      case "compareAndSet": {
        const result = await coord.compareAndSet(req.key, req.expectedRevision, req.value);
        return result.ok ? result : { ok: false, current: result.current ?? null };
      }
      case "revision":
        return { revision: await coord.revision() };
      case "changes":
        return changesPage(coord, req.fromRevision, req.prefix ?? "", req.limit ?? DEFAULT_CHANGES_PAGE);
      case "view":
        return coord.group(req.group).view();
      case "sessions": {
        const records = await coord.store.listSessions(req.namespace, !req.all);
        const sessions: SessionInfo[] = records.map(({ version: _, ...info }) => info).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
        const kept = fitting(sessions, req.limit ?? DEFAULT_PAGE);
        return { sessions: kept, truncated: kept.length < sessions.length };
      }
    }
  }

  /** The client of a namespace (kept, so its head guess saves a read on the next write). */
  #client(namespace: string): Coordination {
    let client = this.#clients.get(namespace);
    if (!client) {
      client = new Coordination({ tableName: this.#options.tableName, dynamodb: this.#dynamodb, namespace });
      if (this.#clients.size >= CACHED_NAMESPACES) this.#clients.delete(this.#clients.keys().next().value!);
      this.#clients.set(namespace, client);
    }
    return client;
  }
}

/**
 * Changes from `fromRevision` up to the head as read first: at most `limit` events under
 * `prefix`, MAX_CHANGES_SCANNED changes looked at, and about MAX_ANSWER_BYTES. Reads the
 * log through `Coordination.watch` (so a gap is a CompactedError, never a skip) and stops
 * at the head, so it never waits for new changes.
 */
async function changesPage(coord: Coordination, fromRevision: number, prefix: string, limit: number): Promise<ChangePage> {
  const revision = await coord.revision();
  const from = Math.max(1, fromRevision);
  const events: ChangePage["events"] = [];
  let next = from;
  if (from > revision) return { events, next, revision };
  const last = Math.min(revision, from + MAX_CHANGES_SCANNED - 1);
  let bytes = 0;
  for await (const event of coord.watch("", { fromRevision: from })) {
    next = event.revision + 1;
    if (visible(event.key, prefix)) {
      events.push(event);
      bytes += JSON.stringify(event).length;
    }
    if (event.revision >= last || events.length >= limit || bytes >= MAX_ANSWER_BYTES) break;
  }
  return { events, next, revision };
}

/** Keys a prefix shows: those under it, group memberships only when the prefix names the groups (as Coordination.list). */
function visible(key: string, prefix: string): boolean {
  return key.startsWith(prefix) && (prefix.startsWith(GROUPS_PREFIX) || !key.startsWith(GROUPS_PREFIX));
}

/** The first items that fit `limit` and about MAX_ANSWER_BYTES as JSON (always at least one). */
function fitting<T>(items: readonly T[], limit: number): T[] {
  const kept: T[] = [];
  let bytes = 0;
  for (const item of items) {
    if (kept.length >= limit) break;
    bytes += JSON.stringify(item).length;
    if (kept.length > 0 && bytes > MAX_ANSWER_BYTES) break;
    kept.push(item);
  }
  return kept;
}
