/**
 * FanOut: many consumer groups of one stream behind one queue consumer (one Lambda on the
 * broadcast queue), each group reading the log, none reading the queue.
 *
 * Guarantees: every group delivers the stream in order, each message once per group, as
 * ConsumerGroup guarantees; a queue message is acknowledged only once every group's
 * cursor has passed its seq, so a group that failed (its handler threw, DynamoDB was
 * unreachable) gets the hint back and catches up on the redelivery. Groups do not wait for
 * one another: each catches up from its own cursor, at the same time.
 * Cost per hint batch: per group one cursor read, one Query per 100 slots, one write per
 * message (the group's effects and cursor); the queue is read once, whatever the number
 * of groups. Adding a group is adding a ConsumerGroup here: it starts from its own cursor
 * (0 for a new group: it replays the stream's retained log).
 * Assumes: the groups' handlers are independent (one group's failure does not stop the
 * others), and the queue is the broadcast queue of the groups' stream (records of other
 * streams carry no seq for it and are acknowledged).
 */
import { InvalidArgumentError } from "../errors.js";
import { answerHints, type ConsumerGroup, type SqsEvent } from "./consumer.js";

/** One group's result for a batch of hints. */
export interface FanOutGroupResult {
  readonly group: string;
  /** The group's cursor afterwards. */
  readonly position: number;
  /** Why the group stopped short of the hints, if it did (its handler's or DynamoDB's error). */
  readonly error?: unknown;
}

/**
 * Many consumer groups of one stream served by one queue consumer; see the module header.
 *
 * @example
 * ```ts
 * const fanOut = new FanOut([billing, shipping, audit]); // ConsumerGroups of one stream
 * export const handler = (event: SqsEvent) => fanOut.handleSqsEvent(event);
 * ```
 */
export class FanOut {
  readonly stream: string;
  readonly groups: readonly ConsumerGroup<never>[];

  /** @throws InvalidArgumentError no group, groups of different streams, or one group name twice. */
  constructor(groups: readonly ConsumerGroup<never>[]) {
    const first = groups[0];
    if (!first) throw new InvalidArgumentError("groups", "FanOut needs at least one ConsumerGroup");
    const names = new Set<string>();
    for (const g of groups) {
      if (g.stream !== first.stream) throw new InvalidArgumentError("groups", `FanOut serves one stream: group '${g.group}' reads '${g.stream}', not '${first.stream}'; make one FanOut per stream`);
      if (names.has(g.group)) throw new InvalidArgumentError("groups", `group '${g.group}' is given twice: two consumers of one group in one FanOut only compete for the same messages`);
      names.add(g.group);
    }
    this.stream = first.stream;
    this.groups = [...groups];
  }

  /**
   * Catches every group up to `until` (default: the stream's head), all at once. Resolves
   * to each group's cursor afterwards; a group's failure is reported, not thrown, so the
   * others' progress is never lost.
   */
  async catchUp(options: { until?: number; signal?: AbortSignal } = {}): Promise<FanOutGroupResult[]> {
    const until = options.until ?? (await this.groups[0]!.log.head(this.stream));
    return Promise.all(
      this.groups.map(async (g): Promise<FanOutGroupResult> => {
        try {
          return { group: g.group, position: (await g.catchUp({ until, ...(options.signal ? { signal: options.signal } : {}) })).position };
        } catch (error) {
          const position = await g.log.cursor(this.stream, g.group).catch(() => 0);
          return { group: g.group, position, error };
        }
      }),
    );
  }

  /**
   * For a Lambda on the broadcast queue (with `ReportBatchItemFailures`): catches every group
   * up to the highest seq in the batch, then reports as failed each record some group has
   * not passed yet, so the queue delivers it again.
   */
  async handleSqsEvent(event: SqsEvent): Promise<{ batchItemFailures: { itemIdentifier: string }[] }> {
    return answerHints(event, this.stream, async (until) => Math.min(...(await this.catchUp({ until })).map((r) => r.position)));
  }
}
