/**
 * Leader election on a lock item (etcd's `concurrency.Election`, on DynamoDB).
 *
 * Guarantees: at most one Leadership of a name is believed at a time (it is a Lock of
 * key `election#name`), its `term` is the fencing token, so terms strictly increase and
 * a deposed leader's fenced writes are rejected; `signal` aborts before a successor could
 * be elected. `observe` reports every change of leader or term that it sees (polling one
 * consistent read per interval); a follower may miss a term that starts and ends within
 * one interval, never sees terms go backwards.
 * Assumes: the LockClient's table; candidates campaign with `elect`, which waits (by
 * default without limit) until elected or its signal aborts.
 */
import { sleep } from "./clock.js";
import type { AcquireOptions, LockClient } from "./client.js";
import { validateName } from "./client.js";
import type { Lock } from "./lock.js";

/** The leader as followers see it. */
export interface Leader {
  /** Owner id of the leader. */
  readonly holder: string;
  /** Term: the fencing token of the leader's grant. */
  readonly term: number;
  /** Value the leader proclaimed (its address, say). */
  readonly value: string | undefined;
}

/** Being the leader of one election. */
export class Leadership {
  readonly name: string;
  /** This leader's term: strictly greater than every earlier term. Use it as a fencing token. */
  readonly term: number;
  readonly value: string | undefined;
  readonly #lock: Lock;

  constructor(name: string, lock: Lock) {
    this.name = name;
    this.term = lock.fencingToken;
    this.value = lock.data;
    this.#lock = lock;
  }

  /** Aborts before another candidate could be elected. */
  get signal(): AbortSignal {
    return this.#lock.signal;
  }

  /** True while this leadership is believed held. */
  get isLeader(): boolean {
    return this.#lock.held;
  }

  /** Steps down: the next candidate is elected at once. Idempotent; true if this call stepped down. */
  resign(): Promise<boolean> {
    return this.#lock.release();
  }
}

export const electionKey = (name: string) => `election#${name}`;

export interface ElectOptions extends Omit<AcquireOptions, "data"> {
  /** Value to proclaim while leading. */
  value?: string;
}

/** Campaigns until elected (or `waitMs` / `signal` end the campaign). */
export async function elect(locks: LockClient, name: string, options: ElectOptions = {}): Promise<Leadership> {
  validateName("name", name);
  const { value, ...rest } = options;
  const lock = await locks.acquireKey(electionKey(name), name, { waitMs: Number.POSITIVE_INFINITY, ...rest, data: value });
  return new Leadership(name, lock);
}

/** The current leader (one consistent read), or undefined if nobody leads. */
export async function leader(locks: LockClient, name: string): Promise<Leader | undefined> {
  validateName("name", name);
  const record = await locks.store.read(electionKey(name));
  return record?.holder ? { holder: record.holder, term: record.fencingToken, value: record.data } : undefined;
}

/** Yields the leader now and at every change seen, until `signal` aborts. */
export async function* observe(
  locks: LockClient,
  name: string,
  options: { signal?: AbortSignal; pollMs?: number } = {},
): AsyncGenerator<Leader | undefined> {
  const pollMs = options.pollMs ?? 250;
  let last: string | undefined;
  while (!options.signal?.aborted) {
    const current = await locks.leader(name);
    const fingerprint = current ? `${current.holder}/${current.term}` : "";
    if (fingerprint !== last) {
      last = fingerprint;
      yield current;
    }
    await sleep(pollMs, options.signal).catch(() => undefined);
  }
}
