/**
 * RequestIds: the ids of one lock request's writes, when the request has an id of its own
 * (AcquireRequest.requestId: the lock service's remote caller names each call once, and
 * every copy of the call carries it). What the item then says of the request:
 * - a version `<requestId>.<uuid>` was written by one of its copies (a grant, an accept) or
 *   by the client's take-up of an adopted grant;
 * - `grantWait = requestId` with any other version: a grant of it landed and has moved on.
 * Assumes: request ids contain no "." (protocol.ts), so a prefix names one request.
 */
import { randomUUID } from "node:crypto";
import type { LeaseRecord } from "./lease.js";

/**
 * The attempt ids of one request (AcquireRequest.requestId), and what the item says of it:
 * - `next()`: a fresh attempt id, `<requestId>.<uuid>` (a plain UUID without a request id).
 * - `heldBy(record, owner)`: the item is a grant of this request (its version was written
 *   by an attempt of any copy) that `owner` holds, no handover pending: the one a copy
 *   adopts, and `abandon` gives back.
 * - `finished(record)`: a grant of this request landed (the item names it as the last wait
 *   granted) and has moved on (released, handed on, or renewed by its holder under a
 *   version of its own): a copy that sees this is late, and must grant nothing. Only the
 *   caller moves such a grant on: copies never give one back (#abandon), and a takeover
 *   names its own wait. Recognised only while the item names this request as the last
 *   wait granted: after another wait's grant, a late copy is not told apart from a new
 *   request (a grant it then makes is held by nobody until its lease ends).
 */
export interface RequestIds {
  next(): string;
  heldBy(record: LeaseRecord | undefined, owner: string): boolean;
  finished(record: LeaseRecord | undefined): boolean;
}

export function requestIds(requestId: string | undefined): RequestIds {
  const prefix = requestId === undefined ? undefined : `${requestId}.`;
  const madeBy = (version: string) => prefix !== undefined && version.startsWith(prefix);
  return {
    next: () => `${prefix ?? ""}${randomUUID()}`,
    heldBy: (record, owner) => record !== undefined && record.holder === owner && record.grantee === undefined && madeBy(record.version),
    finished: (record) => requestId !== undefined && record?.grantWait === requestId && !madeBy(record.version),
  };
}
