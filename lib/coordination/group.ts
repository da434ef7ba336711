/**
 * Group: agreed membership (who is in, as of which epoch), service discovery (each
 * member's `meta`) and the views every observer sees in the same order.
 * (Guarantees and assumptions: see the TSDoc of Group below.)
 */
import { InvalidArgumentError } from "../errors.js";
import { validateName } from "../internal/validation.js";
import type { MonotonicClock } from "../locks/clock.js";
import { assignments, type Assignment, type AssignmentOptions } from "./assignment.js";
import { DEFAULT_WATCH_POLL_MS } from "./defaults.js";
import { GROUPS_PREFIX, type Session } from "./session.js";
import type { CommitResult, CoordinationStore, KeyOperation } from "./store.js";
import { watchChanges } from "./watch.js";

/** What a group needs of its Coordination client (which Coordination is). */
export interface GroupHost {
  readonly store: CoordinationStore;
  readonly namespace: string;
  commitOperations(operations: KeyOperation[], session?: Session): Promise<CommitResult>;
}

/** A live member of a group. */
export interface Member<M = unknown> {
  /** The member's session id. */
  readonly id: string;
  /** What it published about itself when it joined (an address, say). */
  readonly meta: M;
  /** The revision at which it joined. */
  readonly joinedRevision: number;
}

/** The membership of a group as of one epoch. */
export interface View<M = unknown> {
  /** Increases by one per membership change (join, leave, a member's session ending). */
  readonly epoch: number;
  /** The namespace revision of the change that made this view. */
  readonly revision: number;
  /** Members, ordered by id. */
  readonly members: readonly Member<M>[];
}

/**
 * A named group of sessions.
 *
 * Guarantees:
 * - Agreement: a membership change is a recorded change of the namespace (an ephemeral
 *   key under `_fencepost/groups/<name>/members/`) that advances the group's epoch in the
 *   same transaction, so the sequence of views is the sequence of those changes, the same
 *   for every observer; each observer's `views()` is a contiguous part of it.
 * - A member is its session: when the session closes or is declared expired, the member
 *   leaves (a recorded change), and since that session can never write again, a member
 *   wrongly declared dead is fenced out; it must open a new session and join as new.
 * Assumes: members keep their sessions alive; observers of `views()` poll (about one
 * `pollMs` behind).
 */
export class Group {
  readonly name: string;
  readonly #prefix: string;

  /** @internal Made by Coordination.group. */
  constructor(
    readonly coordination: GroupHost,
    name: string,
    private readonly clock: MonotonicClock,
  ) {
    validateName("group", name);
    if (name.includes("/")) throw new InvalidArgumentError("group", "must not contain '/'");
    this.name = name;
    this.#prefix = `${GROUPS_PREFIX}${name}/members/`;
  }

  /** Joins with `session` (idempotent for that session); resolves to the epoch its join made (or found). */
  async join(session: Session, options: { meta?: unknown } = {}): Promise<{ epoch: number; revision: number }> {
    const key = this.#prefix + session.id;
    const value = JSON.stringify({ meta: options.meta ?? null });
    const result = await this.coordination.commitOperations([{ type: "put", key, value, session: session.id, ifRevision: 0, group: this.name }], session);
    if (result.committed) return { epoch: result.changes[0]!.epoch!, revision: result.revision };
    const view = await this.view();
    if (view.members.some((m) => m.id === session.id)) return { epoch: view.epoch, revision: view.revision };
    return this.join(session, options); // it left in between: try again
  }

  /** Leaves (the session stays open). True if this call removed the member. */
  async leave(session: Session): Promise<boolean> {
    const result = await this.coordination.commitOperations([{ type: "delete", key: this.#prefix + session.id, ifSession: session.id, group: this.name }], session);
    return result.committed;
  }

  /** The current view (a consistent snapshot: members and epoch as of one revision). */
  async view<M = unknown>(): Promise<View<M>> {
    const store = this.coordination.store;
    const ns = this.coordination.namespace;
    for (;;) {
      const head = await store.epoch(ns, this.name);
      const records = await store.listKeys(ns, this.#prefix);
      if ((await store.revision(ns)) !== head.revision) continue; // changed meanwhile: look again
      const members = records.map((r) => ({ id: r.key.slice(this.#prefix.length), meta: (JSON.parse(r.value) as { meta: M }).meta, joinedRevision: r.createRevision }));
      return { epoch: head.epoch, revision: head.revision, members: members.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)) };
    }
  }

  /** Yields the current view, then every later one in order, until `signal` aborts. */
  async *views<M = unknown>(options: { signal?: AbortSignal; pollMs?: number } = {}): AsyncGenerator<View<M>> {
    let view = await this.view<M>();
    yield view;
    const members = new Map(view.members.map((m) => [m.id, m]));
    const changes = watchChanges(this.coordination.store, this.coordination.namespace, this.#prefix, {
      fromRevision: view.revision + 1,
      pollMs: options.pollMs ?? DEFAULT_WATCH_POLL_MS,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    for await (const change of changes) {
      const id = change.key.slice(this.#prefix.length);
      if (change.type === "put") members.set(id, { id, meta: (JSON.parse(change.value ?? "{}") as { meta: M }).meta, joinedRevision: change.revision });
      else members.delete(id);
      view = { epoch: change.epoch ?? view.epoch + 1, revision: change.revision, members: [...members.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)) };
      yield view;
    }
  }

  /**
   * Work allocation: joins with `session` and yields this member's share of
   * `options.partitions`, each with a fencing token, whenever it changes. See assignment.ts.
   */
  assignments(session: Session, options: AssignmentOptions): AsyncGenerator<Assignment> {
    return assignments(this, session, this.clock, options);
  }
}
