/**
 * What the operator console reads and does, through the same library calls as the
 * `fencepost` CLI: locks through the lock function (`LockClient` in remote mode: `list`,
 * `inspect`), transactions through the coordinator function (`list`, `status`, `recover`,
 * `override` with operator and reason, which append the audit entries), membership through
 * the coordination function (`sessions`, `list`, `view`), and streams from the broadcast
 * log table (lib/ordering/inspect.ts: heads, cursors, holes, tail).
 *
 * Guarantees: every read is one of those calls, nothing is cached across calls except the
 * console's own record of the fencing tokens it has seen (the table keeps only the
 * latest); every action is the coordinator function's own, so it is refused with the same
 * typed errors (rebuilt by `invokeJson`) and audited the same way as from the CLI.
 * Assumes: each source may be absent (not configured): its reads then fail with
 * NotConfiguredError, which the server turns into an empty state naming what to set.
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { LambdaClient } from "@aws-sdk/client-lambda";
import { FencepostError, InvalidArgumentError } from "../errors.js";
import { invokeJson } from "../internal/lambda.js";
import { LockClient } from "../locks/client.js";
import type { LockState } from "../locks/protocol.js";
import type { CoordinationRequest, CoordinationResponses, SessionInfo } from "../coordination/protocol.js";
import type { View } from "../coordination/group.js";
import type { Entry } from "../coordination/coordination.js";
import { GROUPS_PREFIX, groupOfKey } from "../coordination/session.js";
import { StreamLog, type Slot } from "../ordering/log.js";
import { listStreams, streamHoles, streamTail, MAX_HOLE_WINDOW, type HoleReport, type StreamSummary } from "../ordering/inspect.js";
import type { TxnRequest, TxnResponses } from "../service/txn-api.js";
import type { TransactionRecord } from "../txn/log.js";
import type { RecoveryReport } from "../txn/recovery.js";
import { TokenHistory, type TokenSighting } from "./history.js";

/** A Fencepost function the console invokes. */
export interface FunctionSource {
  readonly lambda: LambdaClient;
  readonly functionName: string;
}

/** Where the console finds each part of a Fencepost stack; an absent part shows as not configured. */
export interface ConsoleSources {
  /** The lock function (stack output LockFunctionName). */
  readonly locks?: FunctionSource;
  /** The coordinator function (stack output TxnFunctionName). */
  readonly txn?: FunctionSource;
  /** The coordination function (stack output CoordinationFunctionName). */
  readonly coordination?: FunctionSource;
  /** The broadcast log table (stack output LogTableName) and a client that may read it. */
  readonly log?: { readonly dynamodb: DynamoDBClient; readonly tableName: string };
}

const WHAT: Record<keyof ConsoleSources, string> = { locks: "lock function", txn: "coordinator function", coordination: "coordination function", log: "broadcast log table" };
const HOW: Record<keyof ConsoleSources, string> = { locks: "FENCEPOST_LOCK_FUNCTION", txn: "FENCEPOST_TXN_FUNCTION", coordination: "FENCEPOST_COORDINATION_FUNCTION", log: "--log-table or FENCEPOST_LOG_TABLE" };

/** A part of the stack the console was not told about. */
export class NotConfiguredError extends FencepostError {
  override name = "NotConfiguredError";
  constructor(
    readonly part: keyof ConsoleSources,
    message?: string,
  ) {
    super(message ?? `the console was not given the ${WHAT[part]}: run it beside a local stack (\`npm start\`), or name it (\`fencepost console\`: ${HOW[part]})`);
  }
}

/** Most locks the console lists (pages of the lock function's `list`). */
export const MAX_LOCKS = 1000;
/** Slots of a stream's tail the console shows. */
export const TAIL_SLOTS = 20;
/** Groups whose views the membership page reads at most. */
export const MAX_GROUPS = 50;

export interface LockRow extends LockState {
  readonly name: string;
}

export interface LockDetail {
  readonly name: string;
  /** Undefined: no item (never used, or swept while free). */
  readonly state: LockState | undefined;
  /** Tokens this console saw, newest first. */
  readonly history: readonly TokenSighting[];
}

export interface StreamDetail extends StreamSummary {
  /** Empty slots in the window from the lowest cursor (or the last MAX_HOLE_WINDOW numbers) to the head. */
  readonly holes: HoleReport;
  /** The newest TAIL_SLOTS slots, newest first. */
  readonly tail: readonly Slot[];
}

export interface TransactionsView {
  /** Unfinished past their deadline: what recovery (or an operator) has to resolve. */
  readonly inDoubt: readonly TransactionRecord[];
  /** Unfinished, still within their deadline (running, or decided with phase two under way). */
  readonly unfinished: readonly TransactionRecord[];
  /** Finished ones this console saw unfinished or opened, newest first (the log has no index of finished ones). */
  readonly finished: readonly TransactionRecord[];
}

export interface MembershipView {
  readonly namespace: string;
  readonly sessions: readonly SessionInfo[];
  readonly sessionsTruncated: boolean;
  readonly groups: readonly ({ group: string } & View)[];
  /** Keys outside the groups' own, at `revision`. */
  readonly keys: readonly Entry[];
  readonly keysTruncated: boolean;
  readonly revision: number;
}

/** Most finished transactions the console remembers. */
const FINISHED_KEPT = 50;

/** The console's reads and actions over one stack (see the module comment). */
export class ConsoleData {
  readonly #sources: ConsoleSources;
  readonly #history = new TokenHistory();
  readonly #finished = new Map<string, TransactionRecord>();
  readonly #watching = new Set<string>();

  constructor(sources: ConsoleSources) {
    this.#sources = sources;
  }

  /** Which parts are configured. */
  get configured(): Record<keyof ConsoleSources, boolean> {
    const s = this.#sources;
    return { locks: s.locks !== undefined, txn: s.txn !== undefined, coordination: s.coordination !== undefined, log: s.log !== undefined };
  }

  #lockClient(): LockClient {
    const locks = this.#sources.locks;
    if (!locks) throw new NotConfiguredError("locks");
    return new LockClient({ functionName: locks.functionName, lambda: locks.lambda });
  }

  /** Locks whose name starts with `prefix` (at most MAX_LOCKS scanned), by name. */
  async locks(prefix = ""): Promise<{ locks: LockRow[]; truncated: boolean }> {
    const client = this.#lockClient();
    const rows: LockRow[] = [];
    let startAfter: string | undefined;
    let scanned = 0;
    do {
      const page = await client.list({ limit: 1000, ...(startAfter ? { startAfter } : {}) });
      scanned += page.locks.length;
      for (const lock of page.locks) {
        this.#history.saw(lock.name, lock);
        if (lock.name.startsWith(prefix)) rows.push(lock);
      }
      startAfter = page.next;
    } while (startAfter && scanned < MAX_LOCKS);
    rows.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { locks: rows, truncated: startAfter !== undefined };
  }

  async lock(name: string): Promise<LockDetail> {
    const state = await this.#lockClient().inspect(name);
    if (state) this.#history.saw(name, state);
    return { name, state, history: this.#history.of(name) };
  }

  #log(): StreamLog {
    const log = this.#sources.log;
    if (!log) throw new NotConfiguredError("log");
    return new StreamLog(log.dynamodb, log.tableName);
  }

  async streams(): Promise<{ streams: readonly StreamSummary[]; truncated: boolean }> {
    return listStreams(this.#log());
  }

  /** One stream: head and cursors (from the overview), holes between the lowest cursor and the head, the tail. */
  async stream(name: string): Promise<StreamDetail | undefined> {
    const log = this.#log();
    const summary = (await listStreams(log)).streams.find((s) => s.stream === name);
    if (!summary) return undefined;
    const lowest = Math.min(summary.head, ...summary.groups.map((g) => g.position));
    const after = Math.max(lowest, summary.head - MAX_HOLE_WINDOW);
    const [holes, tail] = await Promise.all([streamHoles(log, name, after, summary.head), streamTail(log, name, TAIL_SLOTS)]);
    return { ...summary, holes, tail };
  }

  async #txn<R extends TxnRequest>(request: R): Promise<TxnResponses[R["action"]]> {
    const txn = this.#sources.txn;
    if (!txn) throw new NotConfiguredError("txn");
    return (await invokeJson(txn.lambda, txn.functionName, request)) as TxnResponses[R["action"]];
  }

  /** In doubt first, then the other unfinished ones, then finished ones this console has seen. */
  async transactions(): Promise<TransactionsView> {
    const [inDoubt, all] = await Promise.all([this.#txn({ action: "list", limit: 1000 }), this.#txn({ action: "list", all: true, limit: 1000 })]);
    const doubtful = new Set(inDoubt.transactions.map((t) => t.txId));
    const unfinished = all.transactions.filter((t) => !doubtful.has(t.txId));
    const open = new Set([...doubtful, ...unfinished.map((t) => t.txId)]);
    // What this console saw unfinished and is no longer: look it up once, keep it as finished.
    const gone = [...this.#watching].filter((id) => !open.has(id));
    for (const record of await Promise.all(gone.map((txId) => this.#txn({ action: "status", txId })))) if (record) this.#remember(record);
    for (const id of gone) this.#watching.delete(id);
    for (const id of open) this.#watching.add(id);
    return { inDoubt: inDoubt.transactions, unfinished, finished: [...this.#finished.values()].sort((a, b) => (b.doneAt ?? b.createdAt) - (a.doneAt ?? a.createdAt)) };
  }

  async transaction(txId: string): Promise<TransactionRecord | undefined> {
    const record = (await this.#txn({ action: "status", txId })) ?? undefined;
    if (record) this.#remember(record);
    return record;
  }

  #remember(record: TransactionRecord): void {
    if (!record.done) {
      this.#watching.add(record.txId);
      return;
    }
    this.#finished.delete(record.txId);
    this.#finished.set(record.txId, record);
    while (this.#finished.size > FINISHED_KEPT) this.#finished.delete(this.#finished.keys().next().value!);
  }

  /** Finishes every transaction past its deadline now (as `fencepost tx recover`). */
  recover(): Promise<RecoveryReport> {
    return this.#txn({ action: "recover" });
  }

  /** An operator's abort or forget, audited (as `fencepost tx abort|forget --reason`). */
  async override(txId: string, action: "abort" | "forget", operator: string, reason: string): Promise<TransactionRecord> {
    if (reason.trim() === "") throw new InvalidArgumentError("reason", "must say why (it goes in the audit trail)");
    const record = await this.#txn({ action: "override", txId, override: action, operator, reason });
    this.#remember(record);
    return record;
  }

  async #coordination<R extends CoordinationRequest>(request: R): Promise<CoordinationResponses[R["action"]]> {
    const coordination = this.#sources.coordination;
    if (!coordination) throw new NotConfiguredError("coordination");
    return (await invokeJson(coordination.lambda, coordination.functionName, request)) as CoordinationResponses[R["action"]];
  }

  /** A namespace's sessions (live, closed and expired), groups with their views, and its other keys. */
  async membership(namespace: string): Promise<MembershipView> {
    const [sessions, memberKeys, keys] = await Promise.all([
      this.#coordination({ action: "sessions", namespace, all: true, limit: 1000 }),
      this.#coordination({ action: "list", namespace, prefix: GROUPS_PREFIX, limit: 1000 }),
      this.#coordination({ action: "list", namespace, prefix: "", limit: 200 }),
    ]);
    const names = [...new Set(memberKeys.entries.flatMap((e) => groupOfKey(e.key) ?? []))].sort().slice(0, MAX_GROUPS);
    const groups = await Promise.all(names.map(async (group) => ({ group, ...(await this.#coordination({ action: "view", namespace, group })) })));
    return {
      namespace,
      sessions: sessions.sessions,
      sessionsTruncated: sessions.truncated,
      groups,
      keys: keys.entries,
      keysTruncated: keys.truncated,
      revision: keys.revision,
    };
  }
}
