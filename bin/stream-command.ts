/**
 * `fencepost stream tail NAME [--limit N] [--follow]`: the last messages of a broadcast
 * stream, read from the log table (as the console reads it: the local stack's, or
 * `--log-table`), oldest first; with `--follow`, every later one in sequence order, none
 * skipped, until Ctrl-C. Reads only: it never fills a hole or moves a cursor.
 */
import { MAX_TAIL, streamTail } from "../lib/ordering/inspect.js";
import { StreamLog, type Slot } from "../lib/ordering/log.js";
import { sleep } from "../lib/internal/time.js";
import { ConnectionError, logTable, untilInterrupted } from "./connection.js";

export interface StreamFlags {
  json: boolean;
  follow: boolean;
  limit?: string;
  endpoint?: string;
  "log-table"?: string;
}

export class StreamUsageError extends Error {
  override name = "StreamUsageError";
}

/** How often --follow looks for the next message. */
const FOLLOW_POLL_MS = 500;
/** How long --follow waits at a missing number, with later ones written, before saying so. */
const HOLE_NOTICE_MS = 5000;

export async function streamCommand(sub: string | undefined, name: string | undefined, flags: StreamFlags, out: (line: string) => void, progress: (line: string) => void): Promise<number> {
  if (sub !== "tail") throw new StreamUsageError(`unknown stream command '${sub ?? ""}': use tail`);
  if (!name) throw new StreamUsageError("fencepost stream tail needs a stream name");
  const limit = flags.limit === undefined ? 20 : Number(flags.limit);
  if (!(Number.isInteger(limit) && limit >= 1 && limit <= MAX_TAIL)) throw new StreamUsageError(`--limit must be an integer from 1 to ${MAX_TAIL}, got '${flags.limit}'`);
  const table = logTable(flags);
  if (!table) throw new ConnectionError("no broadcast log table: start the local stack here with `fencepost up`, or name it with --log-table or FENCEPOST_LOG_TABLE (the stack output LogTableName)");
  const log = new StreamLog(table.dynamodb, table.tableName);
  const show = (slot: Slot) => out(flags.json ? JSON.stringify(slot) : slot.kind === "noop" ? `#${slot.seq}  (no message: a number its publisher never wrote, filled)` : `#${slot.seq}  ${slot.payload}  (${slot.writer})`);

  const tail = (await streamTail(log, name, limit)).reverse();
  if (tail.length === 0) progress(`No messages in '${name}' yet (${table.where}).`);
  tail.forEach(show);
  if (!flags.follow) return 0;

  let next = (tail.at(-1)?.seq ?? 0) + 1;
  progress(`Following '${name}' from #${next}; Ctrl-C stops.`);
  const stop = new AbortController();
  void untilInterrupted().then(() => stop.abort());
  let stuck = { at: next, since: performance.now(), told: false };
  while (!stop.signal.aborted) {
    const from = next;
    const page = await log.readAfter(name, next - 1, 100);
    for (const slot of page.slots) {
      if (slot.seq !== next) break; // a number not written yet: wait for it, in order
      show(slot);
      next++;
    }
    if (stuck.at !== next) stuck = { at: next, since: performance.now(), told: false };
    else if (!stuck.told && page.slots.length > 0 && performance.now() - stuck.since >= HOLE_NOTICE_MS) {
      stuck.told = true;
      progress(`Waiting for #${next} (later numbers are written): a publish in flight, or a publisher that died, whose number a consumer fills after its hole timeout.`);
    }
    // A full page read in order: read on at once; otherwise look again shortly.
    if (next === from || !page.truncated) await sleep(FOLLOW_POLL_MS, stop.signal).catch(() => undefined);
  }
  return 0;
}
