/**
 * ConsumerGroup: delivers one stream to a handler strictly in sequence order, each
 * message's effects committed once, whatever the queue does.
 * (Guarantees and assumptions: see the TSDoc of ConsumerGroup below.)
 */
import { DEFAULT_CONSUMER_POLL_MS, DEFAULT_HOLE_TIMEOUT_MS } from "./defaults.js";
import { InvalidArgumentError } from "../errors.js";
import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  TransactionCanceledException,
  TransactWriteItemsCommand,
  UpdateItemCommand,
  type TransactWriteItem,
} from "@aws-sdk/client-dynamodb";
import { DeleteMessageBatchCommand, ReceiveMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { randomUUID } from "node:crypto";
import { sleep } from "../internal/time.js";
import { systemClock, type MonotonicClock } from "../locks/clock.js";
import { validateName } from "../internal/validation.js";
import { certainlyNotApplied } from "../internal/outcomes.js";
import { validateStream } from "./broadcast.js";
import { StreamLog, type Slot } from "./log.js";
import type { LamportTimestamp } from "./lamport.js";

/** Slots one catch-up step reads from the log. */
const READ_LIMIT = 100;
/** Holes one fill pass settles at most (later ones wait for the next pass). */
const HOLES_PER_PASS = 1000;

/** One message as a handler receives it. */
export interface Delivery<T> {
  readonly stream: string;
  /** Its place in the stream: every group delivers the same seqs in the same order. */
  readonly seq: number;
  readonly payload: T;
  /**
   * The Lamport timestamp it was published with, if any (absent: none). Pass it to the
   * consumer's own clock, `clock.observe(delivery.lamport)`, so that whatever the handler
   * does next is ordered after the message's cause.
   */
  readonly lamport?: LamportTimestamp;
}

/** Runs the message's effects; returning resolves the delivery. */
export type Handler<T> = (message: Delivery<T>) => Promise<void> | void;
/** Returns the message's DynamoDB writes, committed atomically with the cursor. */
export type TransactionalHandler<T> = (message: Delivery<T>) => Promise<readonly TransactWriteItem[]> | readonly TransactWriteItem[];

export interface ConsumerGroupOptions<T> {
  /** The log table (the Fencepost construct's `logTable`). */
  tableName: string;
  stream: string;
  /** The group's name: each group delivers the whole stream once. */
  group: string;
  dynamodb?: DynamoDBClient;
  /** At-least-once effects, in order. Give this or `transactional`. */
  handler?: Handler<T>;
  /** Exactly-once DynamoDB effects, in order: up to 99 writes per message. */
  transactional?: TransactionalHandler<T>;
  /**
   * How long a slot may stay empty, from when this consumer first saw it empty, before
   * this consumer fills it with a no-op. All the holes it saw at once are filled in one
   * pass when their wait is over, so a crashed producer's whole chunk costs one timeout.
   * The wait counts within one catch-up: a catch-up that ends (aborted, failed) forgets it.
   * @default DEFAULT_HOLE_TIMEOUT_MS (2 s)
   */
  holeTimeoutMs?: number;
  clock?: MonotonicClock;
  /** Told what each catch-up faces and does (for metrics: lag, hole fills). Its errors are ignored. */
  observer?: ConsumerObserver;
}

/**
 * What a consumer tells about its progress, for metrics and logs (see
 * `consumerMetrics` in `fencepost/advanced` for Lambda Powertools). Called inline: keep it
 * cheap; whatever it throws is ignored.
 */
export interface ConsumerObserver {
  /** A catch-up starts `lag` messages behind the seq it must reach (the head, or a hint's seq). */
  catchingUp?(group: { stream: string; group: string }, lag: number): void;
  /** A fill pass ended with `count` slots holding no-ops (numbers whose producer never wrote them). */
  holesFilled?(group: { stream: string; group: string }, count: number): void;
}

/** Test seams for the verification harness (lib/check); never set in production. */
export interface ConsumerGroupHooks {
  /** NEGATIVE CONTROL: move the cursor without checking where it was. */
  readonly unsafeSkipCursorCheck?: boolean;
}

/** What a catch-up did. */
export interface CatchUpResult {
  /** Messages handed to the handler and committed by this consumer. */
  readonly delivered: readonly number[];
  /** No-ops skipped (holes filled by anyone). */
  readonly skipped: number;
  /** The cursor afterwards. */
  readonly position: number;
}

/** A Lambda SQS event, as much of it as the consumer reads. */
export interface SqsEvent {
  Records: { messageId: string; body: string }[];
}

/**
 * ConsumerGroup: delivers one stream to a handler strictly in sequence order, each
 * message's effects committed once, whatever the queue does.
 *
 * The group's cursor (`position`, in the log table) says how far it has delivered.
 * Delivering slot p+1 means: run the handler, then move the cursor from p to p+1 with a
 * conditional write. In transactional mode the handler returns its DynamoDB writes and
 * they commit in the same TransactWriteItems as the cursor move, so effects and cursor
 * can never disagree (exactly-once effects); otherwise a crash between handler and cursor
 * move makes the handler see that message again (at-least-once, never out of order).
 * Once the cursor has passed a message, the group never delivers it again: several
 * consumers of one group may run, and the cursor condition lets exactly one commit each.
 *
 * The queue is only a hint: a record's seq tells how far the log has grown. A consumer
 * delivers everything up to it from the log, so messages that arrive late, twice, out of
 * order or never are all handled the same way. A slot still empty `holeTimeoutMs` after
 * this consumer first saw it empty (on its monotonic clock) is filled with a no-op (see
 * log.ts) and skipped. Every hole in view when the consumer stalls starts its wait then,
 * and all holes whose wait is over are filled in one pass (one conditional put each, 25
 * in flight), so k consecutive holes cost one timeout, not k. Only slots the consumer
 * has read past count as holes: a read page that stopped early (100 slots, or DynamoDB's
 * 1 MB) ends the range at its last slot. A hole's wait counts only while a catch-up
 * watches it: a catch-up that ends (aborted, failed) forgets its holes. A run of no-ops
 * is skipped with one cursor move. Liveness assumes `until` is a number already handed out.
 * Assumes: the log table of the Fencepost construct; payloads were published by Broadcast.
 */
export class ConsumerGroup<T = unknown> {
  readonly stream: string;
  readonly group: string;
  readonly log: StreamLog;
  readonly #options: ConsumerGroupOptions<T>;
  readonly #hooks: ConsumerGroupHooks;
  readonly #clock: MonotonicClock;
  readonly #holeTimeoutMs: number;
  /** When this consumer first saw each hole (monotonic). */
  readonly #holes = new Map<number, number>();

  /**
   * @param options the stream, the group, the handler and the log table.
   * @param hooks test seams for the verification harness (lib/check); never set in production.
   */
  constructor(options: ConsumerGroupOptions<T>, hooks: ConsumerGroupHooks = {}) {
    validateStream(options.stream);
    validateName("group", options.group);
    if (!options.handler === !options.transactional) throw new InvalidArgumentError("handler", "ConsumerGroup needs exactly one of handler and transactional");
    this.stream = options.stream;
    this.group = options.group;
    this.log = new StreamLog(options.dynamodb ?? new DynamoDBClient({}), options.tableName);
    this.#options = options;
    this.#hooks = hooks;
    this.#clock = options.clock ?? systemClock;
    this.#holeTimeoutMs = options.holeTimeoutMs ?? DEFAULT_HOLE_TIMEOUT_MS;
  }

  /**
   * Delivers every message from the cursor up to `until` (default: the stream's head at
   * the start), waiting out holes. `until` must be a number already handed out (the head,
   * or a seq a queue message carries): slots up to it that stay empty are filled. Throws
   * the handler's error after committing whatever came before it; the failed message is
   * retried by the next catch-up.
   */
  async catchUp(options: { until?: number; signal?: AbortSignal } = {}): Promise<CatchUpResult> {
    const until = options.until ?? (await this.log.head(this.stream));
    const delivered: number[] = [];
    let skipped = 0;
    let position = await this.log.cursor(this.stream, this.group);
    this.#tell((o) => o.catchingUp?.(this, Math.max(0, until - position)));
    try {
      while (position < until) {
        options.signal?.throwIfAborted();
        const { slots, truncated } = await this.log.readAfter(this.stream, position, READ_LIMIT);
        let progressed = false;
        for (let i = 0; i < slots.length && position < until; i++) {
          const slot = slots[i]!;
          if (slot.seq <= position) continue; // another consumer of the group moved the cursor past it
          if (slot.seq !== position + 1) break; // a hole: handled below
          // A run of no-ops is skipped with one cursor move.
          while (slot.kind === "noop" && slots[i + 1]?.kind === "noop" && slots[i + 1]!.seq === slots[i]!.seq + 1) i++;
          const outcome = await this.#advance(position, slots[i]!.seq, slot.kind === "message" ? slot : undefined);
          if (outcome.committed) slot.kind === "message" ? delivered.push(slot.seq) : (skipped += outcome.position - position);
          position = outcome.position;
          progressed = true;
        }
        if (progressed || position >= until) continue;
        // Slot position+1 is empty although allocated: wait for its producer, then fill it
        // together with every other hole whose wait is over. A truncated page says nothing
        // about the slots after its last one: they are not holes (yet).
        const end = truncated ? Math.min(until, slots.at(-1)?.seq ?? until) : until;
        const expired = this.#expiredHoles(position, end, slots);
        if (!expired.includes(position + 1)) {
          await sleep(Math.min(50, this.#holes.get(position + 1)! + this.#holeTimeoutMs - this.#clock.now()), options.signal);
          continue;
        }
        const settled = await this.log.fillAll(this.stream, expired);
        this.#tell((o) => o.holesFilled?.(this, settled.filter((slot) => slot.kind === "noop").length));
        for (const seq of expired) this.#holes.delete(seq);
        // The next read finds each filled slot's winner: the no-op, or a late producer's message.
      }
    } finally {
      // Waits count only while watched: a later catch-up starts them afresh.
      this.#holes.clear();
    }
    return { delivered, skipped, position };
  }

  /** Calls the observer, if any; an observer's error never fails a delivery. */
  #tell(call: (observer: ConsumerObserver) => void): void {
    const observer = this.#options.observer;
    if (!observer) return;
    try {
      call(observer);
    } catch {
      // metrics are best effort
    }
  }

  /**
   * The holes after `position` up to `end` (at most HOLES_PER_PASS of them) whose wait is
   * over. Every slot of that range missing from `written` is a hole: its number was handed
   * out, since `end` was. The first time this consumer sees a hole starts its wait, so
   * holes seen together (a crashed producer's chunk) expire together.
   */
  #expiredHoles(position: number, end: number, written: readonly Slot[]): number[] {
    const now = this.#clock.now();
    const filled = new Set(written.map((slot) => slot.seq));
    for (const seq of this.#holes.keys()) if (seq <= position || filled.has(seq)) this.#holes.delete(seq);
    const expired: number[] = [];
    for (let seq = position + 1; seq <= Math.min(end, position + HOLES_PER_PASS); seq++) {
      if (filled.has(seq)) continue;
      const seen = this.#holes.get(seq) ?? now;
      this.#holes.set(seq, seen);
      if (now - seen >= this.#holeTimeoutMs) expired.push(seq);
    }
    return expired;
  }

  /**
   * For a Lambda on the FIFO event source: delivers everything up to the highest seq in
   * the batch, and reports as failed the records not yet delivered (they come back).
   */
  async handleSqsEvent(event: SqsEvent): Promise<{ batchItemFailures: { itemIdentifier: string }[] }> {
    return answerHints(event, this.stream, async (until) => {
      try {
        return (await this.catchUp({ until })).position;
      } catch {
        return this.log.cursor(this.stream, this.group);
      }
    });
  }

  /**
   * A long-running consumer: takes hints from `queueUrl` if given (deleting what is
   * delivered), else polls the log every `pollMs`; runs until `signal` aborts.
   */
  async run(options: { signal: AbortSignal; sqs?: SQSClient; queueUrl?: string; pollMs?: number; onError?: (err: unknown) => void }): Promise<void> {
    const { signal, sqs, queueUrl } = options;
    while (!signal.aborted) {
      try {
        if (sqs && queueUrl) {
          const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }), { abortSignal: signal });
          const messages = out.Messages ?? [];
          const until = Math.max(0, ...messages.map((m) => seqOf(m.Body ?? "", this.stream) ?? 0));
          const { position } = await this.catchUp({ until: Math.max(until, await this.log.head(this.stream)), signal });
          const done = messages.filter((m) => (seqOf(m.Body ?? "", this.stream) ?? Infinity) <= position);
          if (done.length) await sqs.send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: done.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }));
        } else {
          await this.catchUp({ signal });
          await sleep(options.pollMs ?? DEFAULT_CONSUMER_POLL_MS, signal);
        }
      } catch (err) {
        if (signal.aborted) return;
        options.onError?.(err);
        await sleep(options.pollMs ?? DEFAULT_CONSUMER_POLL_MS, signal).catch(() => undefined);
      }
    }
  }

  /**
   * Moves the cursor from `position` to `to`: delivers `message` first if there is one
   * (then `to` is its seq), else skips the no-ops up to `to`. Resolves to whether this
   * consumer committed the move, and the cursor after.
   */
  async #advance(position: number, to: number, message: Extract<Slot, { kind: "message" }> | undefined): Promise<{ committed: boolean; position: number }> {
    const advance = this.log.cursorAdvance(this.stream, this.group, position, to, !this.#hooks.unsafeSkipCursorCheck);
    const delivery: Delivery<T> | undefined = message && {
      stream: this.stream,
      seq: message.seq,
      payload: JSON.parse(message.payload) as T,
      ...(message.lamport ? { lamport: message.lamport } : {}),
    };
    try {
      if (delivery && this.#options.transactional) {
        const effects = await this.#options.transactional(delivery);
        await this.log.dynamodb.send(new TransactWriteItemsCommand({ TransactItems: [...effects, { Update: advance }], ClientRequestToken: randomUUID() }));
      } else {
        if (delivery) await this.#options.handler!(delivery);
        await this.log.dynamodb.send(new UpdateItemCommand(advance));
      }
      return { committed: true, position: to };
    } catch (err) {
      const cursorMoved =
        err instanceof ConditionalCheckFailedException ||
        (err instanceof TransactionCanceledException && err.CancellationReasons?.at(-1)?.Code === "ConditionalCheckFailed");
      if (cursorMoved || !certainlyNotApplied(err)) {
        // Another consumer of the group moved the cursor, or our own write's answer was lost: look.
        const now = await this.log.cursor(this.stream, this.group);
        if (now > position) return { committed: false, position: now };
      }
      throw err;
    }
  }
}

/**
 * A Lambda SQS batch of `stream`'s hints, answered: `deliverUpTo(until)` delivers up to the
 * highest seq in the batch and resolves to how far delivery got; the records beyond that
 * are reported as failed (the queue delivers them again). Records of other streams pass.
 */
export async function answerHints(event: SqsEvent, stream: string, deliverUpTo: (until: number) => Promise<number>): Promise<{ batchItemFailures: { itemIdentifier: string }[] }> {
  const records = event.Records.map((r) => ({ id: r.messageId, seq: seqOf(r.body, stream) }));
  const until = Math.max(0, ...records.map((r) => r.seq ?? 0));
  const position = until === 0 ? 0 : await deliverUpTo(until);
  return { batchItemFailures: records.filter((r) => r.seq !== undefined && r.seq > position).map((r) => ({ itemIdentifier: r.id })) };
}

/** The seq of a queue message of `stream`, or undefined if the body is not one. */
function seqOf(body: string, stream: string): number | undefined {
  try {
    const parsed = JSON.parse(body) as { stream?: unknown; seq?: unknown };
    return parsed.stream === stream && typeof parsed.seq === "number" ? parsed.seq : undefined;
  } catch {
    return undefined;
  }
}
