/**
 * Broadcast: total order broadcast per stream (DDIA: a linearizable increment-and-get
 * gives every message its place; a write-once log makes that place permanent), with the
 * concurrent publishes of one process group-committed.
 * (Guarantees and assumptions: see the TSDoc of Broadcast below.)
 */
import { DEFAULT_PUBLISH_ATTEMPTS, DEFAULT_PUBLISH_LINGER_MS, GROUP_WRITE_TIMEOUT_MS } from "./defaults.js";
import { DynamoDBClient, TransactionCanceledException, TransactWriteItemsCommand, type TransactWriteItem } from "@aws-sdk/client-dynamodb";
import { SendMessageBatchCommand, SQSClient } from "@aws-sdk/client-sqs";
import { randomUUID } from "node:crypto";
import { sha256Hex } from "../internal/ids.js";
import { validateName, validateNonNegativeMs } from "../internal/validation.js";
import { jitter, sleep } from "../internal/time.js";
import { systemClock } from "../locks/clock.js";
import { InvalidArgumentError, PayloadTooLargeError, PublishConflictError, PublishIncompleteError, PublishOutcomeUnknownError, SlotLostError, type PublishResult } from "../errors.js";
import { GroupQueue, type Groupable } from "./group-commit.js";
import { StreamLog, type Slot } from "./log.js";
import { validateTimestamp, type LamportClock, type LamportTimestamp } from "./lamport.js";

/** Largest payload, as UTF-8 JSON: leaves room in an SQS message (256 KiB) and a DynamoDB item (400 KB). */
export const MAX_PAYLOAD_BYTES = 200 * 1024;
/** Messages per log transaction (each may carry a dedup record: 50 of DynamoDB's 100 items). */
export const MESSAGES_PER_TRANSACTION = 25;
/** Bytes one log transaction may carry, counting MESSAGE_OVERHEAD_BYTES per message beside its payload (DynamoDB allows 4 MB). */
const TRANSACTION_BYTES = 3_500_000;
/** Room counted per message for its keys, attributes and dedup record. */
const MESSAGE_OVERHEAD_BYTES = 1024;
/** Message bodies one SendMessageBatch may carry (SQS: 256 KiB per batch). */
const SEND_BATCH_BYTES = 256 * 1024;

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
   * How long, at most, a publish waits for company (other publishes of its stream, to
   * share one sequencer write and one transaction) while other publishes of that stream
   * are in flight in this Broadcast. A publish with nothing in flight beside it goes on
   * the next turn of the event loop, so a lone publisher never waits; publishes that
   * arrive while a group of their stream is being written wait for that write in any
   * case and go together after it. 0: no wait beyond that.
   * @default DEFAULT_PUBLISH_LINGER_MS (2 ms)
   */
  lingerMs?: number;
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

/** One message on its way into the log. */
interface Message {
  readonly payload: string;
  readonly dedupId?: string;
  readonly lamport?: LamportTimestamp;
  /** Its number in the current attempt. */
  seq?: number;
  /** Set once settled: durable at `result.seq` (written by this publish, or found placed by an earlier one). */
  result?: PublishResult;
}

/**
 * One `publish` call, or one chunk of a `publishBatch`: the unit of fate. Its messages
 * are written by the same transactions (consecutive numbers, in order) and it succeeds
 * or fails as a whole; the requests of one group succeed or fail apart.
 */
class Request implements Groupable {
  /** Failed attempts on its own account: its slots lost, or its dedup records held by a twin. */
  failures = 0;
  lastFailure: "slot-lost" | "dedup-conflict" = "slot-lost";
  /** Numbers it took and lost to hole filling (its own fills after an unknown outcome included). */
  readonly lost: number[] = [];
  /** Publishes of a dedup id it is placing, made meanwhile in this Broadcast: they wait for its outcome. */
  readonly dependents: Request[] = [];
  /** Submitted to the group queue and not settled. */
  grouped = false;

  constructor(
    readonly stream: string,
    readonly messages: readonly Message[],
    /** Notify the queue once durable (publish); publishBatch notifies its whole batch itself. */
    readonly notify: boolean,
    readonly resolve: (results: PublishResult[]) => void,
    readonly reject: (err: unknown) => void,
  ) {}

  get open(): Message[] {
    return this.messages.filter((m) => m.result === undefined);
  }
  get size(): number {
    return this.open.length;
  }
  get bytes(): number {
    return this.open.reduce((sum, m) => sum + messageBytes(m), 0);
  }
  get keys(): string[] {
    return this.open.flatMap((m) => m.dedupId ?? []);
  }
}

/** A message placed in an attempt, with its request. */
interface Placement {
  readonly message: Message;
  readonly request: Request;
}

/**
 * What one attempt came to. "written": every message of it is in its slot. "unknown":
 * nobody can tell (DynamoDB unreachable): every request of it fails with `error`.
 * "cancelled": it did not apply, and no copy of it ever will; `found` are messages
 * already placed by earlier publishes (their dedup record's seq), `slotLost` says some of
 * its slots were taken by hole filling, `conflicted` are the requests whose dedup records
 * a twin publish was writing, and `keep` says its numbers are still this group's to use
 * (nothing was filled). A cancellation with none of these is a refusal: every request of
 * the attempt fails with `error`.
 */
type Verdict =
  | { kind: "written" }
  | { kind: "unknown"; error: unknown }
  | { kind: "cancelled"; keep: boolean; slotLost: boolean; found: Map<Message, number>; conflicted: Set<Request>; error: unknown };

/**
 * Broadcast: total order broadcast per stream (DDIA: a linearizable increment-and-get
 * gives every message its place; a write-once log makes that place permanent).
 *
 * A group of messages (up to 25, see group commit below) is published thus:
 * 1. take sequence numbers from the stream's sequencer (one atomic ADD of the group's size);
 * 2. write the messages into their slots with one transaction (write-once conditions,
 *    plus the dedup records); from here they are durable and each `{ seq }` is returned;
 * 3. send them to the FIFO queue (MessageGroupId = stream, deduplication id derived from
 *    stream and seq; one SendMessageBatch per 10), a notification that lets consumers
 *    skip polling the log. A failed send loses nothing: consumers read the log.
 *
 * Group commit: concurrent `publish` calls on one Broadcast are grouped per stream (see
 * GroupQueue for when a group starts: a lone publish waits for nothing, publishes that
 * arrive while their stream's group is being written go together after it, and no
 * publish waits for company longer than `lingerMs`). A group is at most
 * MESSAGES_PER_TRANSACTION messages (and 3.5 MB); a `publishBatch` chunk joins a group
 * whole. The unit of fate is the request (one publish call, or one chunk of a batch):
 * - what the group's transaction proves applies to every request in it: written, all of
 *   them are durable; its outcome unknown, all of them fail with that error; its slots
 *   lost to hole filling, each request counts a failed attempt and the group tries again
 *   with fresh numbers (a request out of attempts fails with SlotLostError);
 * - what one request's dedup record causes is that request's alone: a message already
 *   published (the record's condition failed) is reported as that duplicate, and a
 *   record a twin publish is writing (a transaction conflict on it) sets its request
 *   aside to try again after a backoff (PublishConflictError once out of attempts);
 *   either way the other requests of the group try again at once, not counting it as an
 *   attempt of theirs;
 * - two publishes of one dedupId in flight at once in one Broadcast never race: the
 *   later waits for the earlier and resolves as its duplicate (same seq), or, if the
 *   earlier fails, goes on its own, as a publish after it would.
 *
 * Why a cancelled attempt can be judged: whenever a transaction is not seen to apply
 * (lost to a fill, cancelled by a conflict, outcome unknown), a copy of the same request
 * (same ClientRequestToken, an SDK retry) may still be in the network. The producer then
 * fills its numbers and looks at what they hold: exactly one of its write and each fill
 * wins a slot, the write is one transaction (all slots or none), so a slot holding this
 * attempt's own message means it landed whole (reported written, not published again),
 * and otherwise no copy can land any more. One case needs no fill: a cancellation where
 * a dedup record's condition failed on a record that points outside the attempt's
 * numbers proves that no copy of the attempt ever applied or ever will (every copy
 * carries that conditional put, and a dedup record never changes), so its numbers are
 * still the group's: it resolves those duplicates and writes the rest in the same slots,
 * with no-ops in the freed ones, in one more transaction. Numbers left unused are filled
 * with no-ops at once, so consumers need not wait for them. Nothing is ever delivered
 * twice or out of order, because a slot's content never changes once written.
 *
 * Throughput: the sequencer is one item (about 1,000 writes/s per partition on AWS), and
 * each group costs it one write: one sequencer write serves up to 25 messages, whether
 * they come from one `publishBatch` or from concurrent `publish` calls. Streams have
 * sequencers of their own, so throughput also grows with the number of streams.
 *
 * Causal metadata: a message may carry a Lamport timestamp (`lamport`, or the client's
 * `clock`), stored in its slot by the same write and delivered with it, so consumers can
 * `observe` it. It costs no request; the total order is still the sequence numbers'.
 * Assumes: the log table from the Fencepost construct (dedup records are never deleted
 * or changed); a FIFO queue if `queueUrl` is given.
 */
export class Broadcast {
  readonly log: StreamLog;
  readonly #queueUrl: string | undefined;
  readonly #sqs: SQSClient | undefined;
  readonly #maxAttempts: number;
  readonly #checkThenAct: boolean;
  readonly #clock: LamportClock | undefined;
  readonly #groups: GroupQueue<Request>;
  /** Per stream and dedup id: the request placing it now. */
  readonly #placing = new Map<string, Request>();

  /**
   * @param options the log table, the queue and the clients.
   * @param hooks test seams for the verification harness (lib/check); never set in production.
   */
  constructor(options: BroadcastOptions, hooks: BroadcastHooks = {}) {
    validateName("tableName", options.tableName);
    validateNonNegativeMs("lingerMs", options.lingerMs);
    this.log = new StreamLog(options.dynamodb ?? new DynamoDBClient({}), options.tableName);
    this.#queueUrl = options.queueUrl;
    this.#sqs = options.queueUrl ? (options.sqs ?? new SQSClient({})) : undefined;
    this.#maxAttempts = options.maxAttempts ?? DEFAULT_PUBLISH_ATTEMPTS;
    this.#checkThenAct = hooks.unsafeDedupCheckThenAct ?? false;
    this.#clock = options.clock;
    this.#groups = new GroupQueue<Request>({
      maxSize: MESSAGES_PER_TRANSACTION,
      maxBytes: TRANSACTION_BYTES,
      lingerMs: options.lingerMs ?? DEFAULT_PUBLISH_LINGER_MS,
      clock: systemClock,
      write: (stream, group) => this.#writeGroup(stream, group),
    });
  }

  /**
   * Publishes one message; resolves once it is durable in the log. Concurrent calls share
   * sequencer writes and transactions (group commit, see above); each resolves or rejects
   * on its own message's account.
   *
   * If it throws with an unknown outcome (a timeout or dropped connection that even filling
   * its own slot could not settle), the message may still land later. Only a `dedupId`
   * makes publishing it again safe: without one, a retry can publish it twice.
   */
  async publish(stream: string, payload: unknown, options: PublishOptions = {}): Promise<PublishResult> {
    validateStream(stream);
    const message = this.#validated(payload, options);
    const stamped = this.#clock && message.lamport === undefined ? { ...message, lamport: this.#clock.tick() } : message;
    return (await this.#submit(stream, [stamped], true))[0]!;
  }

  /**
   * Publishes messages in the given order (consecutive sequence numbers unless a slot is
   * lost). One sequencer write and one transaction per 25 messages (fewer if their
   * payloads pass 3.5 MB); a chunk of fewer may share them with concurrent publishes.
   * Each message may carry a dedupId and a Lamport stamp (see PublishOptions); with a
   * client `clock`, the messages without a stamp get one tick each, in order.
   */
  async publishBatch(stream: string, messages: readonly ({ payload: unknown } & PublishOptions)[]): Promise<PublishResult[]> {
    validateStream(stream);
    const validated = messages.map((m) => this.#validated(m.payload, m));
    // Stamped only once the whole batch is valid, so a refused batch does not move the clock.
    const pending = validated.map((m, index) => ({ index, message: this.#clock && m.lamport === undefined ? { ...m, lamport: this.#clock.tick() } : m }));
    const results: PublishResult[] = new Array(messages.length);
    // The same dedupId twice in one batch is one message: only its first occurrence is written.
    const firstOf = new Map<string, number>();
    const unique = pending.filter(({ message: m, index }) => m.dedupId === undefined || (firstOf.has(m.dedupId) ? false : (firstOf.set(m.dedupId, index), true)));
    try {
      for (const chunk of chunks(unique, (p) => messageBytes(p.message))) {
        const published = await this.#submit(stream, chunk.map((p) => p.message), false);
        chunk.forEach((p, i) => (results[p.index] = published[i]!));
      }
    } catch (err) {
      const durable = results.filter((r) => r !== undefined);
      if (durable.length === 0) throw err;
      // Earlier chunks are durable: say exactly which, and still let the queue know of them.
      await this.#notify(stream, results.flatMap((result, i) => (result && !result.duplicate ? [{ result, payload: pending[i]!.message.payload }] : [])));
      throw new PublishIncompleteError(stream, [...results], { cause: err });
    }
    for (const { message: m, index } of pending) {
      const first = m.dedupId === undefined ? index : firstOf.get(m.dedupId)!;
      if (first !== index) results[index] = { ...results[first]!, duplicate: true };
    }
    await this.#notify(stream, results.flatMap((result, i) => (result.duplicate ? [] : [{ result, payload: pending[i]!.message.payload }])));
    return results;
  }

  #validated(payload: unknown, options: PublishOptions): Message {
    if (options.dedupId !== undefined) validateName("dedupId", options.dedupId);
    if (options.lamport !== undefined) validateTimestamp("lamport", options.lamport);
    const json = JSON.stringify(payload ?? null);
    const bytes = Buffer.byteLength(json, "utf8");
    if (bytes > MAX_PAYLOAD_BYTES) throw new PayloadTooLargeError(bytes, MAX_PAYLOAD_BYTES);
    return { payload: json, ...(options.dedupId !== undefined ? { dedupId: options.dedupId } : {}), ...(options.lamport !== undefined ? { lamport: options.lamport } : {}) };
  }

  /** Resolves to the messages' results once all of them are durable (in order), or rejects with the request's error. */
  #submit(stream: string, messages: readonly Message[], notify: boolean): Promise<PublishResult[]> {
    return new Promise((resolve, reject) => this.#enqueue(new Request(stream, messages, notify, resolve, reject)));
  }

  /**
   * Queues `request` for a group, unless it is one message whose dedup id another request
   * of this Broadcast is placing now: then it waits for that request's outcome.
   */
  #enqueue(request: Request): void {
    const [only, ...others] = request.messages;
    const primary = others.length === 0 && only?.dedupId !== undefined ? this.#placing.get(placingKey(request.stream, only.dedupId)) : undefined;
    if (primary) {
      primary.dependents.push(request);
      return;
    }
    for (const { dedupId } of request.messages) {
      if (dedupId !== undefined && !this.#placing.has(placingKey(request.stream, dedupId))) this.#placing.set(placingKey(request.stream, dedupId), request);
    }
    request.grouped = true;
    this.#groups.submit(request.stream, request);
  }

  /** Ends `request` with its results or its error, and lets the publishes waiting on it go on. */
  #settle(request: Request, outcome: { results: PublishResult[] } | { error: unknown }): void {
    for (const { dedupId } of request.messages) {
      const key = dedupId === undefined ? undefined : placingKey(request.stream, dedupId);
      if (key !== undefined && this.#placing.get(key) === request) this.#placing.delete(key);
    }
    if (request.grouped) {
      request.grouped = false;
      this.#groups.settled(request.stream);
    }
    if ("results" in outcome) request.resolve(outcome.results);
    else request.reject(outcome.error);
    for (const dependent of request.dependents.splice(0)) {
      const dedupId = dependent.messages[0]!.dedupId;
      const placed = "results" in outcome ? request.messages.find((m) => m.dedupId === dedupId)?.result : undefined;
      // Placed: the later publish is its duplicate. Failed: it goes on its own, as a publish after it would.
      if (placed) dependent.resolve([{ seq: placed.seq, duplicate: true, lostSlots: [], queued: false }]);
      else this.#enqueue(dependent);
    }
  }

  /**
   * Writes one group (GroupQueue's `write`): attempts until every request of it is
   * durable, failed, or set aside after a conflict; then notifies the queue of the
   * durable ones and resolves them, without holding up the next group.
   */
  async #writeGroup(stream: string, group: Request[]): Promise<void> {
    let live = group;
    const durable: Request[] = [];
    /** This group's numbers, while no copy of an attempt on them can land (reused by the next attempt). */
    let held: { first: number; count: number } | undefined;
    try {
      if (this.#checkThenAct) await this.#checkFirst(stream, live);
      for (;;) {
        durable.push(...live.filter((r) => r.size === 0));
        live = live.filter((r) => r.size > 0);
        if (live.length === 0) break;
        const placing: Placement[] = live.flatMap((request) => request.open.map((message) => ({ message, request })));
        let numbers = held;
        if (!numbers) {
          const first = await this.log.allocate(stream, placing.length);
          numbers = { first, count: placing.length };
          placing.forEach((p, i) => (p.message.seq = first + i));
        }
        held = undefined;
        const verdict = await this.#attempt(stream, placing, numbers);
        if (verdict.kind === "written") {
          for (const { message, request } of placing) message.result = { seq: message.seq!, duplicate: false, lostSlots: [...request.lost], queued: false };
          continue;
        }
        if (verdict.kind === "unknown") {
          // Its numbers are left to the consumers' hole filling; whether the write landed cannot be told.
          for (const request of live) this.#settle(request, { error: new PublishOutcomeUnknownError(stream, request.messages.flatMap((m) => m.dedupId ?? []), { cause: verdict.error }) });
          live = [];
          break;
        }
        for (const [message, seq] of verdict.found) {
          message.result = { seq, duplicate: true, lostSlots: [...placing.find((p) => p.message === message)!.request.lost], queued: false };
        }
        if (verdict.keep) held = numbers;
        if (!verdict.slotLost && verdict.found.size === 0 && verdict.conflicted.size === 0) {
          // Refused for a reason none of the rules covers (throttling, validation): nothing applied.
          for (const request of live) this.#settle(request, { error: verdict.error });
          live = [];
          break;
        }
        const next: Request[] = [];
        for (const request of live) {
          const conflicted = verdict.conflicted.has(request);
          if (verdict.slotLost) request.lost.push(...placing.filter((p) => p.request === request).map((p) => p.message.seq!));
          if (verdict.slotLost || conflicted) {
            request.failures++;
            request.lastFailure = conflicted ? "dedup-conflict" : "slot-lost";
          }
          if (request.size > 0 && request.failures >= this.#maxAttempts) {
            this.#settle(request, {
              error: request.lastFailure === "dedup-conflict" ? new PublishConflictError(stream, request.keys) : new SlotLostError(stream, request.lost),
            });
          } else if (request.size > 0 && conflicted) {
            // A twin publish was writing its dedup record: give it time to finish, and let the others go on now.
            void sleep(jitter(25 * 2 ** request.failures)).then(() => this.#groups.putBack(stream, request));
          } else {
            next.push(request);
          }
        }
        live = next;
      }
    } catch (err) {
      for (const request of live) this.#settle(request, { error: err });
      live = [];
    }
    if (held) {
      // The last attempt on these numbers did not apply and none ever will: fill them now, so consumers need not wait.
      const { first, count } = held;
      await this.log.fillAll(stream, Array.from({ length: count }, (_, i) => first + i)).catch(() => undefined);
    }
    void this.#deliver(stream, durable);
  }

  /** NEGATIVE CONTROL path (check-then-act): reads each dedup record first, before any write. */
  async #checkFirst(stream: string, requests: readonly Request[]): Promise<void> {
    const messages = requests.flatMap((r) => r.open.filter((m) => m.dedupId !== undefined));
    const found = await Promise.all(messages.map((m) => this.log.dedupSeq(stream, m.dedupId!)));
    messages.forEach((m, i) => found[i] !== undefined && (m.result = { seq: found[i], duplicate: true, lostSlots: [], queued: false }));
  }

  /**
   * One transaction: the placed messages in their slots (with their dedup records), and
   * no-ops in the held numbers no message uses. Idempotent across SDK retries by its
   * ClientRequestToken. See Verdict for what it can come to.
   */
  async #attempt(stream: string, placing: readonly Placement[], held: { first: number; count: number }): Promise<Verdict> {
    const writer = randomUUID();
    const numbers = Array.from({ length: held.count }, (_, i) => held.first + i);
    const used = new Set(placing.map((p) => p.message.seq!));
    const items: TransactWriteItem[] = [];
    /** Per item: the placement whose dedup record it is, or undefined for a slot. */
    const records: (Placement | undefined)[] = [];
    for (const p of placing) {
      const { message: m } = p;
      items.push({ Put: this.log.messagePut(stream, m.seq!, m.payload, writer, m.dedupId, m.lamport) });
      records.push(undefined);
      if (m.dedupId !== undefined) {
        // A failed condition hands back the record: the seq of the message already placed.
        const record = this.#checkThenAct ? this.log.dedupPut(stream, m.dedupId, m.seq!, false) : { ...this.log.dedupPut(stream, m.dedupId, m.seq!), ReturnValuesOnConditionCheckFailure: "ALL_OLD" as const };
        items.push({ Put: record });
        records.push(p);
      }
    }
    for (const seq of numbers) {
      if (used.has(seq)) continue;
      items.push({ Put: this.log.noopPut(stream, seq) });
      records.push(undefined);
    }
    const ours = (slots: readonly Slot[]) => slots.some((slot) => slot.kind === "message" && slot.writer === writer);
    try {
      await this.log.dynamodb.send(new TransactWriteItemsCommand({ TransactItems: items, ClientRequestToken: writer }), { abortSignal: AbortSignal.timeout(GROUP_WRITE_TIMEOUT_MS) });
      return { kind: "written" };
    } catch (err) {
      if (!(err instanceof TransactionCanceledException)) {
        // Unknown outcome: settle it by filling the first message's slot. The fill and our
        // write both need the slot empty, so exactly one of them wins it; the write is one
        // transaction, so it won all its slots or none (and then can never land later).
        const firstSeq = placing[0]!.message.seq!;
        let first: Slot;
        try {
          first = await this.log.fill(stream, firstSeq);
        } catch {
          return { kind: "unknown", error: err }; // DynamoDB unreachable: the outcome stays unknown
        }
        if (ours([first])) return { kind: "written" };
        // It can no longer land: fill the rest so consumers need not wait (they would fill them in time anyway).
        await this.log.fillAll(stream, numbers.filter((seq) => seq !== firstSeq)).catch(() => undefined);
        return { kind: "cancelled", keep: false, slotLost: true, found: new Map(), conflicted: new Set(), error: err };
      }
      const reasons = err.CancellationReasons ?? [];
      let slotLost = false;
      const found = new Map<Message, number>();
      const conflicted = new Set<Request>();
      const unread: Placement[] = [];
      records.forEach((record, i) => {
        const code = reasons[i]?.Code;
        if (!record) {
          // On a slot: filled by a consumer, or a fill in progress on it.
          if (code === "ConditionalCheckFailed" || code === "TransactionConflict") slotLost = true;
          return;
        }
        if (code === "TransactionConflict") conflicted.add(record.request);
        if (code !== "ConditionalCheckFailed") return;
        const seq = Number(reasons[i]?.Item?.["seq"]?.N);
        if (Number.isSafeInteger(seq) && seq > 0) found.set(record.message, seq);
        else unread.push(record);
      });
      const looked = await Promise.all(unread.map((p) => this.log.dedupSeq(stream, p.message.dedupId!).catch(() => undefined)));
      for (const [i, seq] of looked.entries()) {
        if (seq !== undefined) found.set(unread[i]!.message, seq);
      }
      // A record pointing into our own numbers was written by a copy of this very attempt: not a duplicate.
      for (const [message, seq] of found) if (seq >= held.first && seq < held.first + held.count) found.delete(message);
      // A dedup record's condition failed for good: no copy of this attempt can ever apply, and the numbers are still ours.
      if (found.size > 0 && !slotLost) return { kind: "cancelled", keep: true, slotLost, found, conflicted, error: err };
      // Otherwise a copy of this request still in the network might yet land: take the numbers from it, and look.
      let slots: Slot[];
      try {
        slots = await this.log.fillAll(stream, numbers);
      } catch (fillErr) {
        return { kind: "unknown", error: fillErr };
      }
      if (ours(slots)) return { kind: "written" };
      return { kind: "cancelled", keep: false, slotLost, found, conflicted, error: err };
    }
  }

  /** Notifies the queue of a group's durable requests (those that asked for it), then resolves them. */
  async #deliver(stream: string, durable: readonly Request[]): Promise<void> {
    const fresh = durable.filter((r) => r.notify).flatMap((r) => r.messages.flatMap((m) => (m.result && !m.result.duplicate ? [{ result: m.result, payload: m.payload }] : [])));
    await this.#notify(stream, fresh).catch(() => undefined);
    for (const request of durable) this.#settle(request, { results: request.messages.map((m) => m.result!) });
  }

  /** Sends durable messages to the queue: one SendMessageBatch per 10 (and 256 KiB). Never throws. */
  async #notify(stream: string, fresh: { result: PublishResult; payload: string }[]): Promise<void> {
    if (!this.#sqs || !this.#queueUrl || fresh.length === 0) return;
    const bodies = fresh.map(({ result, payload }) => ({ result, body: `{"stream":${JSON.stringify(stream)},"seq":${result.seq},"payload":${payload}}` }));
    const batches: (typeof bodies)[] = [];
    let bytes = 0;
    for (const entry of bodies) {
      const size = Buffer.byteLength(entry.body, "utf8");
      const last = batches.at(-1);
      if (last && last.length < 10 && bytes + size <= SEND_BATCH_BYTES) {
        last.push(entry);
        bytes += size;
      } else {
        batches.push([entry]);
        bytes = size;
      }
    }
    await Promise.all(
      batches.map(async (batch) => {
        try {
          const out = await this.#sqs!.send(
            new SendMessageBatchCommand({
              QueueUrl: this.#queueUrl,
              Entries: batch.map(({ result, body }, j) => ({ Id: String(j), MessageGroupId: stream, MessageDeduplicationId: deduplicationId(stream, result.seq), MessageBody: body })),
            }),
          );
          const failed = new Set((out.Failed ?? []).map((f) => Number(f.Id)));
          batch.forEach(({ result }, j) => (result.queued = !failed.has(j)));
        } catch {
          // The messages are durable in the log; consumers catch up from it.
        }
      }),
    );
  }
}

/** Bytes a message takes in a transaction, as counted against TRANSACTION_BYTES. */
function messageBytes(m: Message): number {
  return Buffer.byteLength(m.payload, "utf8") + MESSAGE_OVERHEAD_BYTES;
}

/** Splits `items` in order into runs of at most MESSAGES_PER_TRANSACTION and TRANSACTION_BYTES. */
function chunks<T>(items: readonly T[], bytesOf: (item: T) => number): T[][] {
  const out: T[][] = [];
  let bytes = 0;
  for (const item of items) {
    const size = bytesOf(item);
    const last = out.at(-1);
    if (last && last.length < MESSAGES_PER_TRANSACTION && bytes + size <= TRANSACTION_BYTES) {
      last.push(item);
      bytes += size;
    } else {
      out.push([item]);
      bytes = size;
    }
  }
  return out;
}

/** The key of the in-process registry of dedup ids being placed. */
function placingKey(stream: string, dedupId: string): string {
  return `${stream}\n${dedupId}`;
}

/** The SQS deduplication id of a stream's message: fixed per (stream, seq), at most 128 characters. */
export function deduplicationId(stream: string, seq: number): string {
  return sha256Hex(`${stream}\n${seq}`);
}

export function validateStream(stream: unknown): asserts stream is string {
  validateName("stream", stream);
  if (stream.length > 128) throw new InvalidArgumentError("stream", `must be at most 128 characters, got ${stream.length}`);
}
