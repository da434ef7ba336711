/**
 * GroupQueue: when the publishes of one process go out, and with whom (group commit's
 * timing policy; what a group write does is Broadcast's).
 * (Guarantees and assumptions: see the TSDoc of GroupQueue below.)
 */
import type { MonotonicClock } from "../locks/clock.js";

/** Something that can share a group: how much room it takes, and the keys no two members of a group may share. */
export interface Groupable {
  /** Messages: a group holds at most `maxSize`. */
  readonly size: number;
  /** Bytes: a group holds at most `maxBytes`. */
  readonly bytes: number;
  /** Keys (dedup ids) that no two members of one group may share (a transaction writes an item once). */
  readonly keys: readonly string[];
}

export interface GroupQueueOptions<T extends Groupable> {
  /** Largest group, in `size` units. */
  readonly maxSize: number;
  /** Largest group, in `bytes`. */
  readonly maxBytes: number;
  /** Longest wait for company while others of the lane are in flight (0: none). */
  readonly lingerMs: number;
  readonly clock: MonotonicClock;
  /**
   * Writes one group of `lane`. Resolves when the group's write is over (the next
   * not-full group of the lane may start then); every member must then be settled, or
   * put back, by the caller (`settled`, `putBack`), at once or later. Must not reject.
   */
  readonly write: (lane: string, group: T[]) => Promise<void>;
}

interface Lane<T> {
  /** Submitted, not yet in a group, oldest first. */
  readonly waiting: { item: T; since: number }[];
  /** Group writes in progress. */
  writing: number;
  /** Members taken into groups and not yet settled (being written, being notified, backing off). */
  busy: number;
  timer?: { due: number } & ({ kind: "timeout"; handle: NodeJS.Timeout } | { kind: "immediate"; handle: NodeJS.Immediate });
}

/**
 * GroupQueue: group commit for one process. Items are submitted per lane (a stream) and
 * written in groups, in submission order (a group never reorders what it takes, and
 * never splits an item).
 *
 * When a group starts (and this is all the waiting there is):
 * - at once, when the items waiting at the head fill a group (`maxSize` or `maxBytes`),
 *   even while another group of the lane is being written;
 * - otherwise only when no group of the lane is being written, and then
 *   - on the next turn of the event loop if nothing else of the lane is in flight (so a
 *     lone publish waits for nothing, and publishes made in one turn share a group);
 *   - else once the oldest waiting item has waited `lingerMs` (its company may be
 *     about to come back), or as soon as nothing else is in flight.
 * So an item waits for a group at most `lingerMs`, plus the end of a write already in
 * progress on its lane. Items whose keys meet a key already in the forming group close
 * it: they go in the next group.
 * Assumes: `write` settles or puts back every member of every group it is given.
 */
export class GroupQueue<T extends Groupable> {
  readonly #options: GroupQueueOptions<T>;
  readonly #lanes = new Map<string, Lane<T>>();

  constructor(options: GroupQueueOptions<T>) {
    this.#options = options;
  }

  /** Queues `item` on `lane`. */
  submit(lane: string, item: T): void {
    this.#lane(lane).waiting.push({ item, since: this.#options.clock.now() });
    this.#pump(lane, false);
  }

  /** Returns a member of an earlier group to the head of its lane (to be written again). */
  putBack(lane: string, item: T): void {
    const l = this.#lane(lane);
    l.busy--;
    l.waiting.unshift({ item, since: this.#options.clock.now() });
    this.#pump(lane, false);
  }

  /** A member of an earlier group is settled: it is no longer in flight. */
  settled(lane: string): void {
    const l = this.#lanes.get(lane);
    if (!l) return;
    l.busy--;
    this.#pump(lane, false);
  }

  #lane(name: string): Lane<T> {
    let lane = this.#lanes.get(name);
    if (!lane) this.#lanes.set(name, (lane = { waiting: [], writing: 0, busy: 0 }));
    return lane;
  }

  /** How many items at the head of `waiting` fit one group, and whether a limit (not a key) stopped it. */
  #fit(waiting: readonly { item: T }[]): { count: number; full: boolean } {
    let size = 0;
    let bytes = 0;
    const keys = new Set<string>();
    for (let i = 0; i < waiting.length; i++) {
      const { item } = waiting[i]!;
      if (i > 0 && (size + item.size > this.#options.maxSize || bytes + item.bytes > this.#options.maxBytes)) return { count: i, full: true };
      if (item.keys.some((key) => keys.has(key))) return { count: i, full: false };
      size += item.size;
      bytes += item.bytes;
      for (const key of item.keys) keys.add(key);
    }
    return { count: waiting.length, full: size >= this.#options.maxSize };
  }

  /** Starts whatever groups may start now; arms the timer for the one that may start later. */
  #pump(name: string, timerFired: boolean): void {
    const lane = this.#lanes.get(name);
    if (!lane) return;
    for (;;) {
      if (lane.waiting.length === 0) {
        this.#disarm(lane);
        if (lane.writing === 0 && lane.busy === 0) this.#lanes.delete(name);
        return;
      }
      const { count, full } = this.#fit(lane.waiting);
      if (!full) {
        if (lane.writing > 0) return this.#disarm(lane); // its end pumps again
        const due = this.#options.lingerMs > 0 && lane.busy > 0 ? lane.waiting[0]!.since + this.#options.lingerMs : -Infinity;
        if (!timerFired || due > this.#options.clock.now()) return this.#arm(name, lane, due);
      }
      timerFired = false;
      this.#disarm(lane);
      this.#start(name, lane, lane.waiting.splice(0, count).map((w) => w.item));
    }
  }

  #start(name: string, lane: Lane<T>, group: T[]): void {
    lane.writing++;
    lane.busy += group.length;
    void this.#options
      .write(name, group)
      .catch(() => undefined)
      .finally(() => {
        lane.writing--;
        this.#pump(name, false);
      });
  }

  /** Pumps again at `due` (-Infinity: on the next turn of the event loop), unless a timer is armed for no later. */
  #arm(name: string, lane: Lane<T>, due: number): void {
    if (lane.timer && lane.timer.due <= due) return;
    this.#disarm(lane);
    const fire = () => {
      lane.timer = undefined;
      this.#pump(name, true);
    };
    const delay = due - this.#options.clock.now();
    // Ref'd timers: a caller is awaiting this group.
    lane.timer = delay > 0 ? { kind: "timeout", handle: setTimeout(fire, delay), due } : { kind: "immediate", handle: setImmediate(fire), due };
  }

  #disarm(lane: Lane<T>): void {
    if (!lane.timer) return;
    if (lane.timer.kind === "timeout") clearTimeout(lane.timer.handle);
    else clearImmediate(lane.timer.handle);
    lane.timer = undefined;
  }
}
