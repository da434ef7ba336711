/**
 * The coordinator service: what the transaction Lambda does with a validated TxnRequest,
 * using the same Coordinator as the library (one implementation of the protocol).
 * (Guarantees and assumptions: see the TSDoc of TxnService below.)
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { SQSClient } from "@aws-sdk/client-sqs";
import { Coordinator, type CoordinatorOptions } from "../txn/coordinator.js";
import { ParticipantRegistry } from "../txn/registry.js";
import type { TxnRequest, TxnResponses } from "./txn-api.js";

/**
 * The coordinator service: what the transaction Lambda does with a validated TxnRequest,
 * using the same Coordinator as the library (one implementation of the protocol).
 *
 * Guarantees: stateless between invocations; `run` is idempotent by transaction id, so a
 * caller whose invoke failed simply invokes again with the same id.
 * Assumes: requests were validated against txnRequestSchema; the function's role may
 * reach the participants named (Fencepost construct `addParticipant`).
 */
export class TxnService {
  readonly coordinator: Coordinator;
  /** Resolves the participant ids of `run` requests, on the coordinator's clients. */
  readonly #participants: ParticipantRegistry;

  constructor(options: CoordinatorOptions) {
    const clients = { dynamodb: options.dynamodb ?? new DynamoDBClient({}), sqs: options.sqs ?? new SQSClient({}), lambda: options.lambda ?? new LambdaClient({}) };
    this.coordinator = new Coordinator({ ...options, ...clients });
    this.#participants = new ParticipantRegistry({ tableName: options.tableName, ...clients, participants: options.participants });
  }

  async handle<R extends TxnRequest>(request: R): Promise<TxnResponses[R["action"]]> {
    return (await this.#dispatch(request)) as TxnResponses[R["action"]];
  }

  async #dispatch(req: TxnRequest): Promise<TxnResponses[TxnRequest["action"]]> {
    const c = this.coordinator;
    switch (req.action) {
      case "run":
        return c.run(
          req.txId,
          req.branches.map((b) => ({ participant: this.#participants.resolve(b.participant, req.txId), input: b.input })),
          req.timeoutMs ? { timeoutMs: req.timeoutMs } : {},
        );
      case "status":
        return (await c.status(req.txId)) ?? null;
      case "list":
        return { transactions: await c.listInDoubt({ ...(req.all ? { staleAt: Infinity } : {}), ...(req.limit ? { limit: req.limit } : {}), ...(req.prefix ? { prefix: req.prefix } : {}) }) };
      case "recover":
        return c.recover({ ...(req.graceMs !== undefined ? { graceMs: req.graceMs } : {}), ...(req.limit ? { limit: req.limit } : {}), ...(req.prefix ? { prefix: req.prefix } : {}) });
      case "override":
        return c.override(req.txId, { action: req.override, operator: req.operator, reason: req.reason });
    }
  }
}
