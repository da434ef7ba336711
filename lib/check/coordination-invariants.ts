/**
 * Direct checks of the coordination service (lib/coordination) over what a verification
 * run observed, beside the linearizability verdicts (the key-value register, and the
 * fenced mutex for partitions, whose grants, beliefs and fenced writes lockAnomalies
 * checks too). Each returns anomalies naming what went wrong; each is pure, so its
 * negative cases are unit-tested (test/check/coordination-invariants.test.ts).
 *
 * - View agreement (`viewAnomalies`): the group's membership changes in the final change
 *   log take epochs 1, 2, 3, ... (`epoch-skipped`, `epoch-repeated`); each observer's run
 *   of `views()` moves one epoch at a time (`view-sequence-gap`); every view anyone saw
 *   (views, assignments) has the members the log gives that epoch (`view-disagreement`),
 *   and two observers never saw different members at one epoch (same kind). So every
 *   observer's sequence is a contiguous part of one sequence.
 * - Watch completeness (`watchAnomalies`): the change log is revisions 1..H without a gap
 *   (`log-gap`); each watcher's events, across its resumes, are exactly the log's changes
 *   under its prefix from its first start revision to its last event: none missing
 *   (`watch-gap`), none twice (`watch-duplicate`), in order (`watch-order`), as logged
 *   (`watch-mismatch`); replaying them on the watcher's starting snapshot gives the final
 *   keys under its prefix (`watch-replay`), once it has caught up (`watch-stalled` if not).
 * - Ephemeral keys (`ephemeralAnomalies`): after every session ended, no key bound to a
 *   session remains (`ephemeral-left`) and no session is still live (`session-not-ended`);
 *   no key of a session was deleted, as that session's end, while its owner still
 *   believed it live (`live-session-key-removed`); an owner that believed its session
 *   live before and after reading its own ephemeral key found it (`own-key-missing`).
 */
import type { Operation } from "./history.js";
import type { Anomaly } from "./invariants.js";

/** A change of the namespace's log, as the checks need it. */
export interface LoggedChange {
  readonly revision: number;
  readonly type: "put" | "delete";
  readonly key: string;
  /** JSON text of the value (put). */
  readonly value: string | undefined;
  readonly session: string | undefined;
  readonly cause: string;
  readonly epoch: number | undefined;
}

/** One view as someone saw it: an observer's `views()`, or a member's assignment. */
export interface SeenView {
  readonly observer: string;
  readonly epoch: number;
  /** Member ids, in any order. */
  readonly members: readonly string[];
  readonly at: number;
  /** The recorded operation, to point at. */
  readonly op?: Operation;
}

/** A run of `views()`: consecutive views (each must be the next epoch). */
export interface ViewRun {
  readonly observer: string;
  readonly views: readonly SeenView[];
}

const same = (a: readonly string[], b: readonly string[]) => a.length === b.length && [...a].sort().join("\n") === [...b].sort().join("\n");
const list = (members: readonly string[]) => `[${[...members].sort().map((m) => m.slice(0, 8)).join(", ")}]`;

/**
 * View agreement for one group: `membership` is the group's membership changes from the
 * final change log (puts and deletes of keys under `memberPrefix`), in revision order.
 */
export function viewAnomalies(group: string, memberPrefix: string, membership: readonly LoggedChange[], runs: readonly ViewRun[], points: readonly SeenView[]): Anomaly[] {
  const anomalies: Anomaly[] = [];
  // The one sequence, as the log tells it.
  const reference = new Map<number, readonly string[]>([[0, []]]);
  const members = new Set<string>();
  let epoch = 0;
  for (const change of membership) {
    const id = change.key.slice(memberPrefix.length);
    if (change.type === "put") members.add(id);
    else members.delete(id);
    const next = change.epoch ?? Number.NaN;
    if (next !== epoch + 1) {
      anomalies.push({
        kind: next <= epoch ? "epoch-repeated" : "epoch-skipped",
        key: group,
        detail: `the membership change at revision ${change.revision} (${change.type} ${id.slice(0, 8)}) took epoch ${next} after epoch ${epoch}: epochs must grow by one per change`,
        operations: [],
      });
    }
    epoch = Number.isFinite(next) ? next : epoch + 1;
    if (!reference.has(epoch)) reference.set(epoch, [...members]);
  }
  const seen = [...runs.flatMap((r) => r.views), ...points];
  for (const view of seen) {
    const expected = reference.get(view.epoch);
    if (!expected) {
      anomalies.push({ kind: "view-disagreement", key: group, detail: `${view.observer} saw epoch ${view.epoch} ${list(view.members)}, an epoch the change log never reached (last ${epoch})`, operations: view.op ? [view.op] : [] });
    } else if (!same(expected, view.members)) {
      anomalies.push({ kind: "view-disagreement", key: group, detail: `${view.observer} saw epoch ${view.epoch} as ${list(view.members)}; the change log makes it ${list(expected)}`, operations: view.op ? [view.op] : [] });
    }
  }
  const byEpoch = new Map<number, SeenView>();
  for (const view of seen) {
    const first = byEpoch.get(view.epoch);
    if (!first) byEpoch.set(view.epoch, view);
    else if (!same(first.members, view.members)) {
      anomalies.push({
        kind: "view-disagreement",
        key: group,
        detail: `at epoch ${view.epoch}, ${first.observer} saw ${list(first.members)} and ${view.observer} saw ${list(view.members)}`,
        operations: [first.op, view.op].flatMap((op) => (op ? [op] : [])),
      });
    }
  }
  for (const run of runs) {
    for (let i = 1; i < run.views.length; i++) {
      const [a, b] = [run.views[i - 1]!, run.views[i]!];
      if (b.epoch !== a.epoch + 1) {
        anomalies.push({ kind: "view-sequence-gap", key: group, detail: `${run.observer}'s views went from epoch ${a.epoch} to ${b.epoch}`, operations: [a.op, b.op].flatMap((op) => (op ? [op] : [])) });
      }
    }
  }
  return anomalies;
}

/** A delivered watch event (its value as JSON text, as the log holds it), and when the watcher received it. */
export interface WatchedEvent extends Omit<LoggedChange, "epoch"> {
  /** The recorder's clock. */
  readonly at: number;
}

/** Everything one watcher saw, across its resumes. */
export interface WatcherRecord {
  readonly watcher: string;
  readonly prefix: string;
  /** The revision its first watch started from. */
  readonly from: number;
  /** The keys under `prefix` (JSON text of their values) at revision `from - 1`. */
  readonly snapshot: ReadonlyMap<string, string>;
  readonly events: readonly WatchedEvent[];
  /** It caught up with the final change of the run (the sentinel). */
  readonly caughtUp: boolean;
}

/**
 * Watch completeness: `log` is the namespace's whole change log in revision order;
 * `finalKeys` the keys (JSON text of their values) at its last revision.
 */
export function watchAnomalies(log: readonly LoggedChange[], finalKeys: ReadonlyMap<string, string>, watchers: readonly WatcherRecord[]): Anomaly[] {
  const anomalies: Anomaly[] = [];
  log.forEach((change, i) => {
    if (change.revision !== i + 1) anomalies.push({ kind: "log-gap", key: "changes", detail: `the change log's item ${i + 1} has revision ${change.revision}`, operations: [] });
  });
  const byRevision = new Map(log.map((c) => [c.revision, c]));
  const describe = (c: { revision: number; type: string; key: string; value: string | undefined }) => `${c.revision} ${c.type} ${c.key}${c.type === "put" ? `=${c.value}` : ""}`;
  for (const w of watchers) {
    const found: Anomaly[] = [];
    const last = w.events.at(-1)?.revision ?? w.from - 1;
    const expected = log.filter((c) => c.revision >= w.from && c.revision <= last && c.key.startsWith(w.prefix));
    const delivered = new Map<number, number>();
    let previous = w.from - 1;
    for (const e of w.events) {
      delivered.set(e.revision, (delivered.get(e.revision) ?? 0) + 1);
      if (e.revision <= previous && delivered.get(e.revision) === 1) found.push({ kind: "watch-order", key: w.watcher, detail: `revision ${e.revision} came after ${previous}`, operations: [] });
      previous = Math.max(previous, e.revision);
      const logged = byRevision.get(e.revision);
      if (!logged || logged.type !== e.type || logged.key !== e.key || (e.type === "put" && logged.value !== e.value)) {
        found.push({ kind: "watch-mismatch", key: w.watcher, detail: `delivered ${describe(e)}; the log holds ${logged ? describe(logged) : "nothing"} at that revision`, operations: [] });
      } else if (!logged.key.startsWith(w.prefix)) {
        found.push({ kind: "watch-mismatch", key: w.watcher, detail: `delivered ${describe(e)}, outside its prefix '${w.prefix}'`, operations: [] });
      }
    }
    for (const [revision, n] of delivered) if (n > 1) found.push({ kind: "watch-duplicate", key: w.watcher, detail: `revision ${revision} delivered ${n} times`, operations: [] });
    const missing = expected.filter((c) => !delivered.has(c.revision));
    if (missing.length > 0) {
      found.push({ kind: "watch-gap", key: w.watcher, detail: `${missing.length} change(s) under '${w.prefix}' from revision ${w.from} to ${last} never delivered: ${missing.slice(0, 5).map(describe).join("; ")}${missing.length > 5 ? "; ..." : ""}`, operations: [] });
    }
    if (!w.caughtUp) found.push({ kind: "watch-stalled", key: w.watcher, detail: `never delivered the run's final change (last event at revision ${last}, log at ${log.at(-1)?.revision ?? 0})`, operations: [] });
    else {
      const state = new Map(w.snapshot);
      for (const e of w.events) {
        if (e.type === "put") state.set(e.key, e.value ?? "null");
        else state.delete(e.key);
      }
      const wanted = new Map([...finalKeys].filter(([k]) => k.startsWith(w.prefix)));
      const differ = [...new Set([...state.keys(), ...wanted.keys()])].filter((k) => state.get(k) !== wanted.get(k));
      if (differ.length > 0) {
        found.push({ kind: "watch-replay", key: w.watcher, detail: `replaying its events gives ${differ.length} key(s) unlike the table's: ${differ.slice(0, 5).map((k) => `${k}: ${state.get(k) ?? "absent"} vs ${wanted.get(k) ?? "absent"}`).join("; ")}`, operations: [] });
      }
    }
    anomalies.push(...found.slice(0, 20));
  }
  return anomalies;
}

/** A session as its owner believed it: from its open until its signal aborted, it was closed, or its process died. */
export interface SessionBelief {
  readonly id: string;
  readonly process: string;
  readonly start: number;
  /** +Infinity while still believed (never at the end of a run). */
  readonly end: number;
}

/** An owner's read of its own ephemeral key, with whether it believed its session live before and after. */
export interface OwnKeyRead {
  readonly process: string;
  readonly session: string;
  readonly key: string;
  readonly present: boolean;
  readonly liveThroughout: boolean;
  readonly op?: Operation;
}

/**
 * Ephemeral keys: `finalKeys` are the keys left at the end with the session each is bound
 * to, `liveSessions` the sessions still live then (after every owner stopped and a reaper
 * had time to expire them), `deletes` the deletions a watcher of everything received.
 */
export function ephemeralAnomalies(finalKeys: readonly { key: string; session: string | undefined }[], liveSessions: readonly string[], sessions: readonly SessionBelief[], deletes: readonly WatchedEvent[], reads: readonly OwnKeyRead[]): Anomaly[] {
  const anomalies: Anomaly[] = [];
  const live = new Set(liveSessions);
  for (const id of live) anomalies.push({ kind: "session-not-ended", key: id, detail: `session ${id} was still live after its owner stopped and a reaper watched it for several ttls`, operations: [] });
  for (const k of finalKeys) {
    if (k.session !== undefined && !live.has(k.session)) anomalies.push({ kind: "ephemeral-left", key: k.key, detail: `bound to session ${k.session}, which has ended, yet still there`, operations: [] });
  }
  const beliefs = new Map(sessions.map((s) => [s.id, s]));
  for (const d of deletes) {
    if (d.type !== "delete" || d.cause === "request" || d.session === undefined) continue;
    const owner = beliefs.get(d.session);
    if (owner && owner.start <= d.at && d.at < owner.end) {
      anomalies.push({ kind: "live-session-key-removed", key: d.key, detail: `deleted at revision ${d.revision} (${d.cause}), seen ${(owner.end - d.at).toFixed(0)} ms before ${owner.process} stopped believing session ${d.session} live`, operations: [] });
    }
  }
  for (const r of reads) {
    if (r.liveThroughout && !r.present) anomalies.push({ kind: "own-key-missing", key: r.key, detail: `${r.process} read its own ephemeral key while believing session ${r.session} live, and it was gone`, operations: r.op ? [r.op] : [] });
  }
  return anomalies;
}
