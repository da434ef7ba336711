/**
 * Work allocation: each live member of a group owns a deterministic share of N partitions
 * (rendezvous hashing over the view), each grant with a fencing token.
 *
 * Guarantees:
 * - No two owners of a partition with overlapping beliefs. A member believes it owns a
 *   partition from the assignment that lists it until it asks for the next assignment (or
 *   its session's signal aborts). It gives a partition up only after the caller has taken
 *   an assignment without it (the generator resumes only when asked for the next one),
 *   and a new owner is granted it only after the old grant was released or the old
 *   owner's session is no longer live (checked in the granting transaction), which the
 *   old owner's session signal precedes (session.ts).
 * - Every grant's fencing token is one more than the partition's previous grant's, so a
 *   former owner's writes fenced with its token are rejected once the new owner writes
 *   (FencedStore, or fenceCondition on your own items).
 * - Minimal movement: when a member joins or leaves, only the partitions whose highest
 *   rendezvous weight changes move, about N / members of them.
 * - Failure detection: members observe each other's sessions (reaper.ts), so a killed
 *   member's partitions move after about its ttl plus one poll.
 * - Transient errors (throttling, 5xx, no answer) do not end the assignments: the member
 *   keeps what it owns, for as long as its session is live, and looks again next poll. A
 *   grant that got no answer (it may land later, even after the member stopped wanting the
 *   partition) and a release that failed are looked at again each poll until settled, so
 *   no partition stays with a live member that does not know it owns it.
 *   They end when the session does (SessionExpiredError), on `signal`, or on an error
 *   that asking again cannot cure (a 4xx such as a validation error).
 * Assumes: every member asks with the same `partitions`; members keep consuming the
 * generator (a member that stops asking keeps its partitions until its session ends).
 */
import { CoordinationBusyError, FencepostError, InvalidArgumentError, OutcomeUnknownError, SessionExpiredError } from "../errors.js";
import { certainlyNotApplied, isBusy } from "../internal/outcomes.js";
import { sha256Hex } from "../internal/ids.js";
import { sleep } from "../internal/time.js";
import type { MonotonicClock } from "../locks/clock.js";
import { DEFAULT_ASSIGNMENT_POLL_MS, MAX_PARTITIONS } from "./defaults.js";
import { SessionReaper } from "./reaper.js";
import type { Session } from "./session.js";
import type { CoordinationStore } from "./store.js";

/** What work allocation needs of a group (which Group is). */
export interface AllocatedGroup {
  readonly name: string;
  readonly coordination: { readonly store: CoordinationStore; readonly namespace: string };
  view(): Promise<{ readonly epoch: number; readonly members: readonly { readonly id: string }[] }>;
  join(session: Session, options: { meta?: unknown }): Promise<unknown>;
  leave(session: Session): Promise<boolean>;
}

export interface AssignmentOptions {
  /** How many partitions the group's work is divided into (the same for every member). */
  partitions: number;
  /** Stop: releases this member's partitions and ends the iteration. */
  signal?: AbortSignal;
  /** How often to look for view changes and partitions to take. @default DEFAULT_ASSIGNMENT_POLL_MS (250 ms) */
  pollMs?: number;
  /** Observe the namespace's sessions and expire those that stopped (failure detection). @default true */
  detectFailures?: boolean;
  /** What this member publishes in the group view. */
  meta?: unknown;
}

/** One partition this member owns, and the fencing token of its grant. */
export interface PartitionGrant {
  readonly id: number;
  readonly fencingToken: number;
}

/** This member's share, as of one view. */
export interface Assignment {
  /** The view epoch the share was computed from. */
  readonly epoch: number;
  /** The members of that view (session ids). */
  readonly members: readonly string[];
  /** The partitions this member owns now: work on these, fenced with their tokens. */
  readonly partitions: readonly PartitionGrant[];
  /** Partitions assigned to this member that it does not own yet (their previous owner's belief has not ended). */
  readonly pending: readonly number[];
}

/** The member with the highest rendezvous weight for `partition` (deterministic; minimal movement). */
export function ownerOf(partition: number, members: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestWeight = "";
  for (const member of members) {
    const weight = sha256Hex(`${partition}/${member}`);
    if (best === undefined || weight > bestWeight) {
      best = member;
      bestWeight = weight;
    }
  }
  return best;
}

/** The partitions of `total` that rendezvous hashing gives to `member` in a view of `members`. */
export function shareOf(member: string, members: readonly string[], total: number): number[] {
  const share: number[] = [];
  for (let p = 0; p < total; p++) if (ownerOf(p, members) === member) share.push(p);
  return share;
}

export async function* assignments(group: AllocatedGroup, session: Session, clock: MonotonicClock, options: AssignmentOptions): AsyncGenerator<Assignment> {
  const total = options.partitions;
  if (!(Number.isSafeInteger(total) && total >= 1 && total <= MAX_PARTITIONS)) throw new InvalidArgumentError("partitions", `must be a whole number from 1 to ${MAX_PARTITIONS}, got ${total}`);
  const pollMs = options.pollMs ?? DEFAULT_ASSIGNMENT_POLL_MS;
  const store = group.coordination.store;
  const ns = group.coordination.namespace;
  const reaper = options.detectFailures === false ? undefined : new SessionReaper(store, ns, clock);
  const owned = new Map<number, number>(); // partition → token
  // Partitions that may be ours without our knowing (a grant whose answer never came may still
  // land; a release may have failed), each with the token it would be ours at: looked at again
  // until settled, so no partition stays owned by this live session while nobody works on it.
  const stray = new Map<number, number>();
  let last: Assignment | undefined;
  let shares = { epoch: -1, share: [] as number[] };
  for (;;) {
    try {
      await group.join(session, { meta: options.meta ?? null }); // idempotent: a join whose answer was lost is found by the next
      break;
    } catch (err) {
      if (!transient(err) || !session.live) throw err;
      await sleep(pollMs, options.signal).catch(() => undefined);
      if (options.signal?.aborted) return;
    }
  }
  // Partitions taken out of the last assignment and not released yet (released on resume, or on stop).
  let given: [number, number][] = [];
  // An iteration that ends by an error (the session's end, or an error asking again cannot
  // cure) keeps its partitions: the caller learns of it only after cleanup would have run,
  // and its work may still be going; they pass on when the session ends.
  let threw = false;
  try {
    while (!options.signal?.aborted) {
      if (!session.live) throw (session.signal.reason as Error | undefined) ?? new SessionExpiredError(session.id, "its ttl ran out");
      let view: Awaited<ReturnType<AllocatedGroup["view"]>>;
      try {
        await reaper?.pass();
        view = await group.view();
      } catch (err) {
        // DynamoDB busy or unreachable for a while: keep what we own (the session says how long) and look again.
        if (!transient(err)) throw err;
        await sleep(pollMs, options.signal).catch(() => undefined);
        continue;
      }
      if (view.epoch !== shares.epoch) shares = { epoch: view.epoch, share: shareOf(session.id, view.members.map((m) => m.id), total) };
      const wanted = new Set(shares.share);
      const members = view.members.map((m) => m.id);
      // Give up what is no longer ours: first tell the caller (it stops working on them), then release.
      const leaving = [...owned].filter(([p]) => !wanted.has(p));
      if (leaving.length > 0) {
        for (const [p] of leaving) owned.delete(p);
        given = leaving;
        last = assignmentOf(view.epoch, members, owned, shares.share);
        yield last;
        // Released with the token each was held at; a release that fails is looked at again as a stray.
        await Promise.all(given.map(([p, token]) => store.releasePartition(ns, group.name, p, session.id, token).then((released) => (released ? undefined : stray.set(p, token)), () => stray.set(p, token))));
        given = [];
      }
      try {
        // Strays we no longer want: release them if they turned out ours, forget them once they cannot be.
        for (const [p, token] of stray) {
          if (wanted.has(p)) continue; // the take below finds it if it is ours
          const now = await store.getPartition(ns, group.name, p);
          if (now?.owner === session.id) await store.releasePartition(ns, group.name, p, session.id, now.token);
          else if ((now?.token ?? 0) < token) continue; // a grant of ours may still land
          stray.delete(p);
        }
        // Take what is ours and free (or whose previous owner's session has ended).
        for (const p of shares.share) {
          if (owned.has(p) || !session.live) continue;
          const found = await store.getPartition(ns, group.name, p);
          if (found?.owner === session.id) {
            owned.set(p, found.token); // a grant of ours whose answer was lost
            stray.delete(p);
            continue;
          }
          const outcome = await store.grantPartition(ns, group.name, p, session.id, found).catch((err: unknown) => {
            stray.set(p, (found?.token ?? 0) + 1); // no answer: it may still land
            throw err;
          });
          if (outcome.granted) {
            owned.set(p, outcome.token);
            stray.delete(p);
          }
        }
      } catch (err) {
        // The rest waits for the next look (a grant whose answer was lost is found there as ours).
        if (!transient(err)) throw err;
      }
      const next = assignmentOf(view.epoch, members, owned, shares.share);
      if (!last || !sameAssignment(last, next)) {
        if (!session.live) continue; // the loop's first check reports it
        last = next;
        yield last;
      }
      await sleep(pollMs, options.signal).catch(() => undefined);
    }
  } catch (err) {
    threw = true;
    throw err;
  } finally {
    if (!threw) {
      // Stopped (or the caller returned, even at a yield): release everything and leave the
      // group, so the others rebalance at once rather than after this session ends.
      const held = [...owned, ...given];
      owned.clear();
      await Promise.all(held.map(([p, token]) => store.releasePartition(ns, group.name, p, session.id, token).catch(() => false)));
      await group.leave(session).catch(() => false);
    }
  }
}

/**
 * An error worth waiting out: DynamoDB busy (throttling, a transaction conflict), no
 * answer or a 5xx (OutcomeUnknownError, timeouts), a namespace too busy for a change.
 * Other 4xx answers and Fencepost's own errors (a session that ended) end the assignments.
 */
function transient(err: unknown): boolean {
  if (err instanceof OutcomeUnknownError || err instanceof CoordinationBusyError) return true;
  if (err instanceof FencepostError) return false;
  return isBusy(err) || !certainlyNotApplied(err);
}

function assignmentOf(epoch: number, members: readonly string[], owned: ReadonlyMap<number, number>, share: readonly number[]): Assignment {
  const partitions = [...owned].sort(([a], [b]) => a - b).map(([id, fencingToken]) => ({ id, fencingToken }));
  return { epoch, members, partitions, pending: share.filter((p) => !owned.has(p)) };
}

function sameAssignment(a: Assignment, b: Assignment): boolean {
  return a.epoch === b.epoch && JSON.stringify(a.partitions) === JSON.stringify(b.partitions) && JSON.stringify(a.pending) === JSON.stringify(b.pending);
}
