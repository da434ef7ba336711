/**
 * Read-only views of the broadcast log for operators (the console, scripts): which
 * streams exist with their heads and every consumer group's cursor and lag, which slots
 * below a head are still empty (holes), and a stream's most recent slots.
 *
 * Guarantees: nothing here writes; every read is a consistent read, so a head, a cursor
 * or a slot shown was true at the moment it was read (the reads of one call are not one
 * snapshot: a head read after a cursor can be ahead of it, never the other way round for
 * one group, because cursors never pass the head).
 * Assumes: the log table layout of log.ts (`seq#<stream>`, `log#<stream>`,
 * `cursor#<stream>#<group>`). The table has no index of streams, so `listStreams` scans
 * the table (every slot is read and filtered out server side: cost grows with the log,
 * bounded by `maxScannedItems`). A stream or group name containing `#` makes a cursor's key
 * ambiguous; it is given to the longest stream name that prefixes it.
 */
import { paginateQuery, paginateScan, QueryCommand } from "@aws-sdk/client-dynamodb";
import { InvalidArgumentError } from "../errors.js";
import { numberValue, stringValue } from "../internal/attributes.js";
import { parseSlot, type Slot, type StreamLog } from "./log.js";

/** Items `listStreams` reads at most before it stops and reports `truncated`. */
export const DEFAULT_MAX_SCANNED_ITEMS = 100_000;
/** Most slots `streamHoles` looks at in one call. */
export const MAX_HOLE_WINDOW = 10_000;
/** Most slots `streamTail` returns. */
export const MAX_TAIL = 1000;

/** How far one consumer group has delivered a stream. */
export interface GroupCursor {
  readonly group: string;
  /** The cursor: the last sequence number the group delivered (or skipped as a no-op). */
  readonly position: number;
  /** head - position: sequence numbers handed out that the group has not passed yet. */
  readonly lag: number;
}

/** A stream as its sequencer and its groups' cursors show it. */
export interface StreamSummary {
  readonly stream: string;
  /** The last sequence number allocated (0: none). Slots up to it are written, or holes. */
  readonly head: number;
  /** Consumer groups with a cursor on this stream, by name. */
  readonly groups: readonly GroupCursor[];
}

export interface StreamOverview {
  /** Streams by name. */
  readonly streams: readonly StreamSummary[];
  /** True when the scan stopped at `maxScannedItems` before the end of the table: there may be more. */
  readonly truncated: boolean;
}

/** Empty slots of a stream within a window of sequence numbers. */
export interface HoleReport {
  /** The window looked at: (after, upTo]. */
  readonly after: number;
  readonly upTo: number;
  /** Empty slots in the window, ascending. */
  readonly holes: readonly number[];
}

/**
 * Every stream of the log table with its head, and every consumer group's cursor with its
 * lag: one paginated Scan filtered to sequencer and cursor items (see the module comment
 * on its cost), stopping after `maxScannedItems` items.
 */
export async function listStreams(log: StreamLog, options: { maxScannedItems?: number } = {}): Promise<StreamOverview> {
  const max = options.maxScannedItems ?? DEFAULT_MAX_SCANNED_ITEMS;
  if (!(Number.isSafeInteger(max) && max > 0)) throw new InvalidArgumentError("maxScannedItems", `must be a positive integer, got ${max}`);
  const heads = new Map<string, number>();
  const cursors: { key: string; position: number }[] = [];
  let scanned = 0;
  let truncated = false;
  const pages = paginateScan(
    { client: log.dynamodb },
    {
      TableName: log.tableName,
      FilterExpression: "begins_with(pk, :seq) OR begins_with(pk, :cursor)",
      ProjectionExpression: "pk, #next, #position",
      ExpressionAttributeNames: { "#next": "next", "#position": "position" },
      ExpressionAttributeValues: { ":seq": stringValue("seq#"), ":cursor": stringValue("cursor#") },
      ConsistentRead: true,
    },
  );
  for await (const page of pages) {
    scanned += page.ScannedCount ?? 0;
    for (const item of page.Items ?? []) {
      const pk = item["pk"]?.S ?? "";
      if (pk.startsWith("seq#")) heads.set(pk.slice(4), Number(item["next"]?.N ?? 0));
      else cursors.push({ key: pk.slice("cursor#".length), position: Number(item["position"]?.N ?? 0) });
    }
    truncated = page.LastEvaluatedKey !== undefined;
    if (scanned >= max) break;
  }
  // Longest stream name first, so `a#b`'s cursors are not given to `a`.
  const names = [...heads.keys()].sort((a, b) => b.length - a.length);
  const groups = new Map<string, GroupCursor[]>();
  for (const { key, position } of cursors) {
    const stream = names.find((name) => key.startsWith(`${name}#`));
    if (stream === undefined) continue; // a cursor whose stream never allocated: nothing to show
    const head = heads.get(stream)!;
    groups.set(stream, [...(groups.get(stream) ?? []), { group: key.slice(stream.length + 1), position, lag: Math.max(0, head - position) }]);
  }
  const streams = [...heads.entries()]
    .map(([stream, head]) => ({ stream, head, groups: (groups.get(stream) ?? []).sort((a, b) => (a.group < b.group ? -1 : a.group > b.group ? 1 : 0)) }))
    .sort((a, b) => (a.stream < b.stream ? -1 : a.stream > b.stream ? 1 : 0));
  return { streams, truncated };
}

/**
 * The empty slots of `stream` in (after, upTo]: numbers handed out whose message was not
 * (yet) written, nor filled with a no-op. A hole is normal for a moment (a publish in
 * flight); one that lasts is a crashed producer's, filled by the next consumer that
 * waits past its hole timeout. At most MAX_HOLE_WINDOW slots per call.
 */
export async function streamHoles(log: StreamLog, stream: string, after: number, upTo: number): Promise<HoleReport> {
  if (!(Number.isSafeInteger(after) && after >= 0)) throw new InvalidArgumentError("after", `must be a non-negative integer, got ${after}`);
  if (!(Number.isSafeInteger(upTo) && upTo >= after && upTo - after <= MAX_HOLE_WINDOW)) {
    throw new InvalidArgumentError("upTo", `must be an integer from after (${after}) to after + ${MAX_HOLE_WINDOW}, got ${upTo}`);
  }
  const written = new Set<number>();
  const pages = paginateQuery(
    { client: log.dynamodb },
    {
      TableName: log.tableName,
      KeyConditionExpression: "pk = :pk AND sk BETWEEN :from AND :to",
      ExpressionAttributeValues: { ":pk": stringValue(`log#${stream}`), ":from": numberValue(after + 1), ":to": numberValue(Math.max(after + 1, upTo)) },
      ProjectionExpression: "sk",
      ConsistentRead: true,
    },
  );
  for await (const page of pages) for (const item of page.Items ?? []) written.add(Number(item["sk"]?.N));
  const holes: number[] = [];
  for (let seq = after + 1; seq <= upTo; seq++) if (!written.has(seq)) holes.push(seq);
  return { after, upTo, holes };
}

/** The last `limit` written slots of `stream` (messages and no-ops), newest first: one Query. */
export async function streamTail(log: StreamLog, stream: string, limit: number): Promise<Slot[]> {
  if (!(Number.isSafeInteger(limit) && limit > 0 && limit <= MAX_TAIL)) throw new InvalidArgumentError("limit", `must be an integer from 1 to ${MAX_TAIL}, got ${limit}`);
  const page = await log.dynamodb.send(
    new QueryCommand({
      TableName: log.tableName,
      KeyConditionExpression: "pk = :pk",
      ExpressionAttributeValues: { ":pk": stringValue(`log#${stream}`) },
      ScanIndexForward: false,
      ConsistentRead: true,
      Limit: limit,
    }),
  );
  return (page.Items ?? []).flatMap((item) => parseSlot(item) ?? []);
}
