/**
 * The coordinator service's wire format: the requests the transaction Lambda accepts (one
 * function, dispatched on `action`), their JSON schema, and the responses.
 *
 * Over the service, participants are named by id and must be built-in ones
 * (`dynamodb:<table>`, `outbox:<queue url>`, `lambda:<function>`), because the function
 * has to be able to reach them, in phase two and in recovery, from the id alone.
 * Unknown fields are refused, not ignored.
 */
import type { TransactionRecord } from "../txn/log.js";
import type { RecoveryReport } from "../txn/recovery.js";
import type { TransactionResult } from "../txn/result.js";
import { action, integer, text } from "../internal/schema.js";

export type TxnRequest =
  | { action: "run"; txId: string; branches: { participant: string; input: unknown }[]; timeoutMs?: number }
  | { action: "status"; txId: string }
  | { action: "list"; all?: boolean; limit?: number; prefix?: string }
  | { action: "recover"; graceMs?: number; limit?: number; prefix?: string }
  | { action: "override"; txId: string; override: "abort" | "forget"; operator: string; reason: string };

export interface TxnResponses {
  run: TransactionResult;
  status: TransactionRecord | null;
  list: { transactions: TransactionRecord[] };
  recover: RecoveryReport;
  override: TransactionRecord;
}

const txId = text(512);

/** JSON schema (ajv with `discriminator: true`) of a TxnRequest. */
export const txnRequestSchema = {
  type: "object",
  properties: { action: { type: "string" } },
  required: ["action"],
  discriminator: { propertyName: "action" },
  oneOf: [
    action(
      "run",
      {
        txId,
        branches: {
          type: "array",
          minItems: 1,
          maxItems: 32,
          items: {
            type: "object",
            properties: { participant: { type: "string", pattern: "^(dynamodb|outbox|lambda):.+$", maxLength: 1024 }, input: {} },
            required: ["participant", "input"],
            additionalProperties: false,
          },
        },
        timeoutMs: integer(1, 60_000),
      },
      ["txId", "branches"],
    ),
    action("status", { txId }, ["txId"]),
    action("list", { all: { type: "boolean" }, limit: integer(1, 1000), prefix: txId }, []),
    action("recover", { graceMs: integer(0), limit: integer(1, 10_000), prefix: txId }, []),
    action("override", { txId, override: { enum: ["abort", "forget"] }, operator: text(256), reason: text(2048) }, ["txId", "override", "operator", "reason"]),
  ],
} as const;
