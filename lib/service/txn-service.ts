/**
 * The coordinator service: what the transaction Lambda does with a validated TxnRequest,
 * using the same Coordinator as the library (one implementation of the protocol).
 * (Guarantees and assumptions: see the TSDoc of TxnService below.)
 */
import { Coordinator, type CoordinatorOptions } from "../txn/coordinator.js";
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

  constructor(options: CoordinatorOptions) {
    this.coordinator = new Coordinator(options);
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
          req.branches.map((b) => ({ participant: c.participant(b.participant, req.txId), input: b.input })),
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
