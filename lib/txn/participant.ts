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
 */
import { ConditionalCheckFailedException, DynamoDBClient, GetItemCommand, PutItemCommand, type AttributeValue } from "@aws-sdk/client-dynamodb";
import { validateName } from "../locks/client.js";
import { ProtocolViolationError } from "./errors.js";
import { persistently } from "./retry.js";
import { DEFAULT_RETAIN_MS, type TransactionStatus } from "./log.js";

/** A participant's answer to prepare. */
export type Vote = { readonly vote: "yes" } | { readonly vote: "no"; readonly reason: string };

export const YES: Vote = { vote: "yes" };
export const no = (reason: string): Vote => ({ vote: "no", reason });

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
}

/**
 * A participant in two-phase commit. `id` is recorded in the decision log and must let
 * recovery find the participant again (see Coordinator's `participants` option).
 */
export interface Participant<I = unknown> {
  readonly id: string;
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
  /** How long vote records (and abort tombstones) are kept. Default 7 days. */
  readonly retainMs?: number;
  /** Reserve what the change needs; return false (or a reason string) to vote no. Runs at least once. */
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

const s = (v: string): AttributeValue => ({ S: v });

class DefinedParticipant<I> implements Participant<I> {
  readonly id: string;
  readonly #dynamodb: DynamoDBClient;
  readonly #retainMs: number;

  constructor(private readonly definition: ParticipantDefinition<I>) {
    this.id = definition.id;
    this.#dynamodb = definition.dynamodb ?? new DynamoDBClient({});
    this.#retainMs = definition.retainMs ?? DEFAULT_RETAIN_MS;
  }

  #key(txId: string) {
    return { pk: s(`vote#${this.id}#${txId}`) };
  }

  #ttl() {
    return { N: String(Math.ceil((Date.now() + this.#retainMs) / 1000)) };
  }

  async prepare(tx: TxContext, input: I): Promise<Vote> {
    if (Date.now() > tx.deadline) return no(`${this.id}: prepare arrived after the transaction's deadline`);
    // 1. Mark the prepare as begun, unless a vote or an abort is already on record.
    const found = await this.#put(tx.txId, "preparing", "attribute_not_exists(pk) OR #state = :preparing");
    if (found === "prepared") return YES; // a duplicate prepare: the yes on record stands
    if (found === "aborted") return no(`${this.id}: the transaction was already aborted here`);
    if (found === "committed") return no(`${this.id}: the transaction already committed here (a stale prepare)`);
    // 2. Reserve; 3. record the vote, unless an abort overtook us meanwhile.
    try {
      const answer = await this.definition.prepare(tx, input);
      if (answer !== true) {
        await this.#put(tx.txId, "aborted", "#state = :preparing");
        return no(typeof answer === "string" ? answer : `${this.id} voted no`);
      }
      if ((await this.#put(tx.txId, "prepared", "#state IN (:preparing, :prepared)")) === undefined) return YES;
    } catch (err) {
      // The reservation may have landed. If the abort already came (and went), nobody else
      // will release it: do it here. Otherwise the abort that follows our failure will.
      await persistently(async () => {
        if ((await this.#state(tx.txId)) === "aborted") await this.definition.abort(tx, input);
      }).catch(() => undefined);
      throw err;
    }
    // The abort overtook us: release what we just reserved (nobody else will).
    await persistently(() => this.definition.abort(tx, input));
    return no(`${this.id}: the transaction was aborted here while it prepared`);
  }

  async #state(txId: string): Promise<string | undefined> {
    const { Item } = await this.#dynamodb.send(new GetItemCommand({ TableName: this.definition.tableName, Key: this.#key(txId), ConsistentRead: true }));
    return Item?.["state"]?.S;
  }

  /**
   * Writes the vote record's state under `condition` (in which `#state` is the state and
   * a placeholder `:x` stands for the state x). Returns undefined, or the state found if
   * the condition failed.
   */
  async #put(txId: string, state: string, condition: string): Promise<string | undefined> {
    const placeholders = [...new Set(condition.match(/:\w+/g) ?? [])];
    try {
      await this.#dynamodb.send(
        new PutItemCommand({
          TableName: this.definition.tableName,
          Item: { ...this.#key(txId), state: s(state), ttl: this.#ttl() },
          ConditionExpression: condition,
          ExpressionAttributeNames: { "#state": "state" },
          ExpressionAttributeValues: Object.fromEntries(placeholders.map((p) => [p, s(p.slice(1))])),
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
