/**
 * `fencepost kv get|put|delete|list|watch`, `fencepost members list|watch GROUP` and
 * `fencepost session list`: operators' view of the coordination service, through the
 * coordination function (so they need only lambda:InvokeFunction).
 *
 * Watches poll the function's `changes` action from a revision and print every change in
 * revision order, none missed or repeated, until Ctrl-C (a revision no longer kept fails
 * with CompactedError). Sessions are only listed: a session needs a process that sends a
 * keepalive every ttl/3, which a command is not; open one with the Coordination client.
 */
import { DEFAULT_NAMESPACE } from "../lib/coordination/defaults.js";
import type { CoordinationRequest, CoordinationResponses, SessionInfo } from "../lib/coordination/protocol.js";
import { GROUPS_PREFIX } from "../lib/coordination/session.js";
import type { Entry, Member, WatchEvent } from "../lib/index.js";
import { invokeJson } from "../lib/internal/lambda.js";
import { sleep } from "../lib/internal/time.js";
import { coordinationService, untilInterrupted } from "./connection.js";

export interface CoordinationFlags {
  json: boolean;
  endpoint?: string;
  function?: string;
  namespace?: string;
  from?: string;
  "if-revision"?: string;
  limit?: string;
  all: boolean;
}

export class CoordinationUsageError extends Error {}

/** The commands this module serves. */
export const COORDINATION_COMMANDS = ["kv", "members", "session"] as const;
export type CoordinationCommand = (typeof COORDINATION_COMMANDS)[number];

/** How often a watch asks for changes again once it has caught up: the delay of an event is about this. */
const WATCH_POLL_MS = 500;

type Call = <R extends CoordinationRequest>(request: R) => Promise<CoordinationResponses[R["action"]]>;
type Out = (line: string) => void;

/** A whole number from `min`, or undefined when the flag is absent. */
function wholeNumber(flag: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!(Number.isSafeInteger(n) && n >= min)) throw new CoordinationUsageError(`${flag} must be a whole number from ${min}, got '${value}'`);
  return n;
}

/** VALUE as written: JSON if it parses as JSON (42, true, {"a":1}, "\"quoted\""), else the text itself. */
function parseValue(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

const shown = (value: unknown, max = 60) => {
  const text = JSON.stringify(value) ?? "null";
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
};

const ago = (at: number | undefined) => {
  if (at === undefined) return "-";
  const ms = Math.max(0, Date.now() - at);
  return ms < 120_000 ? `${(ms / 1000).toFixed(1)} s ago` : ms < 7_200_000 ? `${Math.round(ms / 60_000)} min ago` : `${Math.round(ms / 3_600_000)} h ago`;
};

/** Rows as aligned columns, the first row the header. */
function table(rows: string[][], out: Out): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) out(r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd());
}

function describeEntry(entry: Entry): string {
  return `${entry.key} = ${JSON.stringify(entry.value)}  (revision ${entry.revision}, created at ${entry.createRevision}, version ${entry.version}${entry.session ? `, ephemeral: session ${entry.session}` : ""})`;
}

function describeEvent(event: WatchEvent): string {
  const why = event.cause === "request" ? "" : ` (${event.cause}: session ${event.session})`;
  return `${event.revision} ${event.type.toUpperCase()} ${event.key}${event.type === "put" ? ` = ${shown(event.value, 200)}` : ""}${why}`;
}

/**
 * Polls the change log from `from` and hands every change under `prefix` to `onEvent`, in
 * revision order, until Ctrl-C.
 */
async function follow(call: Call, namespace: string, prefix: string, from: number, onEvent: (event: WatchEvent) => void): Promise<void> {
  const stop = new AbortController();
  void untilInterrupted().then(() => stop.abort());
  let next = from;
  while (!stop.signal.aborted) {
    const page = await call({ action: "changes", namespace, fromRevision: next, prefix });
    for (const event of page.events) onEvent(event);
    next = page.next;
    if (next > page.revision) await sleep(WATCH_POLL_MS, stop.signal).catch(() => undefined);
  }
}

export async function coordinationCommand(command: CoordinationCommand, sub: string | undefined, args: string[], flags: CoordinationFlags, out: Out, progress: Out): Promise<number> {
  // Connected on the first call, so a usage error is reported as one even with no stack running.
  let svc: ReturnType<typeof coordinationService> | undefined;
  const connect = () => (svc ??= coordinationService(flags));
  const call: Call = async (request) => {
    const { lambda, functionName } = connect();
    return (await invokeJson(lambda, functionName, request)) as CoordinationResponses[(typeof request)["action"]];
  };
  const namespace = flags.namespace ?? DEFAULT_NAMESPACE;
  const needArg = (what: string) => {
    if (!args[0]) throw new CoordinationUsageError(`fencepost ${command} ${sub} needs ${what}`);
    return args[0];
  };
  const context = { call, namespace, flags, out, progress, where: () => connect().where, needArg, args };
  switch (command) {
    case "kv":
      return kv(sub, context);
    case "members":
      return members(sub, context);
    case "session":
      return session(sub, context);
  }
}

interface Context {
  call: Call;
  namespace: string;
  flags: CoordinationFlags;
  out: Out;
  progress: Out;
  /** Where the function is (local stack, endpoint, AWS), for progress lines. */
  where: () => string;
  needArg: (what: string) => string;
  args: string[];
}

async function kv(sub: string | undefined, { call, namespace, flags, out, progress, where, needArg, args }: Context): Promise<number> {
  const ifRevision = wholeNumber("--if-revision", flags["if-revision"], 0);
  const condition = ifRevision !== undefined ? { ifRevision } : {};
  switch (sub) {
    case "get": {
      const key = needArg("a key");
      const entry = await call({ action: "get", namespace, key });
      out(flags.json ? JSON.stringify(entry) : entry ? describeEntry(entry) : `'${key}' does not exist in namespace '${namespace}'.`);
      return entry ? 0 : 1;
    }
    case "put": {
      const key = needArg("a key and a value");
      if (args[1] === undefined) throw new CoordinationUsageError("fencepost kv put needs a value after the key (JSON, or text)");
      const { revision } = await call({ action: "put", namespace, key, value: parseValue(args[1]), ...condition });
      out(flags.json ? JSON.stringify({ key, revision }) : `Put '${key}' at revision ${revision}.`);
      return 0;
    }
    case "delete": {
      const key = needArg("a key");
      const result = await call({ action: "delete", namespace, key, ...condition });
      if (flags.json) out(JSON.stringify({ key, ...result }));
      else out(result.deleted ? `Deleted '${key}' at revision ${result.revision}.` : `Nothing deleted: '${key}' does not exist${ifRevision !== undefined ? ` at revision ${ifRevision}` : ""}.`);
      return result.deleted ? 0 : 1;
    }
    case "list": {
      const prefix = args[0] ?? "";
      const limit = wholeNumber("--limit", flags.limit, 1);
      if (limit !== undefined && limit > 1000) throw new CoordinationUsageError(`--limit must be at most 1000, got '${flags.limit}'`);
      const page = await call({ action: "list", namespace, prefix, ...(limit ? { limit } : {}) });
      if (flags.json) out(JSON.stringify(page));
      else if (page.entries.length === 0) out(`No keys${prefix ? ` under '${prefix}'` : ""} in namespace '${namespace}' (revision ${page.revision}).`);
      else {
        table([["KEY", "REVISION", "VERSION", "VALUE", "SESSION"], ...page.entries.map((e) => [e.key, String(e.revision), String(e.version), shown(e.value), e.session ?? "-"])], out);
        out(`${page.entries.length} keys at revision ${page.revision}${page.truncated ? " (more not shown: raise --limit or narrow the prefix)" : ""}.`);
      }
      return 0;
    }
    case "watch": {
      const prefix = args[0] ?? "";
      const from = wholeNumber("--from", flags.from, 0) ?? (await call({ action: "revision", namespace })).revision + 1;
      progress(`Watching ${prefix ? `'${prefix}'` : "every key"} in namespace '${namespace}' from revision ${from} (${where()}); Ctrl-C stops.`);
      await follow(call, namespace, prefix, from, (event) => out(flags.json ? JSON.stringify(event) : describeEvent(event)));
      return 0;
    }
    default:
      throw new CoordinationUsageError(`unknown kv command '${sub ?? ""}': use get, put, delete, list or watch`);
  }
}

async function members(sub: string | undefined, { call, namespace, flags, out, progress, where, needArg }: Context): Promise<number> {
  if (sub !== "list" && sub !== "watch") throw new CoordinationUsageError(`unknown members command '${sub ?? ""}': use list or watch`);
  const group = needArg("a group name");
  const view = await call({ action: "view", namespace, group });
  const line = (epoch: number, revision: number, count: number) => `Group '${group}' (namespace '${namespace}'): epoch ${epoch}, revision ${revision}, ${count} member${count === 1 ? "" : "s"}`;
  if (sub === "list") {
    if (flags.json) out(JSON.stringify(view));
    else {
      out(line(view.epoch, view.revision, view.members.length));
      if (view.members.length > 0) table([["ID", "JOINED AT", "META"], ...view.members.map((m) => [m.id, String(m.joinedRevision), shown(m.meta, 120)])], out);
    }
    return 0;
  }
  // watch: the view, then every membership change in order, each as the view it makes.
  const current = new Map<string, Member>(view.members.map((m) => [m.id, m]));
  const prefix = `${GROUPS_PREFIX}${group}/members/`;
  progress(`Watching group '${group}' in namespace '${namespace}' from epoch ${view.epoch} (${where()}); Ctrl-C stops.`);
  if (flags.json) out(JSON.stringify({ ...view, change: null }));
  else out(line(view.epoch, view.revision, view.members.length) + view.members.map((m) => `\n  ${m.id}  ${shown(m.meta, 120)}`).join(""));
  let epoch = view.epoch;
  await follow(call, namespace, prefix, view.revision + 1, (event) => {
    const id = event.key.slice(prefix.length);
    const meta = (event.value as { meta?: unknown } | undefined)?.meta ?? null;
    if (event.type === "put") current.set(id, { id, meta, joinedRevision: event.revision });
    else current.delete(id);
    epoch = event.epoch ?? epoch + 1;
    const change = { type: event.type === "put" ? "joined" : "left", member: id, cause: event.cause };
    if (flags.json) out(JSON.stringify({ epoch, revision: event.revision, members: [...current.values()].sort((a, b) => (a.id < b.id ? -1 : 1)), change }));
    else out(`${line(epoch, event.revision, current.size)}: ${id} ${change.type}${event.type === "put" ? ` ${shown(meta, 120)}` : event.cause === "request" ? "" : ` (${event.cause})`}`);
  });
  return 0;
}

async function session(sub: string | undefined, { call, namespace, flags, out }: Context): Promise<number> {
  if (sub !== "list") throw new CoordinationUsageError(`unknown session command '${sub ?? ""}': use list (sessions are opened by clients, which keep them alive)`);
  const limit = wholeNumber("--limit", flags.limit, 1);
  if (limit !== undefined && limit > 1000) throw new CoordinationUsageError(`--limit must be at most 1000, got '${flags.limit}'`);
  const { sessions, truncated } = await call({ action: "sessions", namespace, ...(flags.all ? { all: true } : {}), ...(limit ? { limit } : {}) });
  if (flags.json) out(JSON.stringify(sessions));
  else if (sessions.length === 0) out(`No ${flags.all ? "" : "live "}sessions in namespace '${namespace}'.`);
  else {
    const row = (s: SessionInfo) => [s.id, s.state, `${s.ttlMs / 1000} s`, s.owner ?? "-", String(s.keys.length), ago(s.renewedAt)];
    table([["ID", "STATE", "TTL", "OWNER", "KEYS", "RENEWED"], ...sessions.map(row)], out);
    if (truncated) out("(more not shown: raise --limit)");
  }
  return 0;
}
