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
import { GetQueueAttributesCommand, SendMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { sha256Hex } from "../internal/ids.js";
import { targetMissing } from "../internal/outcomes.js";
import { validateName } from "../internal/validation.js";
import { InvalidArgumentError } from "../errors.js";
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

/**
 * One spelling per queue, so the participant id (written to the decision log and used to
 * find the participant again) does not depend on how the URL was typed: lower-case scheme
 * and host, no default port, no trailing slash, and SQS's legacy hosts
 * (`queue.amazonaws.com`, `<region>.queue.amazonaws.com`) as `sqs.<region>.amazonaws.com`.
 * The path (account and queue name) is case-sensitive and kept as it is.
 */
export function canonicalQueueUrl(queueUrl: string): string {
  let url: URL;
  try {
    url = new URL(queueUrl.trim());
  } catch {
    throw new InvalidArgumentError("queueUrl", `'${queueUrl}' is not a URL; pass the queue URL that CreateQueue or GetQueueUrl returns`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new InvalidArgumentError("queueUrl", `must be an http(s) URL, got '${queueUrl}'`);
  let host = url.hostname.toLowerCase();
  if (host === "queue.amazonaws.com") host = "sqs.us-east-1.amazonaws.com";
  const legacy = /^([a-z0-9-]+)\.queue\.amazonaws\.com$/.exec(host);
  if (legacy) host = `sqs.${legacy[1]}.amazonaws.com`;
  const port = url.port && url.port !== (url.protocol === "https:" ? "443" : "80") ? `:${url.port}` : "";
  const path = url.pathname.replace(/\/+$/, "");
  return `${url.protocol}//${host}${port}${path}`;
}

/** An outbox branch's input: `{ body, groupId? }`, the body JSON of at most MAX_OUTBOX_BYTES. */
export function validateOutboxMessage(input: unknown, field: string): asserts input is OutboxMessage {
  if (typeof input !== "object" || input === null || Array.isArray(input) || !("body" in input)) {
    throw new InvalidArgumentError(field, `must be an outbox message { body, groupId? }, got ${JSON.stringify(input) ?? typeof input}`);
  }
  const { body, groupId } = input as { body: unknown; groupId?: unknown };
  const text = JSON.stringify(body);
  if (text === undefined) throw new InvalidArgumentError(`${field}.body`, "must be JSON (not undefined or a function)");
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > MAX_OUTBOX_BYTES) throw new InvalidArgumentError(`${field}.body`, `is ${bytes} bytes as JSON; at most ${MAX_OUTBOX_BYTES} fit a message`);
  if (groupId !== undefined && !(typeof groupId === "string" && /^[\x21-\x7e]{1,128}$/.test(groupId))) {
    throw new InvalidArgumentError(`${field}.groupId`, "must be 1 to 128 printable ASCII characters");
  }
}

/** The deduplication id of a transaction's outbox message: the same on every resend. */
export function outboxDeduplicationId(txId: string, participant: string): string {
  return sha256Hex(`${participant}\n${txId}`);
}

export function outboxParticipant(options: OutboxParticipantOptions): Participant<OutboxMessage> {
  validateName("queueUrl", options.queueUrl);
  const queueUrl = canonicalQueueUrl(options.queueUrl);
  const sqs = options.sqs ?? new SQSClient({});
  const fifo = queueUrl.endsWith(".fifo");
  const id = `outbox:${queueUrl}`;
  return defineParticipant<OutboxMessage>({
    id,
    tableName: options.tableName,
    ...(options.dynamodb ? { dynamodb: options.dynamodb } : {}),
    validateInput: validateOutboxMessage,
    async prepare(_tx, message) {
      const bytes = Buffer.byteLength(JSON.stringify(message?.body ?? null), "utf8");
      if (bytes > MAX_OUTBOX_BYTES) return `outbox message is ${bytes} bytes; at most ${MAX_OUTBOX_BYTES} fit`;
      // The queue must exist (and be reachable) before the transaction may count on sending to it.
      try {
        await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["QueueArn"] }));
      } catch (err) {
        if (targetMissing(err)) return `${id}: the queue does not exist`;
        throw err;
      }
      return true;
    },
    async commit(tx, message) {
      await sqs.send(
        new SendMessageCommand({
          QueueUrl: queueUrl,
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
