/**
 * Broadcast reports what happened: a publish whose outcome is unknown fills its own
 * numbers at once (no hole left for consumers to time out on) and publishes again; the
 * same dedupId twice in one batch is one message; a batch that stops part-way says which
 * messages are durable. Against DynamoDB Local, with faults in the producer's SDK client.
 */
import { expect, it } from "vitest";
import { injectFaults } from "../../lib/check/middleware.js";
import { Broadcast, PublishIncompleteError } from "../../lib/index.js";
import { StreamLog } from "../../lib/ordering/log.js";
import { dynamoDbClient, logTable } from "../support/cloud.js";
import { uniqueName } from "../support/locks.js";

it("fills its own number at once when a publish's outcome is unknown, then publishes at the next", async () => {
  const dynamodb = dynamoDbClient();
  let losing = true;
  // Every attempt of the first write is lost; the fill that follows goes through.
  injectFaults(dynamodb, (r) => {
    if (r.commandName === "PutItemCommand") losing = false;
    return losing && r.commandName === "TransactWriteItemsCommand" ? { kind: "lose-request" } : undefined;
  });
  const stream = uniqueName("stream");
  const result = await new Broadcast({ tableName: logTable(), dynamodb }).publish(stream, "m");
  expect(result).toMatchObject({ seq: 2, lostSlots: [1] });
  const log = new StreamLog(dynamoDbClient(), logTable());
  expect(await log.read(stream, 1)).toEqual({ seq: 1, kind: "noop" });
  expect(await log.read(stream, 2)).toMatchObject({ kind: "message", payload: JSON.stringify("m") });
});

it("publishes the same dedupId twice in one batch as one message, with no holes", async () => {
  const stream = uniqueName("stream");
  const b = new Broadcast({ tableName: logTable(), dynamodb: dynamoDbClient() });
  const results = await b.publishBatch(stream, [
    { payload: "x", dedupId: "same" },
    { payload: "y" },
    { payload: "x again", dedupId: "same" },
  ]);
  expect(results.map((r) => [r.seq, r.duplicate])).toEqual([
    [1, false],
    [2, false],
    [1, true],
  ]);
  const log = new StreamLog(dynamoDbClient(), logTable());
  expect(await log.head(stream)).toBe(2);
});

it("says which messages of a batch are durable when a later chunk fails", async () => {
  const dynamodb = dynamoDbClient({ maxAttempts: 1 });
  let writes = 0;
  injectFaults(dynamodb, (r) => (r.commandName === "TransactWriteItemsCommand" && ++writes >= 2 ? { kind: "throttle" } : undefined));
  const stream = uniqueName("stream");
  const messages = Array.from({ length: 30 }, (_, i) => ({ payload: i, dedupId: `d${i}` }));
  const err = await new Broadcast({ tableName: logTable(), dynamodb }).publishBatch(stream, messages).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(PublishIncompleteError);
  const published = (err as PublishIncompleteError).published;
  expect(published.slice(0, 25).map((r) => r?.seq)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
  expect(published.slice(25).every((r) => r === undefined)).toBe(true);
});
