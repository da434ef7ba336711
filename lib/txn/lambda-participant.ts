/**
 * Participants behind Lambda functions: `LambdaParticipant` calls one (the coordinator's
 * side) and `participantHandler` serves one (your function's side).
 *
 * The wire format is one JSON request per protocol message,
 * `{ protocol: "fencepost.txn/1", action: "prepare" | "commit" | "abort", txId, deadline, input }`,
 * answered with a Vote (`{ vote: "yes" }` or `{ vote: "no", reason }`) for prepare and
 * `{ ok: true }` for commit and abort. A function error on prepare counts as a no vote; on
 * commit or abort it is retried until acknowledged (the function must be idempotent:
 * `defineParticipant` inside it makes it so).
 */
import { LambdaClient } from "@aws-sdk/client-lambda";
import { validateName } from "../internal/validation.js";
import { FencepostError, InvalidArgumentError, wireError } from "../errors.js";
import { invokeJson } from "../internal/lambda.js";
import type { Participant, TxContext, Vote } from "./participant.js";

export const PARTICIPANT_PROTOCOL = "fencepost.txn/1";

export interface ParticipantRequest {
  readonly protocol: typeof PARTICIPANT_PROTOCOL;
  readonly action: "prepare" | "commit" | "abort";
  readonly txId: string;
  readonly deadline: number;
  readonly input: unknown;
}

/**
 * The coordinator's side of a participant behind a Lambda function: each protocol message
 * is one direct invoke of `functionName` (whose handler is `participantHandler`). Its id,
 * `lambda:<functionName>`, lets recovery re-create it from the log.
 */
export class LambdaParticipant implements Participant {
  readonly id: string;
  readonly lambda: LambdaClient;

  constructor(
    readonly functionName: string,
    options: { lambda?: LambdaClient } = {},
  ) {
    validateName("functionName", functionName);
    this.id = `lambda:${functionName}`;
    this.lambda = options.lambda ?? new LambdaClient({});
  }

  #call(action: ParticipantRequest["action"], tx: TxContext, input: unknown): Promise<unknown> {
    const request: ParticipantRequest = { protocol: PARTICIPANT_PROTOCOL, action, txId: tx.txId, deadline: tx.deadline, input };
    return invokeJson(this.lambda, this.functionName, request);
  }

  async prepare(tx: TxContext, input: unknown): Promise<Vote> {
    const answer = (await this.#call("prepare", tx, input)) as Partial<Vote> | null;
    if (answer?.vote === "yes") return { vote: "yes" };
    return { vote: "no", reason: (answer as { reason?: string } | null)?.reason ?? `${this.id} voted no` };
  }

  async commit(tx: TxContext, input: unknown): Promise<void> {
    await this.#call("commit", tx, input);
  }

  async abort(tx: TxContext, input: unknown): Promise<void> {
    await this.#call("abort", tx, input);
  }
}

/** Checks a request to a participant function; throws InvalidArgumentError naming the field. */
export function parseParticipantRequest(event: unknown): ParticipantRequest {
  const e = (event ?? {}) as Partial<ParticipantRequest>;
  if (e.protocol !== PARTICIPANT_PROTOCOL) throw new InvalidArgumentError("protocol", `must be '${PARTICIPANT_PROTOCOL}'`);
  if (!["prepare", "commit", "abort"].includes(String(e.action))) throw new InvalidArgumentError("action", "must be prepare, commit or abort");
  validateName("txId", e.txId);
  if (typeof e.deadline !== "number" || !Number.isFinite(e.deadline)) throw new InvalidArgumentError("deadline", "must be a number (epoch ms)");
  return e as ParticipantRequest;
}

/**
 * A Lambda handler serving `participant` over the protocol: wrap a `defineParticipant`
 * and export it as your function's handler (add middy middleware around it if you like).
 */
export function participantHandler<I>(participant: Participant<I>): (event: unknown) => Promise<Vote | { ok: true }> {
  return async (event) => {
    try {
      const request = parseParticipantRequest(event);
      const tx: TxContext = { txId: request.txId, deadline: request.deadline };
      if (request.action === "prepare") return await participant.prepare(tx, request.input as I);
      await participant[request.action](tx, request.input as I);
      return { ok: true };
    } catch (err) {
      // Typed errors travel with their fields, so the coordinator rebuilds the same class.
      throw err instanceof FencepostError ? wireError(err) : err;
    }
  };
}
