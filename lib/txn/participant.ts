/**
 * The participant protocol, and `defineParticipant`, which makes a participant from three
 * functions.
 *
 * A participant is anything that can hold a change in reserve: `prepare` reserves what
 * the change needs and votes; `commit` applies the reserved change; `abort` releases it.
 * The protocol's promises to the coordinator:
 * - a yes vote is durable before it is sent: after voting yes the participant can always
 *   commit, until it hears the decision, even across its own crashes;
 * - commit and abort are idempotent, safe to repeat and safe to receive out of order (an
 *   abort that overtakes its prepare leaves a tombstone that makes the late prepare vote no);
 * - a participant in doubt can ask the decision log (`TxContext.decisions`).
 *
 * defineParticipant keeps the vote record for you, in the transaction table
 * (`vote#<participant>#<txId>`: preparing | prepared | aborted | committed; two writes per
 * prepare: begun, then the vote), so your three functions
 * only reserve, apply and release. They must be idempotent per transaction id (each may
 * run more than once) and your abort must tolerate having nothing to release.
 * Duplicate runs: the `preparing` record names the one prepare attempt that runs your
 * prepare; a second run of the same id waits for that attempt's vote (until the deadline)
 * instead of reserving again, and a vote that finds the transaction already committed
 * never releases anything.
 * Late requests: your reservation request itself can reach its resource late, after the
 * transaction's abort or commit was applied there. Make it conditional on a marker that
 * your commit and abort write (for example `done.<txId>` on the item, written by commit
 * and by abort before it releases), so that a late reservation reserves nothing.
 */
import { stringValue } from "../internal/attributes.js";
import { ConditionalCheckFailedException, DynamoDBClient, GetItemCommand, PutItemCommand, type AttributeValue } from "@aws-sdk/client-dynamodb";
import { randomUUID } from "node:crypto";
import { sleep } from "../internal/time.js";
import { validateName } from "../internal/validation.js";
import { ProtocolViolationError } from "../errors.js";
import { retryUntilDone } from "./retry.js";
import { DEFAULT_RETAIN_MS } from "./defaults.js";
import type { TransactionRecord, TransactionStatus } from "./log.js";

/** A participant's answer to prepare. */
export type Vote = { readonly vote: "yes" } | { readonly vote: "no"; readonly reason: string };

/** The yes vote: this participant has made the transaction's effects durable and can commit them. */
export const VOTE_YES: Vote = { vote: "yes" };
/** A no vote, with the reason the coordinator records (the transaction aborts). */
export const voteNo = (reason: string): Vote => ({ vote: "no", reason });

/** What a participant is told about the transaction it takes part in. */
export interface TxContext {
  readonly txId: string;
  /** Epoch ms after which the transaction may be aborted: preparing later is pointless. */
  readonly deadline: number;
  /** Ask the decision log about a transaction (this one or another that holds something you need). */
  readonly decisions?: DecisionLookup;
}

/** The part of the decision log a participant may use. */
export interface DecisionLookup {
  /** The transaction table, where participants may keep their own records (in the same account and region). */
  readonly tableName: string;
  /**
   * The decision and whether phase two finished (every participant acknowledged); an
   * abort decided now if the transaction is unknown or past its deadline; else `preparing`.
   */
  settle(txId: string): Promise<{ status: TransactionStatus; done: boolean }>;
  /** The status as logged now (a consistent read, no side effects); undefined if there is no record. */
  status(txId: string): Promise<TransactionStatus | undefined>;
  /** The whole record (branches included; a consistent read); undefined if there is no record. */
  get(txId: string): Promise<TransactionRecord | undefined>;
}

/**
 * A participant in two-phase commit. `id` is recorded in the decision log and must let
 * recovery find the participant again (see Coordinator's `participants` option).
 */
export interface Participant<I = unknown> {
  readonly id: string;
  /**
   * Checks a branch's input before the transaction begins (InvalidArgumentError naming
   * `field`), so input that could never be applied is refused before anything is written.
   */
  validateInput?(input: unknown, field: string): void;
  prepare(tx: TxContext, input: I): Promise<Vote>;
  commit(tx: TxContext, input: I): Promise<void>;
  abort(tx: TxContext, input: I): Promise<void>;
}

/** One participant and what it is asked to do in a transaction. */
export interface Branch<I = unknown> {
  readonly participant: Participant<I>;
  readonly input: I;
}

/** Pairs a participant with its input: `coordinator.run(id, [branch(accounts, ops), branch(outbox, msg)])`. */
export function branch<I>(participant: Participant<I>, input: I): Branch<I> {
  return { participant, input };
}

export interface ParticipantDefinition<I> {
  /** A stable, unique name: it is written to the decision log and names the vote records. */
  readonly id: string;
  /** Where vote records live: the transaction table (or any table with string key `pk`). */
  readonly tableName: string;
  readonly dynamodb?: DynamoDBClient;
  /** How long vote records (and abort tombstones) are kept. @default DEFAULT_RETAIN_MS (7 days) */
  readonly retainMs?: number;
  /** Checks a branch's input before the transaction begins (throw InvalidArgumentError naming `field`). */
  validateInput?(input: unknown, field: string): void;
  /**
   * Reserve what the change needs; return false (or a reason string) to vote no. Runs at
   * least once. Its requests may reach your resource after this transaction's commit or
   * abort: refuse to reserve once your commit or abort has left its marker (see above).
   */
  prepare(tx: TxContext, input: I): Promise<boolean | string>;
  /** Apply the reserved change. Runs at least once, only after a durable yes vote. */
  commit(tx: TxContext, input: I): Promise<void>;
  /** Release the reservation, if any. Runs at least once; may run when nothing was reserved. */
  abort(tx: TxContext, input: I): Promise<void>;
}

/** Makes a participant from three functions; the durable vote and its rules are handled here. */
export function defineParticipant<I>(definition: ParticipantDefinition<I>): Participant<I> {
  validateName("id", definition.id);
  return new DefinedParticipant(definition);
}


class DefinedParticipant<I> implements Participant<I> {
  readonly id: string;
  readonly validateInput?: (input: unknown, field: string) => void;
  readonly #dynamodb: DynamoDBClient;
  readonly #retainMs: number;

  constructor(private readonly definition: ParticipantDefinition<I>) {
    this.id = definition.id;
    if (definition.validateInput) this.validateInput = definition.validateInput.bind(definition);
    this.#dynamodb = definition.dynamodb ?? new DynamoDBClient({});
    this.#retainMs = definition.retainMs ?? DEFAULT_RETAIN_MS;
  }

  #key(txId: string) {
    return { pk: stringValue(`vote#${this.id}#${txId}`) };
  }

  #ttl() {
    return { N: String(Math.ceil((Date.now() + this.#retainMs) / 1000)) };
  }

  async prepare(tx: TxContext, input: I): Promise<Vote> {
    if (Date.now() > tx.deadline) return voteNo(`${this.id}: prepare arrived after the transaction's deadline`);
    // 1. Claim the prepare (this attempt's nonce), unless a vote, an abort or another claim is on record.
    const attempt = randomUUID();
    const found = await this.#claim(tx.txId, attempt);
    if (found !== undefined) return this.#answerFound(tx, found);
    // 2. Reserve; 3. record the vote, unless an abort overtook us meanwhile.
    try {
      const answer = await this.definition.prepare(tx, input);
      if (answer !== true) {
        await this.#put(tx.txId, "aborted", "#state = :preparing");
        return voteNo(typeof answer === "string" ? answer : `${this.id} voted no`);
      }
      const after = await this.#put(tx.txId, "prepared", "(#state = :preparing AND #attempt = :attempt) OR #state = :prepared", attempt);
      if (after === undefined || after === "prepared") return VOTE_YES;
      // Committed already: another run's vote carried it; our reservation is the same one (idempotent per id), nothing to release.
      if (after === "committed") return voteNo(`${this.id}: the transaction already committed here (a stale prepare)`);
    } catch (err) {
      // The reservation may have landed. If the abort already came (and went), nobody else
      // will release it: do it here. Otherwise the abort that follows our failure will.
      await retryUntilDone(async () => {
        if ((await this.#state(tx.txId)) === "aborted") await this.definition.abort(tx, input);
      }).catch(() => undefined);
      throw err;
    }
    // The abort overtook us: release what we just reserved (nobody else will).
    await retryUntilDone(() => this.definition.abort(tx, input));
    return voteNo(`${this.id}: the transaction was aborted here while it prepared`);
  }

  /**
   * Creates the vote record as `preparing`, owned by `attempt`. Returns undefined if it
   * did (or our own earlier try did), else the state found. Only one attempt ever runs
   * the user's prepare: a second run of the same id waits for the first one's vote.
   */
  #claim(txId: string, attempt: string): Promise<string | undefined> {
    return this.#put(txId, "preparing", "attribute_not_exists(pk) OR (#state = :preparing AND #attempt = :attempt)", attempt);
  }

  /** A prepare that found a record: the vote on record, or (another attempt still preparing) wait for it until the deadline. */
  async #answerFound(tx: TxContext, found: string): Promise<Vote> {
    for (let state: string | undefined = found, backoff = 20; ; backoff = Math.min(backoff * 2, 250)) {
      if (state === "prepared") return VOTE_YES; // a duplicate prepare: the yes on record stands
      if (state === "aborted") return voteNo(`${this.id}: the transaction was already aborted here`);
      if (state === "committed") return voteNo(`${this.id}: the transaction already committed here (a stale prepare)`);
      if (Date.now() > tx.deadline) return voteNo(`${this.id}: another prepare of this transaction is still running here at the deadline`);
      await sleep(backoff);
      state = await this.#state(tx.txId);
    }
  }

  async #state(txId: string): Promise<string | undefined> {
    const { Item } = await this.#dynamodb.send(new GetItemCommand({ TableName: this.definition.tableName, Key: this.#key(txId), ConsistentRead: true }));
    return Item?.["state"]?.S;
  }

  /**
   * Writes the vote record's state under `condition` (in which `#state` is the state, a
   * placeholder `:x` stands for the state x, and `#attempt = :attempt` names the prepare
   * attempt that owns a `preparing` record). Returns undefined, or the state found if the
   * condition failed.
   */
  async #put(txId: string, state: string, condition: string, attempt?: string): Promise<string | undefined> {
    const placeholders = [...new Set(condition.match(/:\w+/g) ?? [])].filter((p) => p !== ":attempt");
    try {
      await this.#dynamodb.send(
        new PutItemCommand({
          TableName: this.definition.tableName,
          Item: { ...this.#key(txId), state: stringValue(state), ttl: this.#ttl(), ...(attempt ? { attempt: stringValue(attempt) } : {}) },
          ConditionExpression: condition,
          ExpressionAttributeNames: { "#state": "state", ...(condition.includes("#attempt") ? { "#attempt": "attempt" } : {}) },
          ExpressionAttributeValues: { ...Object.fromEntries(placeholders.map((p) => [p, stringValue(p.slice(1))])), ...(condition.includes(":attempt") ? { ":attempt": stringValue(attempt!) } : {}) },
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
      return undefined;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return err.Item?.["state"]?.S ?? "(missing)";
      throw err;
    }
  }

  async commit(tx: TxContext, input: I): Promise<void> {
    const state = await this.#state(tx.txId);
    if (state === "committed") return;
    if (state !== "prepared") throw new ProtocolViolationError(tx.txId, this.id, state === "aborted" ? "commit after abort" : "commit without a yes vote on record");
    await this.definition.commit(tx, input);
    if ((await this.#put(tx.txId, "committed", "#state IN (:prepared, :committed)")) !== undefined) throw new ProtocolViolationError(tx.txId, this.id, "aborted while committing");
  }

  async abort(tx: TxContext, input: I): Promise<void> {
    await this.#tombstone(tx.txId);
    await this.definition.abort(tx, input);
  }

  /** Records the abort (unless committed, which would be a violation). */
  async #tombstone(txId: string): Promise<void> {
    if ((await this.#put(txId, "aborted", "attribute_not_exists(pk) OR #state <> :committed")) !== undefined) throw new ProtocolViolationError(txId, this.id, "abort after commit");
  }
}
