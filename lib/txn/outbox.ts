/**
 * The SQS outbox participant: a message that is sent if and only if the transaction
 * commits (the transactional outbox, with the decision log as the outbox table).
 *
 * prepare checks the message and votes yes (its durable vote record, kept by
 * defineParticipant, is the reservation: the message itself is in the decision log);
 * commit sends it; abort sends nothing. Exactly once: commit is skipped once recorded as
 * done, and a resend after a crash between sending and recording carries the same
 * deduplication id, which a FIFO queue drops (within SQS's 5-minute window; recovery runs
 * every minute). On a standard queue delivery is at least once: every message carries
 * the `fencepost-tx` attribute for consumers to deduplicate by.
 */
import { SendMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { createHash } from "node:crypto";
import { validateName } from "../locks/client.js";
import { defineParticipant, type Participant } from "./participant.js";

/** Largest message body, as UTF-8 JSON. */
export const MAX_OUTBOX_BYTES = 200 * 1024;

export interface OutboxMessage {
  /** The message body: JSON, sent as its JSON text. */
  readonly body: unknown;
  /** FIFO queues: the message group. Default `fencepost`. */
  readonly groupId?: string;
}

export interface OutboxParticipantOptions {
  readonly queueUrl: string;
  readonly sqs?: SQSClient;
  /** Where vote records live: the transaction table. */
  readonly tableName: string;
  readonly dynamodb?: DynamoDBClient;
}

/** The deduplication id of a transaction's outbox message: the same on every resend. */
export function outboxDeduplicationId(txId: string, participant: string): string {
  return createHash("sha256").update(`${participant}\n${txId}`).digest("hex");
}

export function outboxParticipant(options: OutboxParticipantOptions): Participant<OutboxMessage> {
  validateName("queueUrl", options.queueUrl);
  const sqs = options.sqs ?? new SQSClient({});
  const fifo = options.queueUrl.endsWith(".fifo");
  const id = `outbox:${options.queueUrl}`;
  return defineParticipant<OutboxMessage>({
    id,
    tableName: options.tableName,
    ...(options.dynamodb ? { dynamodb: options.dynamodb } : {}),
    async prepare(_tx, message) {
      const bytes = Buffer.byteLength(JSON.stringify(message?.body ?? null), "utf8");
      return bytes <= MAX_OUTBOX_BYTES ? true : `outbox message is ${bytes} bytes; at most ${MAX_OUTBOX_BYTES} fit`;
    },
    async commit(tx, message) {
      await sqs.send(
        new SendMessageCommand({
          QueueUrl: options.queueUrl,
          MessageBody: JSON.stringify(message.body ?? null),
          MessageAttributes: { "fencepost-tx": { DataType: "String", StringValue: tx.txId } },
          ...(fifo ? { MessageGroupId: message.groupId ?? "fencepost", MessageDeduplicationId: outboxDeduplicationId(tx.txId, id) } : {}),
        }),
      );
    },
    async abort() {
      // Nothing was sent; nothing to take back.
    },
  });
}
