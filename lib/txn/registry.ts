/**
 * ParticipantRegistry: finds the participant behind an id written in the decision log, so
 * that whoever finishes a transaction (phase two of a later run, recovery, the coordinator
 * service) can reach its branches again.
 *
 * Guarantees: an id resolves to the participant registered under it (given to a
 * coordinator, or seen in one of its runs), else to a built-in participant made from the
 * id itself (`dynamodb:<table>[#<label>]`, `outbox:<queue url>`, `lambda:<function>`) on
 * this registry's clients; once made, the same object is returned for that id. Anything
 * else is UnknownParticipantError.
 * Assumes: ids are stable and unique (participant.ts); a built-in participant made here
 * needs no options beyond its id and the clients (as recovery re-creates it).
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { LambdaClient } from "@aws-sdk/client-lambda";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { DynamoDbParticipant } from "./dynamodb.js";
import { UnknownParticipantError } from "../errors.js";
import { LambdaParticipant } from "./lambda-participant.js";
import { outboxParticipant } from "./outbox.js";
import type { Participant } from "./participant.js";

export interface ParticipantRegistryOptions {
  /** The transaction table: where built-in outbox participants keep their vote records. */
  readonly tableName: string;
  /** The client of built-in DynamoDB participants and of outbox vote records. */
  readonly dynamodb: DynamoDBClient;
  /** The client of built-in outbox participants. */
  readonly sqs: SQSClient;
  /** The client of built-in Lambda participants. */
  readonly lambda: LambdaClient;
  /** Custom participants, known by their ids from the start. */
  readonly participants?: readonly Participant[];
}

/** The participants a coordinator can reach, by the id the decision log records. */
export class ParticipantRegistry {
  readonly #options: ParticipantRegistryOptions;
  readonly #known = new Map<string, Participant>();

  constructor(options: ParticipantRegistryOptions) {
    this.#options = options;
    for (const p of options.participants ?? []) this.register(p);
  }

  /** Makes `participant` the one its id resolves to (a branch of a run registers its participant). */
  register(participant: Participant): void {
    this.#known.set(participant.id, participant);
  }

  /** The participant with this id: registered, or a built-in one made from its id. `txId` names the transaction in the error. */
  resolve(id: string, txId = "(unknown)"): Participant {
    const known = this.#known.get(id);
    if (known) return known;
    const made = this.#builtIn(id, txId);
    this.#known.set(id, made);
    return made;
  }

  #builtIn(id: string, txId: string): Participant {
    const { dynamodb, sqs, lambda, tableName } = this.#options;
    const [, kind, rest] = /^(dynamodb|outbox|lambda):(.+)$/.exec(id) ?? [];
    if (kind === "dynamodb") {
      const cut = rest!.indexOf("#");
      const [participantTable, label] = cut < 0 ? [rest!, undefined] : [rest!.slice(0, cut), rest!.slice(cut + 1)];
      return new DynamoDbParticipant({ tableName: participantTable, dynamodb, ...(label ? { label } : {}) });
    }
    if (kind === "outbox") return outboxParticipant({ queueUrl: rest!, sqs, tableName, dynamodb });
    if (kind === "lambda") return new LambdaParticipant(rest!, { lambda });
    throw new UnknownParticipantError(id, txId);
  }
}
