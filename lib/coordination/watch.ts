/**
 * Watches: every change under a prefix, in revision order, from a chosen revision.
 *
 * Transport: the namespace's own change log (items `changes#ns`, sorted by revision),
 * polled with one consistent Query per interval. Not DynamoDB Streams: a stream shard
 * keeps 24 hours and delivers per item, not per namespace revision, so resuming "from
 * revision r" would need the log anyway; the log is written in the same transaction as
 * the change, so it is complete and gap-free by construction, works on DynamoDB Local,
 * and needs no event source per watcher. The cost is one read per watcher per poll (two
 * for the first poll that finds nothing new, which also reads the head: see below).
 * (Guarantees and assumptions: see the TSDoc of watchChanges below.)
 */
import { CompactedError } from "../errors.js";
import { sleep } from "../internal/time.js";
import type { ChangeRecord, CoordinationStore } from "./store.js";

/** Longest run of empty polls without a look at the head. */
const HEAD_RECHECK_MS = 60_000;
/** Changes one poll reads at most. */
const PAGE = 100;

/**
 * Yields every change of namespace `ns` with revision >= `fromRevision` whose key starts
 * with `prefix`, in revision order, until `signal` aborts.
 *
 * Guarantees: none missed, none repeated, in order: revisions are consecutive (each change
 * takes the next one atomically with its log item), so the watch reads the log page by page
 * and a gap can only mean the change log no longer keeps those changes (its retention
 * passed): then it throws CompactedError rather than skip them. A change is delivered
 * within about one `pollMs` of its commit.
 * Assumes: the consumer resumes from the revision after the last event it processed.
 */
export async function* watchChanges(store: CoordinationStore, ns: string, prefix: string, options: { fromRevision: number; signal?: AbortSignal; pollMs: number }): AsyncGenerator<ChangeRecord> {
  let next = options.fromRevision;
  // An empty page needs the head to tell "nothing new" from "all of it expired"; in a run of
  // empty polls a minute apart at most, nothing unread can expire (retention is far longer).
  let headCheckedAt = Number.NEGATIVE_INFINITY;
  while (!options.signal?.aborted) {
    const checkHead = performance.now() - headCheckedAt > HEAD_RECHECK_MS;
    const page = await readContiguous(store, ns, next, checkHead);
    headCheckedAt = page.length > 0 ? Number.NEGATIVE_INFINITY : checkHead ? performance.now() : headCheckedAt;
    for (const change of page) {
      next = change.revision + 1;
      if (change.key.startsWith(prefix)) yield change;
      if (options.signal?.aborted) return;
    }
    if (page.length < PAGE) await sleep(options.pollMs, options.signal).catch(() => undefined);
  }
}

/** The changes from `next` on (a page), checked to start at `next` and to have no gap. */
async function readContiguous(store: CoordinationStore, ns: string, next: number, checkHead: boolean): Promise<ChangeRecord[]> {
  const page = await store.readChanges(ns, next - 1, PAGE);
  if (page.length > 0 && page[0]!.revision === next && isContiguous(page)) return page;
  if (page.length === 0) {
    if (!checkHead) return [];
    // Nothing at `next`: either nothing happened yet, or it is gone. The head says which;
    // a change committed after the read above shows in a second read (log item and head are written together).
    if ((await store.revision(ns)) < next) return [];
    const again = await store.readChanges(ns, next - 1, PAGE);
    if (again.length > 0 && again[0]!.revision === next && isContiguous(again)) return again;
    throw new CompactedError(ns, next - 1, again[0]?.revision);
  }
  throw new CompactedError(ns, next - 1, page[0]!.revision);
}

function isContiguous(page: readonly ChangeRecord[]): boolean {
  return page.every((change, i) => i === 0 || change.revision === page[i - 1]!.revision + 1);
}
