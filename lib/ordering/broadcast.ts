/**
 * Broadcast: total order broadcast per stream (DDIA: a linearizable increment-and-get
 * gives every message its place; a write-once log makes that place permanent).
 * (Guarantees and assumptions: see the TSDoc of Broadcast below.)
 */
import { DEFAULT_PUBLISH_ATTEMPTS } from "./defaults.js";
import { DynamoDBClient, TransactionCanceledException, TransactWriteItemsCommand, type TransactWriteItem } from "@aws-sdk/client-dynamodb";
import { SendMessageBatchCommand, SQSClient } from "@aws-sdk/client-sqs";
import { randomUUID } from "node:crypto";
import { sha256Hex } from "../internal/ids.js";
import { validateName } from "../internal/validation.js";
import { jitter, sleep } from "../internal/time.js";
import { FencepostError, InvalidArgumentError, PayloadTooLargeError, PublishConflictError, PublishIncompleteError, SlotLostError, type PublishResult } from "../errors.js";
import { StreamLog, type Slot } from "./log.js";
import { validateTimestamp, type LamportClock, type LamportTimestamp } from "./lamport.js";

/** Largest payload, as UTF-8 JSON: leaves room in an SQS message (256 KiB) and a DynamoDB item (400 KB). */
export const MAX_PAYLOAD_BYTES = 200 * 1024;
/** Messages per log transaction (each may carry a dedup record: 50 of DynamoDB's 100 items). */
export const MESSAGES_PER_TRANSACTION = 25;

export interface BroadcastOptions {
  /** The log table (pk S, sk N): the Fencepost construct's `logTable`. */
  tableName: string;
  /** The FIFO queue messages are sent to after they are durable. Optional: consumers can tail the log. */
  queueUrl?: string;
  dynamodb?: DynamoDBClient;
  sqs?: SQSClient;
  /** Attempts when slots are lost to hole filling, or a twin publish conflicts. @default DEFAULT_PUBLISH_ATTEMPTS (3) */
  maxAttempts?: number;
  /**
   * This producer's Lamport clock: every message published without its own `lamport`
   * stamp is stamped with `clock.tick()` (one tick per message, in batch order, after the
   * batch passed validation and before anything is written). A stamp given per message
   * wins, and leaves the clock alone. The clock is only read and ticked here: observing
   * what the producer receives is the caller's part.
   * @default none: messages carry only the stamps given per message
   */
  clock?: LamportClock;
}

/** Test seams for the verification harness (lib/check); never set in production. */
export interface BroadcastHooks {
  /**
   * NEGATIVE CONTROL: deduplicate by reading first and then writing the dedup record
   * unconditionally (check-then-act). Exists so verification can prove that concurrent
   * publishes of one dedup id expose it.
   */
  readonly unsafeDedupCheckThenAct?: boolean;
}

export interface PublishOptions {
  /** Publishing the same dedupId on a stream twice yields one message (forever, not 5 minutes). */
  dedupId?: string;
  /**
   * Causal metadata: a Lamport timestamp stored with the message (in the same write, at no
   * extra request) and handed to every consumer as `Delivery.lamport`. It says nothing
   * about the message's place in the stream, which `seq` alone decides. A duplicate (same
   * dedupId) keeps the stamp of the publish that placed it.
   * @default the client's `clock.tick()` if it has a clock, else no stamp
   */
  lamport?: LamportTimestamp;
}

/**
 * What one write attempt of a chunk came to, as far as its answer tells: "slot-lost" (a
 * slot was written by someone else, or a write in progress conflicted on a slot),
 * "duplicate" (a dedup record exists), "dedup-conflict" (a twin publish was in progress
 * on a dedup record). The caller then fills the numbers; finding its own message there
 * turns any of these into "written".
 */
type WriteOutcome = "written" | "slot-lost" | "duplicate" | "dedup-conflict";

interface Pending {
  payload: string;
  dedupId?: string;
  lamport?: LamportTimestamp;
  index: number;
}

/**
 * Broadcast: total order broadcast per stream (DDIA: a linearizable increment-and-get
 * gives every message its place; a write-once log makes that place permanent).
 *
 * publish(stream, payload):
 * 1. take sequence numbers from the stream's sequencer (one atomic ADD; a batch takes k);
 * 2. write the messages into their slots with one transaction (write-once conditions,
 *    plus the dedup records); from here the publish is durable and `{ seq }` is returned;
 * 3. send them to the FIFO queue (MessageGroupId = stream, deduplication id derived from
 *    stream and seq), a notification that lets consumers skip polling the log. A failed
 *    send loses nothing: consumers read the log.
 *
 * A producer that took numbers and then stalled past the consumers' hole timeout finds
 * its slots filled with no-ops: the transaction fails, it fills whatever else of its
 * allocation is still empty, in one pass (nobody else will use those numbers), and tries
 * again with fresh numbers, at most `maxAttempts` times (then SlotLostError). The lost
 * numbers are reported in the result. Whenever the write was not seen to apply (lost to
 * a fill, cancelled by a conflict, outcome unknown) the producer fills its numbers and
 * judges by what they hold: a cancellation proves nothing about an earlier copy of the
 * same request (same ClientRequestToken) still in the network, so a slot holding this
 * attempt's own message means the write landed, whole (one transaction), and it is
 * reported as published, not published again. A conflict on a dedup record alone (a twin
 * publish of the same dedupId in progress) is retried after a backoff and loses no slots;
 * if it persists, PublishConflictError. Nothing is ever delivered twice or out of order,
 * because a slot's content never changes once written.
 *
 * Throughput: the sequencer is one item (about 1,000 writes/s per partition on AWS).
 * Batching amortises it: `publishBatch` works in chunks of up to 25 messages, each chunk
 * taking its numbers with one ADD and writing its slots (and dedup records) in one
 * transaction, so one sequencer write serves up to 25 messages.
 *
 * Causal metadata: a message may carry a Lamport timestamp (`lamport`, or the client's
 * `clock`), stored in its slot by the same write and delivered with it, so consumers can
 * `observe` it. It costs no request; the total order is still the sequence numbers'.
 * Assumes: the log table from the Fencepost construct; a FIFO queue if `queueUrl` is given.
 */
export class Broadcast {
  readonly log: StreamLog;
  readonly #queueUrl: string | undefined;
  readonly #sqs: SQSClient | undefined;
  readonly #maxAttempts: number;
  readonly #checkThenAct: boolean;
  readonly #clock: LamportClock | undefined;

  /**
   * @param options the log table, the queue and the clients.
   * @param hooks test seams for the verification harness (lib/check); never set in production.
   */
  constructor(options: BroadcastOptions, hooks: BroadcastHooks = {}) {
    validateName("tableName", options.tableName);
    this.log = new StreamLog(options.dynamodb ?? new DynamoDBClient({}), options.tableName);
    this.#queueUrl = options.queueUrl;
    this.#sqs = options.queueUrl ? (options.sqs ?? new SQSClient({})) : undefined;
    this.#maxAttempts = options.maxAttempts ?? DEFAULT_PUBLISH_ATTEMPTS;
    this.#checkThenAct = hooks.unsafeDedupCheckThenAct ?? false;
    this.#clock = options.clock;
  }

  /**
   * Publishes one message; resolves once it is durable in the log.
   *
   * If it throws with an unknown outcome (a timeout or dropped connection that even filling
   * its own slot could not settle), the message may still land later. Only a `dedupId`
   * makes publishing it again safe: without one, a retry can publish it twice.
   */
  async publish(stream: string, payload: unknown, options: PublishOptions = {}): Promise<PublishResult> {
    return (await this.publishBatch(stream, [{ payload, dedupId: options.dedupId, lamport: options.lamport }]))[0]!;
  }

  /**
   * Publishes messages in the given order (consecutive sequence numbers unless a slot is
   * lost). One sequencer write and one transaction per 25 messages. Each message may carry
   * a dedupId and a Lamport stamp (see PublishOptions); with a client `clock`, the messages
   * without a stamp get one tick each, in order.
   */
  async publishBatch(stream: string, messages: readonly ({ payload: unknown } & PublishOptions)[]): Promise<PublishResult[]> {
    validateStream(stream);
    const pending: Pending[] = messages.map((m, index) => {
      if (m.dedupId !== undefined) validateName("dedupId", m.dedupId);
      if (m.lamport !== undefined) validateTimestamp("lamport", m.lamport);
      const payload = JSON.stringify(m.payload ?? null);
      const bytes = Buffer.byteLength(payload, "utf8");
      if (bytes > MAX_PAYLOAD_BYTES) throw new PayloadTooLargeError(bytes, MAX_PAYLOAD_BYTES);
      return { payload, dedupId: m.dedupId, lamport: m.lamport, index };
    });
    // Stamped only once the whole batch is valid, so a refused batch does not move the clock.
    if (this.#clock) for (const m of pending) m.lamport ??= this.#clock.tick();
    const results: PublishResult[] = new Array(messages.length);
    // The same dedupId twice in one batch is one message: only its first occurrence is written.
    const firstOf = new Map<string, number>();
    const unique = pending.filter((m) => m.dedupId === undefined || (firstOf.has(m.dedupId) ? false : (firstOf.set(m.dedupId, m.index), true)));
    try {
      for (let i = 0; i < unique.length; i += MESSAGES_PER_TRANSACTION) {
        await this.#publishChunk(stream, unique.slice(i, i + MESSAGES_PER_TRANSACTION), results);
      }
    } catch (err) {
      const durable = results.filter((r) => r !== undefined);
      if (durable.length === 0) throw err;
      // Earlier chunks are durable: say exactly which, and still let the queue know of them.
      await this.#notify(stream, results.flatMap((result, i) => (result && !result.duplicate ? [{ result, payload: pending[i]!.payload }] : []))).catch(() => undefined);
      throw new PublishIncompleteError(stream, [...results], { cause: err });
    }
    for (const m of pending) {
      const first = m.dedupId === undefined ? m.index : firstOf.get(m.dedupId)!;
      if (first !== m.index) results[m.index] = { ...results[first]!, duplicate: true };
    }
    await this.#notify(stream, results.flatMap((result, i) => (result.duplicate ? [] : [{ result, payload: pending[i]!.payload }])));
    return results;
  }

  async #publishChunk(stream: string, chunk: Pending[], results: PublishResult[]): Promise<void> {
    const lost: number[] = [];
    let todo = chunk;
    if (this.#checkThenAct) {
      const found = await Promise.all(todo.map((m) => (m.dedupId ? this.log.dedupSeq(stream, m.dedupId) : undefined)));
      todo.forEach((m, i) => found[i] !== undefined && (results[m.index] = { seq: found[i], duplicate: true, lostSlots: [], queued: false }));
      todo = todo.filter((_, i) => found[i] === undefined);
    }
    let outcome: WriteOutcome | undefined;
    for (let attempt = 1; todo.length > 0; attempt++) {
      if (attempt > this.#maxAttempts) {
        throw outcome === "dedup-conflict" ? new PublishConflictError(stream, todo.flatMap((m) => m.dedupId ?? [])) : new SlotLostError(stream, lost);
      }
      const first = await this.log.allocate(stream, todo.length);
      const writer = randomUUID();
      const items: TransactWriteItem[] = todo.flatMap((m, i) => [
        { Put: this.log.messagePut(stream, first + i, m.payload, writer, m.dedupId, m.lamport) },
        ...(m.dedupId ? [{ Put: this.log.dedupPut(stream, m.dedupId, first + i, !this.#checkThenAct) }] : []),
      ]);
      outcome = await this.#write(items, writer, stream, first);
      if (outcome !== "written") {
        // Not seen to apply: our numbers are abandoned. Fill the ones still empty so consumers
        // need not wait, and look at what they hold: a slot with this attempt's own message
        // means a copy of our request landed after all (and whole: one transaction).
        const slots = await this.log.fillAll(stream, todo.map((_, i) => first + i));
        if (slots.some((slot) => slot.kind === "message" && slot.writer === writer)) outcome = "written";
      }
      if (outcome === "written") {
        todo.forEach((m, i) => (results[m.index] = { seq: first + i, duplicate: false, lostSlots: [...lost], queued: false }));
        return;
      }
      const duplicates = await Promise.all(todo.map((m) => (m.dedupId ? this.log.dedupSeq(stream, m.dedupId) : undefined)));
      todo.forEach((m, i) => {
        if (duplicates[i] !== undefined) results[m.index] = { seq: duplicates[i], duplicate: true, lostSlots: [...lost], queued: false };
      });
      if (outcome === "slot-lost") for (let seq = first; seq < first + todo.length; seq++) lost.push(seq);
      todo = todo.filter((_, i) => duplicates[i] === undefined);
      // A twin publish of the same dedupId was in progress: give it time to finish.
      if (outcome === "dedup-conflict" && todo.length > 0) await sleep(jitter(25 * 2 ** attempt));
    }
  }

  /**
   * One transaction; idempotent across SDK retries by its ClientRequestToken (a retry
   * after a lost response succeeds instead of failing on its own writes). Anything but
   * "written" is provisional: the caller fills the numbers and looks (see WriteOutcome).
   */
  async #write(items: TransactWriteItem[], writer: string, stream: string, first: number): Promise<WriteOutcome> {
    try {
      await this.log.dynamodb.send(new TransactWriteItemsCommand({ TransactItems: items, ClientRequestToken: writer }));
      return "written";
    } catch (err) {
      if (!(err instanceof TransactionCanceledException)) {
        // Unknown outcome: settle it by filling our own first number. The fill and our write
        // both need the slot empty, so exactly one of them wins it; the write is one
        // transaction, so it won all its slots or none (and then can never land later).
        let firstSlot: Slot;
        try {
          firstSlot = await this.log.fill(stream, first);
        } catch {
          throw err; // DynamoDB unreachable: the outcome stays unknown
        }
        return firstSlot.kind === "message" && firstSlot.writer === writer ? "written" : "slot-lost";
      }
      const reasons = err.CancellationReasons ?? [];
      const keysFailing = (code: string) => reasons.flatMap((r, i) => (r.Code === code ? [items[i]!.Put!.Item!["pk"]!.S!] : []));
      const failedPuts = keysFailing("ConditionalCheckFailed");
      if (failedPuts.some((pk) => pk.startsWith("log#"))) return "slot-lost";
      if (failedPuts.some((pk) => pk.startsWith("dedup#"))) return "duplicate";
      // Cancelled by another write in progress on our items. On a slot: our numbers are
      // abandoned like lost ones (unless the fill finds our own message in them). On dedup
      // records only: a twin publish of the same dedupId, nothing to do with hole filling.
      const conflicts = keysFailing("TransactionConflict");
      if (conflicts.some((pk) => pk.startsWith("log#"))) return "slot-lost";
      if (conflicts.length > 0) return "dedup-conflict";
      throw err;
    }
  }

  async #notify(stream: string, fresh: { result: PublishResult; payload: string }[]): Promise<void> {
    if (!this.#sqs || !this.#queueUrl) return;
    for (let i = 0; i < fresh.length; i += 10) {
      const batch = fresh.slice(i, i + 10);
      try {
        const out = await this.#sqs.send(
          new SendMessageBatchCommand({
            QueueUrl: this.#queueUrl,
            Entries: batch.map(({ result, payload }, j) => ({
              Id: String(j),
              MessageGroupId: stream,
              MessageDeduplicationId: deduplicationId(stream, result.seq),
              MessageBody: `{"stream":${JSON.stringify(stream)},"seq":${result.seq},"payload":${payload}}`,
            })),
          }),
        );
        const failed = new Set((out.Failed ?? []).map((f) => Number(f.Id)));
        batch.forEach(({ result }, j) => (result.queued = !failed.has(j)));
      } catch {
        // The messages are durable in the log; consumers catch up from it.
      }
    }
  }
}

/** The SQS deduplication id of a stream's message: fixed per (stream, seq), at most 128 characters. */
export function deduplicationId(stream: string, seq: number): string {
  return sha256Hex(`${stream}\n${seq}`);
}

export function validateStream(stream: unknown): asserts stream is string {
  validateName("stream", stream);
  if (stream.length > 128) throw new InvalidArgumentError("stream", `must be at most 128 characters, got ${stream.length}`);
}
