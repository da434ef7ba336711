/**
 * Election: leader election on a lease item (etcd's `concurrency.Election`, on DynamoDB).
 * Built on a LockClient as etcd's `NewElection(session, prefix)` builds on a Session: the
 * client is the candidate (its `ownerId`), and the election is a lease of its own kind
 * (`election#name`) that candidates wait for in order.
 *
 * Guarantees: at most one Leadership of a name is believed at a time (it is a Lock on the
 * election's item), its `term` is the fencing token, so terms strictly increase and a
 * deposed leader's fenced writes are rejected; `signal` aborts before a successor could be
 * elected. `observe` reports every change of leader or term that it sees (polling one
 * consistent read per interval); a follower may miss a term that starts and ends within
 * one interval, never sees terms go backwards.
 * Assumes: candidates campaign with `campaign`, which waits (by default without limit)
 * until elected or its signal aborts.
 */
import { validateName } from "../internal/validation.js";
import type { AcquireOptions, LockClient } from "./client.js";
import { sleep } from "../internal/time.js";
import { DEFAULT_OBSERVE_POLL_MS } from "./defaults.js";
import type { Lock } from "./lock.js";
import type { Leader } from "./protocol.js";


/** Being the leader of one election. */
export class Leadership {
  readonly name: string;
  /** This leader's term: strictly greater than every earlier term. Use it as a fencing token. */
  readonly term: number;
  readonly value: string | undefined;
  readonly #lock: Lock;

  /** Made by Election.campaign from the election's lock; applications do not construct it. */
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

export interface CampaignOptions extends Omit<AcquireOptions, "data"> {
  /** Value to proclaim while leading (an address, say). */
  value?: string;
}

export interface ObserveOptions {
  /** Ends the observation (the iterator returns). */
  signal?: AbortSignal;
  /** How often to read the election. @default DEFAULT_OBSERVE_POLL_MS (250 ms) */
  pollMs?: number;
}

/**
 * One named election, seen by one candidate (`client.ownerId`): campaign for it, read its
 * leader, observe its changes.
 *
 * @example
 * const election = new Election(locks, "scheduler");
 * const leadership = await election.campaign({ value: "10.0.0.7:8080" });
 * leadership.signal.addEventListener("abort", stopLeading);
 */
export class Election {
  constructor(
    /** The candidate: its owner id is the leader's `holder`. */
    readonly client: LockClient,
    readonly name: string,
  ) {
    validateName("name", name);
  }

  /** Campaigns until elected (or `waitMs` / `signal` end the campaign; by default it waits without limit). */
  async campaign(options: CampaignOptions = {}): Promise<Leadership> {
    const { value, ...rest } = options;
    const lock = await this.client.acquireIn("election", this.name, { waitMs: Number.POSITIVE_INFINITY, ...rest, data: value });
    return new Leadership(this.name, lock);
  }

  /**
   * The current leader (one consistent read), or undefined if nobody leads. A candidate the
   * election was just handed to by a resigning leader leads once it has taken it up (it
   * knows it leads, and its value is there): until then, nobody does.
   */
  async leader(): Promise<Leader | undefined> {
    const state = await this.client.readIn("election", this.name);
    return state?.holder !== undefined && !state.pending ? { holder: state.holder, term: state.fencingToken, value: state.data } : undefined;
  }

  /** Yields the leader now and at every change seen, until `signal` aborts. */
  async *observe(options: ObserveOptions = {}): AsyncGenerator<Leader | undefined> {
    const pollMs = options.pollMs ?? DEFAULT_OBSERVE_POLL_MS;
    let last: string | undefined;
    while (!options.signal?.aborted) {
      const current = await this.leader();
      const fingerprint = current ? `${current.holder}/${current.term}` : "";
      if (fingerprint !== last) {
        last = fingerprint;
        yield current;
      }
      await sleep(pollMs, options.signal).catch(() => undefined);
    }
  }
}
