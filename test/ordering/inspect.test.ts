/**
 * The broadcast log's read-only views (lib/ordering/inspect.ts), against DynamoDB Local:
 * streams with their heads and each group's cursor and lag, holes left by an allocation
 * nobody wrote, and the newest slots first; bad arguments are refused with
 * InvalidArgumentError before any request.
 */
import { describe, expect, it } from "vitest";
import { Broadcast, ConsumerGroup, InvalidArgumentError } from "../../lib/index.js";
import { StreamLog } from "../../lib/advanced.js";
import { listStreams, streamHoles, streamTail } from "../../lib/ordering/inspect.js";
import { dynamoDbClient, logTable } from "../support/cloud.js";
import { uniqueName } from "../support/locks.js";

describe("stream inspection", () => {
  it("shows heads, cursors with lag, holes and the tail", async () => {
    const db = dynamoDbClient();
    const log = new StreamLog(db, logTable());
    const stream = uniqueName("inspect-stream");
    const broadcast = new Broadcast({ tableName: logTable(), dynamodb: db });
    for (const n of [1, 2, 3]) await broadcast.publish(stream, { n });
    // A producer that took number 4 and died before writing it.
    expect(await log.allocate(stream, 1)).toBe(4);
    await broadcast.publish(stream, { n: 5 });
    await new ConsumerGroup({ tableName: logTable(), dynamodb: db, stream, group: "billing", handler: () => undefined }).catchUp({ until: 2 });

    const { streams } = await listStreams(log);
    expect(streams.find((s) => s.stream === stream)).toEqual({ stream, head: 5, groups: [{ group: "billing", position: 2, lag: 3 }] });
    expect(await streamHoles(log, stream, 2, 5)).toEqual({ after: 2, upTo: 5, holes: [4] });
    const tail = await streamTail(log, stream, 2);
    expect(tail.map((s) => s.seq)).toEqual([5, 3]);
    expect(tail[0]).toMatchObject({ kind: "message", payload: JSON.stringify({ n: 5 }) });
    db.destroy();
  });

  it("refuses bad arguments with InvalidArgumentError", async () => {
    const log = new StreamLog(dynamoDbClient(), logTable());
    await expect(streamHoles(log, "s", 5, 4)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(streamHoles(log, "s", 0, 20_000)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(streamTail(log, "s", 0)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(listStreams(log, { maxScannedItems: 0 })).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});
